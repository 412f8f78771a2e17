//! `Store::bootstrap`: first-start setup is one transaction, idempotent, and safe when two
//! nodes start at once. SQLite always; PostgreSQL when `KEYWAY_TEST_POSTGRES_URL` is set
//! (as in conformance.rs; under CI=true a missing URL is a failure).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_crypto::hash_api_key;
use keyway_store::*;

mod common;
use common::*;

const RAW: &str = "kw-mgmt-store-bootstrap-test-0123456789";

fn created(b: Bootstrapped) -> (String, Box<ApiKeyRecord>, Option<zeroize::Zeroizing<String>>) {
    match b {
        Bootstrapped::Created { workspace_id, key, raw_key } => (workspace_id, key, raw_key),
        Bootstrapped::Existing { .. } => panic!("expected a fresh bootstrap"),
    }
}

#[tokio::test]
async fn bootstrap_with_a_supplied_key_then_again_is_a_no_op() {
    each_engine(|s| async move {
        let (ws, key, raw) = created(s.bootstrap("mk-1", Some(RAW)).await.unwrap());
        assert!(raw.is_none(), "a supplied key is not echoed back");
        assert_eq!(key.hash, hash_api_key(RAW));
        assert!(key.admin && key.kind == KeyKind::Management && key.workspace_id == ws);
        assert_eq!(s.get_workspace("default").await.unwrap().id, ws);
        assert_eq!(s.get_meta("default_workspace").await.unwrap().as_deref(), Some(ws.as_str()));
        assert_eq!(s.get_meta("master_key_id").await.unwrap().as_deref(), Some("mk-1"));

        // The next start, same key: nothing new, no duplicate-key error.
        match s.bootstrap("mk-1", Some(RAW)).await.unwrap() {
            Bootstrapped::Existing { workspace_id, master_key_id } => {
                assert_eq!(workspace_id, ws);
                assert_eq!(master_key_id.as_deref(), Some("mk-1"));
            }
            Bootstrapped::Created { .. } => panic!("bootstrapped twice"),
        }
        assert_eq!(s.count_keys().await.unwrap(), 1);
        assert_eq!(s.list_workspaces().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn bootstrap_generates_a_key_shown_once() {
    each_engine(|s| async move {
        let (ws, key, raw) = created(s.bootstrap("mk-1", None).await.unwrap());
        let raw = raw.expect("a generated key is returned");
        assert!(raw.starts_with("kw-mgmt-"));
        assert_eq!(s.find_key_by_hash(&hash_api_key(&raw)).await.unwrap().unwrap(), *key);
        assert_eq!(key.workspace_id, ws);
        assert!(matches!(s.bootstrap("mk-1", None).await.unwrap(), Bootstrapped::Existing { .. }));
        assert_eq!(s.count_keys().await.unwrap(), 1);
    })
    .await;
}

/// What the old, non-transactional bootstrap left after a crash between its writes: the
/// workspace and the supplied key, but no meta. The next start must finish the job.
#[tokio::test]
async fn bootstrap_finishes_what_an_interrupted_older_start_left() {
    each_engine(|s| async move {
        let old_ws = s.create_workspace("Default", "default").await.unwrap();
        let old_key = s.insert_key(&old_ws.id, "bootstrap", KeyKind::Management, true, &Limits::default(), RAW).await.unwrap();
        let (ws, key, _) = created(s.bootstrap("mk-1", Some(RAW)).await.unwrap());
        assert_eq!(ws, old_ws.id);
        assert_eq!(key.id, old_key.id, "the registered key is reused");
        assert_eq!(s.count_keys().await.unwrap(), 1);
        assert_eq!(s.get_meta("default_workspace").await.unwrap().as_deref(), Some(ws.as_str()));
    })
    .await;
}

/// A failure after the first write rolls everything back: no workspace, no meta.
#[tokio::test]
async fn a_failed_bootstrap_writes_nothing() {
    each_engine(|s| async move {
        // The supplied key already belongs to an inference key elsewhere: refused late, after
        // the workspace insert ran inside the transaction.
        let other = s.create_workspace("Other", "other").await.unwrap();
        s.insert_key(&other.id, "clash", KeyKind::Inference, false, &Limits::default(), RAW).await.unwrap();
        let err = s.bootstrap("mk-1", Some(RAW)).await.err().expect("a clashing key must fail");
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(matches!(s.get_workspace("default").await, Err(StoreError::NotFound)), "workspace insert rolled back");
        assert_eq!(s.get_meta("default_workspace").await.unwrap(), None);
        assert_eq!(s.get_meta("master_key_id").await.unwrap(), None);
        assert_eq!(s.count_keys().await.unwrap(), 1);
    })
    .await;
}

/// Two nodes starting on one empty database at once: one bootstraps, the other sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bootstraps_create_one_workspace_and_one_key() {
    each_engine(|s| async move {
        let (a, b) = tokio::join!(s.bootstrap("mk-1", None), s.bootstrap("mk-1", None));
        let (a, b) = (a.unwrap(), b.unwrap());
        let ws = |x: &Bootstrapped| match x {
            Bootstrapped::Created { workspace_id, .. } | Bootstrapped::Existing { workspace_id, .. } => workspace_id.clone(),
        };
        assert_eq!(ws(&a), ws(&b));
        let fresh = [&a, &b].iter().filter(|x| matches!(x, Bootstrapped::Created { .. })).count();
        assert_eq!(fresh, 1, "exactly one start bootstraps");
        assert_eq!(s.count_keys().await.unwrap(), 1);
        assert_eq!(s.list_workspaces().await.unwrap().len(), 1);
    })
    .await;
}
