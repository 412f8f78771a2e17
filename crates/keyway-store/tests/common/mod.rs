//! What every store test file needs: a store on each engine (SQLite always; PostgreSQL when
//! `KEYWAY_TEST_POSTGRES_URL` names a server — the test script always sets it, and under
//! CI=true a missing URL is a failure rather than a skip), and a generation row to insert.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_crypto::{Keyring, MasterKey};
use keyway_store::{GenerationRow, Store};
use std::sync::Arc;

pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path()), Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap();
    (store, dir)
}

/// The URL of a fresh PostgreSQL database, so tests never see each other's rows.
pub async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("KEYWAY_TEST_POSTGRES_URL") else {
        assert!(std::env::var("CI").is_err(), "KEYWAY_TEST_POSTGRES_URL must be set under CI");
        eprintln!("skipping PostgreSQL half: KEYWAY_TEST_POSTGRES_URL is not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await.unwrap();
    let name = format!("keyway_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let (head, _) = base.rsplit_once('/').expect("KEYWAY_TEST_POSTGRES_URL must end in /<database>");
    Some(format!("{head}/{name}"))
}

pub async fn postgres() -> Option<Store> {
    let url = postgres_url().await?;
    Some(Store::connect(&url, Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap())
}

/// Runs `f` on a fresh SQLite store, then on a fresh PostgreSQL one when there is a server.
pub async fn each_engine<F, Fut>(f: F)
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

/// (store URL, the temp dir holding the SQLite file) for each engine, for tests that open and
/// reopen a store themselves.
pub async fn engine_urls() -> Vec<(String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![(Store::sqlite_url(dir.path()), Some(dir))];
    if let Some(pg) = postgres_url().await {
        out.push((pg, None));
    }
    out
}

/// A generation row; `provider: None` makes it a failed request (502, nothing served).
#[allow(clippy::too_many_arguments)]
pub fn gen(id: &str, ws: &str, key: &str, model: &str, provider: Option<&str>, byok: bool, cost: i64, fee: i64, at: i64) -> GenerationRow {
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
        route_plan: None,
    }
}

/// A database at `url` as a release before migration `first_left_out` (e.g. `"0009"`) left it:
/// migrated with only the migrations named before it. The pool and the URL to open it again
/// with `Store::connect` (which runs the rest).
pub async fn migrated_before(url: String, first_left_out: &str) -> (sqlx::AnyPool, String) {
    sqlx::any::install_default_drivers();
    let old = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for e in std::fs::read_dir(&src).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.as_str() < first_left_out {
            std::fs::copy(src.join(&name), old.path().join(&name)).unwrap();
        }
    }
    let url = if url.starts_with("sqlite:") { format!("{url}?mode=rwc") } else { url };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.path()).await.unwrap().run(&pool).await.unwrap();
    (pool, url)
}
