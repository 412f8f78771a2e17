//! Global BYOK credentials (`workspace_id` NULL, OpenRouter's `workspace_id: null`): usable in
//! every workspace, writable only without a workspace scope, sealed with their own AAD marker,
//! and the 0004 migration that made the column nullable keeps existing rows. SQLite always;
//! PostgreSQL when `KEYWAY_TEST_POSTGRES_URL` is set (as in conformance.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_core::{Credential, ProviderSlug};
use keyway_crypto::{Keyring, MasterKey};
use keyway_store::*;
use serde_json::json;
use std::sync::Arc;

mod common;
use common::*;

fn key(s: &str) -> Credential {
    Credential::parse(ProviderSlug::OpenAi, &json!(s)).unwrap()
}

fn page() -> Page {
    Page { offset: 0, limit: 50 }
}

fn ids(rows: &[(ByokRecord, Result<Credential, StoreError>)]) -> Vec<String> {
    rows.iter().map(|(r, _)| r.name.clone()).collect()
}

#[tokio::test]
async fn global_credentials_route_in_every_workspace_and_only_an_unscoped_caller_writes_them() {
    for (url, _dir) in engine_urls().await {
        let s = Store::connect(&url, Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap();
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        let f = |name: &str, sort_order| ByokFields { name: name.into(), sort_order, ..Default::default() };
        s.create_byok(&a.id, ProviderSlug::OpenAi, &f("a-own", 0), &key("sk-a-own-0001")).await.unwrap();
        let g0 = s.create_byok_in(None, ProviderSlug::OpenAi, &f("global-0", 0), &key("sk-global-0000")).await.unwrap();
        s.create_byok_in(None, ProviderSlug::OpenAi, &f("global-first", -1), &key("sk-global-first")).await.unwrap();
        assert_eq!(g0.workspace_id, None);
        assert!(g0.is_global() && g0.usable_in(&a.id) && g0.usable_in(&b.id));

        // Routing: sort_order decides; at equal sort_order the workspace's own key comes first.
        let in_a = s.load_byok_for_routing(&a.id).await.unwrap();
        assert_eq!(ids(&in_a), ["global-first", "a-own", "global-0"]);
        assert!(in_a.iter().all(|(_, c)| c.is_ok()), "every row opens");
        let in_b = s.load_byok_for_routing(&b.id).await.unwrap();
        assert_eq!(ids(&in_b), ["global-first", "global-0"]);
        assert_eq!(in_b[1].1.as_ref().unwrap().secret_strings(), vec!["sk-global-0000"]);

        // Lists: a workspace's list is what it may route with; unscoped is everything once.
        assert_eq!(s.list_byok(Some(&a.id), None, page()).await.unwrap().1, 3);
        assert_eq!(s.list_byok(Some(&b.id), None, page()).await.unwrap().1, 2);
        assert_eq!(s.list_byok(None, None, page()).await.unwrap().1, 3);

        // A workspace scope reads a global credential but can't change or delete it.
        assert!(s.get_byok(Some(&b.id), &g0.id).await.is_ok());
        let rename = ByokPatch { name: Some("renamed".into()), ..Default::default() };
        assert!(matches!(s.update_byok(Some(&b.id), &g0.id, &rename, None).await, Err(StoreError::NotFound)));
        assert!(matches!(s.delete_byok(Some(&a.id), &g0.id).await, Err(StoreError::NotFound)));

        // Unscoped (admin) writes work and the new secret opens under the global binding.
        let up = s.update_byok(None, &g0.id, &rename, Some(&key("sk-global-rotated"))).await.unwrap();
        assert_eq!((up.name.as_str(), up.workspace_id.as_deref()), ("renamed", None));
        assert_eq!(s.open_byok(Some(&a.id), &g0.id).await.unwrap().1.secret_strings(), vec!["sk-global-rotated"]);
        s.open_keyring().await.unwrap();
        let rotated = s.rotate_keyring().await.unwrap();
        assert!(rotated.failed.is_empty() && rotated.rewrapped >= 1, "rotation reads NULL workspace ids: {rotated:?}");
        assert_eq!(s.open_byok(Some(&a.id), &g0.id).await.unwrap().1.secret_strings(), vec!["sk-global-rotated"]);
        s.delete_byok(None, &g0.id).await.unwrap();
        assert_eq!(ids(&s.load_byok_for_routing(&b.id).await.unwrap()), ["global-first"]);
        s.close().await;
    }
}

#[tokio::test]
async fn moving_a_row_between_a_workspace_and_global_breaks_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let s = Store::connect(&url, Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap();
    let ws = s.create_workspace("W", "w").await.unwrap();
    let scoped = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &key("sk-scoped-0001")).await.unwrap();
    let global = s.create_byok_in(None, ProviderSlug::OpenAi, &ByokFields::default(), &key("sk-global-0001")).await.unwrap();
    // Someone with database access re-scopes both rows behind the gateway's back.
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE byok_credentials SET workspace_id = NULL WHERE id = $1").bind(&scoped.id).execute(&raw).await.unwrap();
    sqlx::query("UPDATE byok_credentials SET workspace_id = $1 WHERE id = $2").bind(&ws.id).bind(&global.id).execute(&raw).await.unwrap();
    assert!(matches!(s.open_byok(None, &scoped.id).await, Err(StoreError::Crypto(_))));
    assert!(matches!(s.open_byok(None, &global.id).await, Err(StoreError::Crypto(_))));
}

#[tokio::test]
async fn migration_0004_keeps_rows_written_before_it() {
    for (url, _dir) in engine_urls().await {
        // A database as a release before 0004 left it, with one sealed credential.
        let (pool, url) = migrated_before(url, "0004").await;
        let ring = Keyring::new(MasterKey::generate());
        let (ws, id) = ("ws-before-0004", "cred-before-0004");
        let plain = serde_json::to_vec(&key("sk-before-0004").to_secret_json()).unwrap();
        let sealed = ring.seal(&plain, format!("keyway:byok:{ws}:{id}").as_bytes()).unwrap();
        sqlx::query("INSERT INTO workspaces (id, name, slug, created_at) VALUES ($1, 'Old', 'old', 1)").bind(ws).execute(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO byok_credentials (id, workspace_id, provider, name, label, sealed, sort_order, created_at, updated_at) \
             VALUES ($1, $2, 'openai', 'old key', 'sk-...0004', $3, 7, 1, 1)",
        )
        .bind(id)
        .bind(ws)
        .bind(sealed)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let s = Store::connect(&url, Arc::new(ring)).await.unwrap();
        let (rec, cred) = s.open_byok(Some(ws), id).await.unwrap();
        assert_eq!((rec.workspace_id.as_deref(), rec.sort_order, rec.name.as_str()), (Some(ws), 7, "old key"));
        assert_eq!(cred.secret_strings(), vec!["sk-before-0004"]);
        // The rebuilt table still refuses a workspace that doesn't exist, and accepts NULL.
        let bad = s.create_byok("no-such-workspace", ProviderSlug::OpenAi, &ByokFields::default(), &key("sk-x-000000001")).await;
        assert!(bad.is_err(), "foreign key kept");
        assert!(s.create_byok_in(None, ProviderSlug::OpenAi, &ByokFields::default(), &key("sk-x-000000002")).await.is_ok());
        s.close().await;
    }
}
