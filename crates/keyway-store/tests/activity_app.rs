//! `ActivityGroup::App`: activity by the attribution headers (`HTTP-Referer`, `X-Title`) on
//! SQLite and, when `KEYWAY_TEST_POSTGRES_URL` is set, PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_crypto::{Keyring, MasterKey};
use keyway_store::*;
use std::sync::Arc;

fn gen(id: &str, ws: &str, referer: Option<&str>, title: Option<&str>, at: i64) -> GenerationRow {
    GenerationRow {
        id: id.into(),
        workspace_id: ws.into(),
        api_key_hash: "k".into(),
        user_id: None,
        requested_model: "openai/gpt-4o-mini".into(),
        model: Some("openai/gpt-4o-mini".into()),
        provider: Some("openai".into()),
        credential_id: Some("system".into()),
        is_byok: false,
        streamed: false,
        status: 200,
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 0,
        cache_write_tokens: 0,
        has_usage: true,
        latency_ms: 3,
        ttft_ms: None,
        attempts: "[]".into(),
        finish_reason: Some("stop".into()),
        app_referer: referer.map(str::to_owned),
        app_title: title.map(str::to_owned),
        cost_micros: 100,
        fee_micros: 0,
        created_at: at,
    }
}

async fn check(s: Store) {
    let ws = s.create_workspace("W", "w").await.unwrap();
    s.insert_generations(&[
        gen("g1", &ws.id, Some("https://a.example"), Some("App A"), 10),
        gen("g2", &ws.id, Some("https://a.example"), Some("App A"), 11),
        gen("g3", &ws.id, Some("https://a.example"), None, 12),
        gen("g4", &ws.id, None, None, 13),
    ])
    .await
    .unwrap();
    let rows = s.activity(Some(&ws.id), 0, 100, ActivityGroup::App).await.unwrap();
    let got: Vec<(&str, &str, i64, i64)> = rows.iter().map(|r| (r.app_referer.as_str(), r.app_title.as_str(), r.requests, r.cost_micros)).collect();
    assert_eq!(got, [("", "", 1, 100), ("https://a.example", "", 1, 100), ("https://a.example", "App A", 2, 200)]);
    assert_eq!(ActivityGroup::parse("app"), Some(ActivityGroup::App));
    // Other groupings leave the app columns empty.
    let by_model = s.activity(Some(&ws.id), 0, 100, ActivityGroup::Model).await.unwrap();
    assert_eq!((by_model.len(), by_model[0].app_referer.as_str()), (1, ""));
}

#[tokio::test]
async fn activity_grouped_by_app() {
    let dir = tempfile::tempdir().unwrap();
    check(Store::connect(&Store::sqlite_url(dir.path()), Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap()).await;
    let Ok(base) = std::env::var("KEYWAY_TEST_POSTGRES_URL") else {
        assert!(std::env::var("CI").is_err(), "KEYWAY_TEST_POSTGRES_URL must be set under CI");
        eprintln!("skipping PostgreSQL half: KEYWAY_TEST_POSTGRES_URL is not set");
        return;
    };
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await.unwrap();
    let name = format!("keyway_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let (head, _) = base.rsplit_once('/').expect("bad KEYWAY_TEST_POSTGRES_URL");
    check(Store::connect(&format!("{head}/{name}"), Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap()).await;
}
