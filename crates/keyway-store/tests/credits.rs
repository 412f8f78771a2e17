//! Credits ledger and activity aggregates, the same checks on SQLite and (when
//! `KEYWAY_TEST_POSTGRES_URL` is set) PostgreSQL, as in conformance.rs.
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
async fn ledger_totals_charge_fee_for_byok_and_cost_for_system() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        s.add_credits(&a.id, CreditKind::Topup, 5_000_000, Some("first"), Some("k1")).await.unwrap();
        s.add_credits(&a.id, CreditKind::Topup, 1_000_000, None, None).await.unwrap();
        s.add_credits(&a.id, CreditKind::Adjustment, -250_000, Some("refund reversal"), None).await.unwrap();
        assert!(matches!(s.add_credits(&a.id, CreditKind::Topup, 0, None, None).await, Err(StoreError::Conflict(_))));
        s.add_credits(&b.id, CreditKind::Topup, 42, None, None).await.unwrap();

        let t0 = 100 * DAY;
        s.insert_generations(&[
            gen("g1", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), false, 1_000, 0, t0),
            gen("g2", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), true, 2_000, 100, t0 + 1),
            gen("g3", &a.id, "kb", "openai/gpt-4o", Some("azure"), true, 3_000, 0, t0 + DAY),
            gen("g4", &a.id, "kb", "openai/gpt-4o", None, false, 0, 0, t0 + DAY + 5),
            gen("g5", &b.id, "kc", "openai/gpt-4o", Some("openai"), false, 7, 0, t0 - DAY),
        ])
        .await
        .unwrap();

        let totals = s.credit_totals(t0 + DAY).await.unwrap();
        let ta = totals[&a.id];
        assert_eq!(ta.credits_micros, 5_750_000);
        assert_eq!(ta.usage_micros, 1_000 + 100, "system pays cost, BYOK pays fee");
        assert_eq!(ta.usage_since_micros, 0, "g3 was a waived BYOK request, g4 failed");
        assert_eq!(ta.byok_requests_since, 1, "only BYOK requests an upstream served count toward the waiver");
        assert_eq!(totals[&b.id].credits_micros, 42);
        assert_eq!(totals[&b.id].usage_micros, 7);

        let spend = s.key_spend_since(t0).await.unwrap();
        assert_eq!(spend["ka"], 1_000 + 2_100);
        assert_eq!(spend["kb"], 3_000);
        assert!(!spend.contains_key("kc"));

        let entries = s.list_credit_entries(&a.id, 10).await.unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().any(|e| e.kind == CreditKind::Adjustment && e.amount_micros == -250_000));
        assert!(entries.iter().any(|e| e.note.as_deref() == Some("first") && e.created_by.as_deref() == Some("k1")));
    })
    .await;
}

#[tokio::test]
async fn activity_groups_and_filters() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        let t0 = 200 * DAY;
        s.insert_generations(&[
            gen("g1", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), false, 1_000, 0, t0),
            gen("g2", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), true, 2_000, 100, t0 + 1),
            gen("g3", &a.id, "kb", "openai/gpt-4o", Some("azure"), true, 3_000, 0, t0 + DAY),
            gen("g4", &a.id, "kb", "openai/gpt-4o", None, false, 0, 0, t0 + DAY + 5),
            gen("g5", &b.id, "kc", "openai/gpt-4o", Some("openai"), false, 7, 0, t0),
            gen("g6", &a.id, "ka", "openai/gpt-4o", Some("openai"), false, 9, 0, t0 + 10 * DAY),
        ])
        .await
        .unwrap();
        let to = t0 + 2 * DAY;

        let by_model = s.activity(Some(&a.id), t0, to, ActivityGroup::Model).await.unwrap();
        assert_eq!(by_model.len(), 2);
        let mini = by_model.iter().find(|r| r.model == "openai/gpt-4o-mini").unwrap();
        assert_eq!((mini.requests, mini.succeeded, mini.byok_requests), (2, 2, 1));
        assert_eq!((mini.prompt_tokens, mini.completion_tokens, mini.cached_tokens), (20, 10, 4));
        assert_eq!((mini.cost_micros, mini.fee_micros, mini.charged_micros, mini.byok_cost_micros), (3_000, 100, 1_100, 2_000));
        let big = by_model.iter().find(|r| r.model == "openai/gpt-4o").unwrap();
        assert_eq!((big.requests, big.succeeded), (2, 1), "a failed request counts under the requested model");

        let by_provider = s.activity(Some(&a.id), t0, to, ActivityGroup::Provider).await.unwrap();
        let names: Vec<&str> = by_provider.iter().map(|r| r.provider.as_str()).collect();
        assert_eq!(names, vec!["", "azure", "openai"]);

        let by_key = s.activity(Some(&a.id), t0, to, ActivityGroup::Key).await.unwrap();
        assert_eq!(by_key.iter().map(|r| (r.api_key_hash.as_str(), r.requests)).collect::<Vec<_>>(), vec![("ka", 2), ("kb", 2)]);

        let by_cred = s.activity(Some(&a.id), t0, to, ActivityGroup::Credential).await.unwrap();
        assert!(by_cred.iter().any(|r| r.credential_id == "cred-1" && r.requests == 2));

        let by_day = s.activity(Some(&a.id), t0, to, ActivityGroup::Day).await.unwrap();
        assert_eq!(by_day.iter().map(|r| (r.day, r.requests)).collect::<Vec<_>>(), vec![(200, 2), (201, 2)]);

        let or = s.activity(Some(&a.id), t0, to, ActivityGroup::DayModelProvider).await.unwrap();
        assert_eq!(or.len(), 3);

        // Without a workspace filter (an admin): workspace B's row is there too.
        let all = s.activity(None, t0, to, ActivityGroup::Model).await.unwrap();
        assert_eq!(all.iter().map(|r| r.requests).sum::<i64>(), 5);
        assert!(s.activity(Some(&a.id), to, to + DAY, ActivityGroup::Model).await.unwrap().is_empty());
    })
    .await;
}
