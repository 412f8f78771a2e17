//! The same behaviour checks against every engine: SQLite always; PostgreSQL when
//! `KEYWAY_TEST_POSTGRES_URL` names a server (the test script always sets it; without it the
//! PostgreSQL half is reported as skipped, and under CI=true that is a failure).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_core::{Credential, ProviderSlug};
use keyway_crypto::{Keyring, MasterKey};
use keyway_store::*;
use serde_json::json;
use std::sync::Arc;

mod common;
use common::*;

fn page(offset: i64, limit: i64) -> Page {
    Page { offset, limit }
}

#[tokio::test]
async fn byok_crud_and_secret_sealing() {
    each_engine(|s| async move {
        let ws = s.create_workspace("Acme", "acme").await.unwrap();
        let cred = Credential::parse(ProviderSlug::OpenAi, &json!("sk-test-SECRETVALUE-1234")).unwrap();
        let f = ByokFields { name: "main".into(), sort_order: 2, allowed_models: vec!["openai/gpt-4o".into()], ..Default::default() };
        let rec = s.create_byok(&ws.id, ProviderSlug::OpenAi, &f, &cred).await.unwrap();
        assert_eq!(rec.label, "sk-...1234");
        let sealed = s.debug_sealed(&rec.id).await.unwrap();
        assert!(!sealed.contains("SECRETVALUE"), "plaintext reached the database");

        let (got, opened) = s.open_byok(Some(&ws.id), &rec.id).await.unwrap();
        assert_eq!(got, rec);
        assert_eq!(opened.secret_strings(), vec!["sk-test-SECRETVALUE-1234"]);

        // patch without a key keeps the secret, with a key rotates it in place
        let p = ByokPatch { name: Some("renamed".into()), disabled: Some(true), ..Default::default() };
        let up = s.update_byok(Some(&ws.id), &rec.id, &p, None).await.unwrap();
        assert!(up.disabled && up.name == "renamed" && up.label == rec.label);
        assert_eq!(s.open_byok(None, &rec.id).await.unwrap().1.secret_strings(), vec!["sk-test-SECRETVALUE-1234"]);
        let new = Credential::parse(ProviderSlug::OpenAi, &json!("sk-rotated-9999")).unwrap();
        let up = s.update_byok(Some(&ws.id), &rec.id, &ByokPatch::default(), Some(&new)).await.unwrap();
        assert_eq!(up.label, "sk-...9999");
        assert_eq!(up.id, rec.id);
        assert_eq!(s.open_byok(None, &rec.id).await.unwrap().1.secret_strings(), vec!["sk-rotated-9999"]);

        s.delete_byok(Some(&ws.id), &rec.id).await.unwrap();
        assert!(matches!(s.get_byok(None, &rec.id).await, Err(StoreError::NotFound)));
    })
    .await;
}

#[tokio::test]
async fn workspace_isolation_and_pagination() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        assert!(matches!(s.create_workspace("A2", "a").await, Err(StoreError::Conflict(_))));
        let cred = Credential::parse(ProviderSlug::Anthropic, &json!("sk-ant-abcdefgh1234")).unwrap();
        for i in 0..5 {
            let f = ByokFields { name: format!("k{i}"), sort_order: 4 - i, ..Default::default() };
            s.create_byok(&a.id, ProviderSlug::Anthropic, &f, &cred).await.unwrap();
        }
        let oa = Credential::parse(ProviderSlug::OpenAi, &json!("sk-openai-000011112222")).unwrap();
        let in_b = s.create_byok(&b.id, ProviderSlug::OpenAi, &ByokFields::default(), &oa).await.unwrap();

        let (p1, total) = s.list_byok(Some(&a.id), None, page(0, 2)).await.unwrap();
        assert_eq!(total, 5);
        assert_eq!(p1.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["k4", "k3"]);
        let (p3, _) = s.list_byok(Some(&a.id), None, page(4, 2)).await.unwrap();
        assert_eq!(p3.len(), 1);
        let (none, total) = s.list_byok(Some(&a.id), Some(ProviderSlug::OpenAi), page(0, 50)).await.unwrap();
        assert!(none.is_empty() && total == 0);
        let (all, total) = s.list_byok(None, None, page(0, 50)).await.unwrap();
        assert_eq!((all.len(), total), (6, 6));

        // workspace A can't see, change or delete B's credential
        assert!(matches!(s.get_byok(Some(&a.id), &in_b.id).await, Err(StoreError::NotFound)));
        assert!(matches!(s.update_byok(Some(&a.id), &in_b.id, &ByokPatch::default(), None).await, Err(StoreError::NotFound)));
        assert!(matches!(s.delete_byok(Some(&a.id), &in_b.id).await, Err(StoreError::NotFound)));
        assert!(s.get_byok(Some(&b.id), &in_b.id).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn ciphertext_copied_to_another_row_fails_to_open() {
    each_engine(|s| async move {
        let ws = s.create_workspace("W", "w").await.unwrap();
        let c1 = Credential::parse(ProviderSlug::OpenAi, &json!("sk-one-111122223333")).unwrap();
        let c2 = Credential::parse(ProviderSlug::OpenAi, &json!("sk-two-444455556666")).unwrap();
        let r1 = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c1).await.unwrap();
        let r2 = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c2).await.unwrap();
        s.debug_copy_sealed(&r1.id, &r2.id).await.unwrap();
        assert!(matches!(s.open_byok(None, &r2.id).await, Err(StoreError::Crypto(_))));
        let loaded = s.load_byok_for_routing(&ws.id).await.unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.iter().filter(|(_, c)| c.is_ok()).count(), 1, "the intact row still loads");
    })
    .await;
}

#[tokio::test]
async fn api_keys_are_stored_as_hashes() {
    each_engine(|s| async move {
        let ws = s.create_workspace("W", "w").await.unwrap();
        let limits = Limits { requests_per_minute: Some(60), ..Default::default() };
        let (rec, raw) = s.create_key(&ws.id, "ci", KeyKind::Inference, false, &limits).await.unwrap();
        assert!(raw.starts_with("kw-"));
        assert_eq!(rec.hash, keyway_crypto::hash_api_key(&raw));
        assert!(!rec.label.contains(&raw[3..20]));
        assert_eq!(s.find_key_by_hash(&rec.hash).await.unwrap().unwrap().limits, limits);
        assert!(s.find_key_by_hash("nope").await.unwrap().is_none());
        let up = s.update_key(Some(&ws.id), &rec.hash, &KeyPatch { disabled: Some(true), ..Default::default() }).await.unwrap();
        assert!(up.disabled);
        let (list, total) = s.list_keys(Some(&ws.id), page(0, 10)).await.unwrap();
        assert_eq!((list.len(), total), (1, 1));
        let other = s.create_workspace("O", "o").await.unwrap();
        assert!(matches!(s.get_key(Some(&other.id), &rec.id).await, Err(StoreError::NotFound)));
        s.delete_key(Some(&ws.id), &rec.id).await.unwrap();
        assert!(s.find_key_by_hash(&rec.hash).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn master_key_rotation_reseals_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let root = MasterKey::generate();
    let root_b64 = root.to_base64();
    // A row sealed directly under the root, as stores from before the keyring hold them.
    let s = Store::connect(&url, Arc::new(Keyring::new(root))).await.unwrap();
    let ws = s.create_workspace("W", "w").await.unwrap();
    let c = Credential::parse(ProviderSlug::OpenAi, &json!("sk-rotate-me-0000")).unwrap();
    let r = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
    s.close().await;

    let s = Store::connect(&url, Arc::new(Keyring::new(MasterKey::from_base64(&root_b64).unwrap()))).await.unwrap();
    s.open_keyring().await.unwrap();
    let first = s.rotate_keyring().await.unwrap();
    assert_eq!((first.rewrapped, first.already_current, first.failed.len(), first.resumed), (1, 0, 0, false));
    let second = s.rotate_keyring().await.unwrap();
    assert_ne!(second.key_id, first.key_id, "a finished rotation is not resumed: a new key each time");
    assert_eq!(second.rewrapped, 1);
    let keys = s.keyring_keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.state == "active").count(), 1);
    assert_eq!(keys.iter().find(|k| k.id == second.key_id).unwrap().records, 1);
    s.close().await;

    // The root alone opens it after a restart: the keyring's keys live in the store.
    let s = Store::connect(&url, Arc::new(Keyring::new(MasterKey::from_base64(&root_b64).unwrap()))).await.unwrap();
    s.open_keyring().await.unwrap();
    assert_eq!(s.open_byok(None, &r.id).await.unwrap().1.secret_strings(), vec!["sk-rotate-me-0000"]);
    s.close().await;
    let other = Store::connect(&url, Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap();
    assert!(other.open_keyring().await.is_err(), "another root can't open the keyring");
    assert!(other.open_byok(None, &r.id).await.is_err(), "a different key can't open it");
}

/// Issue #20, defect 1: a rotation that fails part-way (a row that can't be opened) must leave
/// every other row openable after a restart, report the bad row by id, and finish when re-run.
#[tokio::test]
async fn a_rotation_that_fails_part_way_loses_nothing_and_resumes() {
    for (url, _dir) in engine_urls().await {
        let root_b64 = MasterKey::generate().to_base64();
        let ring = || Arc::new(Keyring::new(MasterKey::from_base64(&root_b64).unwrap()));
        let s = Store::connect(&url, ring()).await.unwrap();
        s.open_keyring().await.unwrap();
        let ws = s.create_workspace("W", &format!("w-{}", uuid::Uuid::new_v4())).await.unwrap();
        let mut good = Vec::new();
        for i in 0..5 {
            let c = Credential::parse(ProviderSlug::OpenAi, &json!(format!("sk-good-{i}-000000"))).unwrap();
            good.push(s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap().id);
        }
        let c = Credential::parse(ProviderSlug::OpenAi, &json!("sk-bad-0000000")).unwrap();
        let bad = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
        // Damage one row's sealed value (the last data key byte), as disk corruption would.
        let raw = sqlx::AnyPool::connect(&url).await.unwrap();
        let sealed = s.debug_sealed(&bad.id).await.unwrap();
        let mut parts: Vec<String> = sealed.split('.').map(str::to_owned).collect();
        let w = parts[2].pop().unwrap();
        parts[2].push(if w == 'A' { 'B' } else { 'A' });
        sqlx::query("UPDATE byok_credentials SET sealed = $1 WHERE id = $2").bind(parts.join(".")).bind(&bad.id).execute(&raw).await.unwrap();

        let report = s.rotate_keyring().await.unwrap();
        assert_eq!(report.failed.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), [bad.id.as_str()], "{report:?}");
        assert!(report.rewrapped >= 5);
        s.close().await;

        // A restart with nothing but the root key: every good row opens.
        let s = Store::connect(&url, ring()).await.unwrap();
        s.open_keyring().await.unwrap();
        for (i, id) in good.iter().enumerate() {
            assert_eq!(s.open_byok(None, id).await.unwrap().1.secret_strings(), vec![format!("sk-good-{i}-000000")]);
        }
        // Re-run: it resumes the same key, and still names the bad row.
        let again = s.rotate_keyring().await.unwrap();
        assert!(again.resumed && again.key_id == report.key_id, "{again:?}");
        assert_eq!(again.rewrapped, 0);
        assert_eq!(again.failed.len(), 1);
        // The operator deletes the broken credential; the next run finishes.
        s.delete_byok(None, &bad.id).await.unwrap();
        let done = s.rotate_keyring().await.unwrap();
        assert!(done.resumed && done.failed.is_empty(), "{done:?}");
        let fresh = s.rotate_keyring().await.unwrap();
        assert!(!fresh.resumed && fresh.key_id != report.key_id, "finished: the next run is a new rotation");
        s.close().await;
    }
}

/// Changing the root key: start with the new one and the old one in `retired_master_keys`;
/// the keyring's keys are re-sealed under the new root, after which the old one is not needed.
#[tokio::test]
async fn the_root_key_can_change_through_retired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let (old, new) = (MasterKey::generate().to_base64(), MasterKey::generate().to_base64());
    let key = |b: &str| MasterKey::from_base64(b).unwrap();
    let s = Store::connect(&url, Arc::new(Keyring::new(key(&old)))).await.unwrap();
    s.open_keyring().await.unwrap();
    let ws = s.create_workspace("W", "w").await.unwrap();
    let c = Credential::parse(ProviderSlug::OpenAi, &json!("sk-root-change-00")).unwrap();
    let r = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
    s.close().await;
    let s = Store::connect(&url, Arc::new(Keyring::new(key(&new)).with_retired(key(&old)))).await.unwrap();
    s.open_keyring().await.unwrap();
    s.close().await;
    let s = Store::connect(&url, Arc::new(Keyring::new(key(&new)))).await.unwrap();
    s.open_keyring().await.unwrap();
    assert_eq!(s.open_byok(None, &r.id).await.unwrap().1.secret_strings(), vec!["sk-root-change-00"]);
}

/// A rotation on one node: another node on the same store opens records sealed under the new
/// key without a restart (it reloads the keyring when a record names a key it does not hold).
#[tokio::test]
async fn a_node_learns_a_key_rotated_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let root = MasterKey::generate().to_base64();
    let ring = || Arc::new(Keyring::new(MasterKey::from_base64(&root).unwrap()));
    let a = Store::connect(&url, ring()).await.unwrap();
    a.open_keyring().await.unwrap();
    let b = Store::connect(&url, ring()).await.unwrap();
    b.open_keyring().await.unwrap();
    let ws = a.create_workspace("W", "w").await.unwrap();
    let c = Credential::parse(ProviderSlug::OpenAi, &json!("sk-two-nodes-000")).unwrap();
    let r = a.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
    a.rotate_keyring().await.unwrap();
    assert_eq!(b.open_byok(None, &r.id).await.unwrap().1.secret_strings(), vec!["sk-two-nodes-000"]);
    let routed = b.load_byok_for_routing(&ws.id).await.unwrap();
    assert!(routed.iter().all(|(_, c)| c.is_ok()));
}

#[tokio::test]
async fn restart_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let key = MasterKey::generate();
    let b64 = key.to_base64();
    let s = Store::connect(&url, Arc::new(Keyring::new(key))).await.unwrap();
    let ws = s.create_workspace("W", "w").await.unwrap();
    let c = Credential::parse(ProviderSlug::OpenAi, &json!("sk-persist-1234")).unwrap();
    let r = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
    s.set_meta("bootstrapped", "yes").await.unwrap();
    s.close().await;
    let s = Store::connect(&url, Arc::new(Keyring::new(MasterKey::from_base64(&b64).unwrap()))).await.unwrap();
    assert_eq!(s.get_meta("bootstrapped").await.unwrap().as_deref(), Some("yes"));
    assert_eq!(s.open_byok(Some(&ws.id), &r.id).await.unwrap().1.secret_strings(), vec!["sk-persist-1234"]);
}

#[tokio::test]
async fn an_unreadable_row_is_skipped_by_routing_and_listed_apart() {
    each_engine(|s| async move {
        let ws = s.create_workspace("W", "w").await.unwrap();
        let c = Credential::parse(ProviderSlug::OpenAi, &json!("sk-one-111122223333")).unwrap();
        let good = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
        let future = s.create_byok_in(None, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
        let broken = s.create_byok(&ws.id, ProviderSlug::OpenAi, &ByokFields::default(), &c).await.unwrap();
        s.debug_damage_byok(&future.id, "provider", "a-provider-from-a-newer-build").await.unwrap();
        s.debug_damage_byok(&broken.id, "model_mappings", "{oops").await.unwrap();
        let loaded = s.load_byok_for_routing(&ws.id).await.expect("one bad row failed the whole load");
        assert_eq!(loaded.iter().map(|(r, _)| r.id.as_str()).collect::<Vec<_>>(), [good.id.as_str()]);
        assert_eq!(s.unreadable_count(), 2);
        let (rows, total) = s.list_byok_listing(None, None, Page { offset: 0, limit: 50 }).await.unwrap();
        assert_eq!((rows.len(), total), (3, 3));
        let unreadable: Vec<_> = rows.iter().filter_map(|l| match l {
            ByokListing::Unreadable(u) => Some((u.id.clone(), u.provider.clone())),
            ByokListing::Readable(_) => None,
        }).collect();
        assert_eq!(unreadable.len(), 2);
        assert!(unreadable.contains(&(future.id.clone(), "a-provider-from-a-newer-build".to_owned())));
        // The readable-only list leaves them out; delete works on them.
        assert_eq!(s.list_byok(None, None, Page { offset: 0, limit: 50 }).await.unwrap().0.len(), 1);
        assert_eq!(s.delete_byok_row(Some(&ws.id), &future.id).await.err().map(|e| e.to_string()), Some(StoreError::NotFound.to_string()), "a workspace can't delete a global row");
        assert_eq!(s.delete_byok_row(None, &future.id).await.unwrap(), None);
        assert_eq!(s.delete_byok_row(Some(&ws.id), &broken.id).await.unwrap(), Some(ws.id.clone()));
    })
    .await;
}
