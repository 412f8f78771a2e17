//! Workspace spend (for `[limits]` budgets) and the generation listing, the same checks on
//! SQLite and (when `KEYWAY_TEST_POSTGRES_URL` is set) PostgreSQL, as in conformance.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_crypto::{Keyring, MasterKey};
use keyway_store::*;
use std::sync::Arc;

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path()), Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap();
    (store, dir)
}

async fn postgres() -> Option<Store> {
    let Ok(base) = std::env::var("KEYWAY_TEST_POSTGRES_URL") else {
        assert!(std::env::var("CI").is_err(), "KEYWAY_TEST_POSTGRES_URL must be set under CI");
        eprintln!("skipping PostgreSQL half: KEYWAY_TEST_POSTGRES_URL is not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await.unwrap();
    let name = format!("keyway_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    Some(Store::connect(&format!("{head}/{name}"), Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap())
}

async fn each_engine<F, Fut>(f: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (s, _dir) = sqlite().await;
    f(s).await;
    if let Some(p) = postgres().await {
        f(p).await;
    }
}

#[allow(clippy::too_many_arguments)]
fn gen(id: &str, ws: &str, key: &str, model: &str, provider: Option<&str>, byok: bool, cost: i64, fee: i64, at: i64) -> GenerationRow {
    GenerationRow {
        id: id.into(),
        workspace_id: ws.into(),
        api_key_hash: key.into(),
        user_id: None,
        requested_model: model.into(),
        model: provider.map(|_| model.to_owned()),
        provider: provider.map(str::to_owned),
        credential_id: provider.map(|_| if byok { "cred-1".to_owned() } else { "system".to_owned() }),
        is_byok: byok,
        streamed: false,
        status: if provider.is_some() { 200 } else { 502 },
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 2,
        cache_write_tokens: 0,
        has_usage: true,
        latency_ms: 3,
        ttft_ms: None,
        attempts: "[]".into(),
        finish_reason: None,
        app_referer: None,
        app_title: None,
        cost_micros: cost,
        fee_micros: fee,
        created_at: at,
    }
}

const DAY: i64 = 86_400_000;

#[tokio::test]
async fn workspace_spend_counts_cost_plus_fee_per_period() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        let (month, day) = (100 * DAY, 120 * DAY);
        s.insert_generations(&[
            gen("g1", &a.id, "k1", "m", Some("openai"), false, 1000, 0, month - 1), // last month
            gen("g2", &a.id, "k1", "m", Some("openai"), true, 200, 10, month + 5), // this month
            gen("g3", &a.id, "k2", "m", Some("openai"), false, 300, 0, day + 1), // today
            gen("g4", &b.id, "k3", "m", None, false, 0, 0, day + 2), // nothing served
        ])
        .await
        .unwrap();
        let spend = s.workspace_spend_since(day, month).await.unwrap();
        assert_eq!(spend.get(&a.id), Some(&(300, 510)), "today: g3; this month: g2 (cost + fee) and g3");
        assert_eq!(spend.get(&b.id), Some(&(0, 0)));
        let rows = s.list_generations(&a.id).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["g1", "g2", "g3"]);
        assert_eq!((rows[1].cost_micros, rows[1].fee_micros, rows[1].is_byok), (200, 10, true));
        assert!(s.list_generations("nope").await.unwrap().is_empty());
    })
    .await;
}
