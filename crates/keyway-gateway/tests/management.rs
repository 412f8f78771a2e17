//! The management API: BYOK credentials, keys, workspaces, auth, bad input, secrecy, restarts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{json, Value};

const SECRET: &str = "sk-proj-MANAGEMENT-SECRET-abcdef9876";

#[tokio::test]
async fn byok_crud_happy_path() {
    let g = Gateway::start(|_| {}).await;
    let (s, v) = g
        .mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "name": "main", "key": SECRET,
            "sort_order": 3, "allowed_models": ["openai/gpt-4o-mini"], "is_required": true,
            "model_mappings": [{"gateway_model_slug": "openai/gpt-4o-mini", "custom_model_id": "ft:gpt-4o-mini:acme"}]})))
        .await;
    assert_eq!(s, 201, "{v}");
    let d = &v["data"];
    let id = d["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(d["label"], "sk-...9876");
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["always_use"], true);
    assert_eq!(d["is_required"], true);
    assert_eq!(d["sort_order"], 3);
    assert_eq!(d["model_mappings"][0]["custom_model_id"], "ft:gpt-4o-mini:acme");
    for field in ["workspace_id", "disabled", "is_fallback", "allowed_api_key_hashes", "allowed_user_ids", "created_at", "updated_at", "is_byok_only", "declared_region", "declared_zdr"] {
        assert!(d.get(field).is_some(), "missing {field}");
    }

    let (s, v) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["name"], "main");

    // patch without key keeps the secret; with key rotates it in place
    let (s, v) = g.mgmt("PATCH", &format!("/api/v1/byok/{id}"), Some(json!({"name": "renamed", "disabled": true, "key": ""}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["data"]["name"].as_str(), v["data"]["disabled"].as_bool(), v["data"]["label"].as_str()), (Some("renamed"), Some(true), Some("sk-...9876")));
    let (s, v) = g.mgmt("PATCH", &format!("/api/v1/byok/{id}"), Some(json!({"key": "sk-proj-rotated-000011112222"}))).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["label"], "sk-...2222");
    assert_eq!(v["data"]["id"], id.as_str());
    let (_, opened) = g.state.store.open_byok(None, &id).await.unwrap();
    assert_eq!(opened.secret_strings(), vec!["sk-proj-rotated-000011112222"]);

    let (s, v) = g.mgmt("DELETE", &format!("/api/v1/byok/{id}"), None).await;
    assert_eq!((s, v["deleted"].as_bool()), (200, Some(true)));
    let (s, v) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert_error(s, &v, 404);
}

#[tokio::test]
async fn byok_list_pagination_and_filters() {
    let g = Gateway::start(|_| {}).await;
    for i in 0..7 {
        g.add_byok(json!({"provider": if i % 2 == 0 { "openai" } else { "anthropic" }, "name": format!("k{i}"), "key": format!("sk-key-number-{i:04}")})).await;
    }
    let (s, v) = g.mgmt("GET", "/api/v1/byok?limit=3", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 7);
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    let (_, v2) = g.mgmt("GET", "/api/v1/byok?limit=3&offset=6", None).await;
    assert_eq!(v2["data"].as_array().unwrap().len(), 1);
    let (_, v3) = g.mgmt("GET", "/api/v1/byok?provider=openai", None).await;
    assert_eq!(v3["total_count"], 4);
    assert!(v3["data"].as_array().unwrap().iter().all(|d| d["provider"] == "openai"));
    let (_, d) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(d["data"].as_array().unwrap().len(), 7, "default limit is 50");
    for bad in ["limit=0", "limit=101", "limit=abc", "offset=-1", "provider=nope"] {
        let (s, v) = g.mgmt("GET", &format!("/api/v1/byok?{bad}"), None).await;
        assert_error(s, &v, 400);
    }
}

#[tokio::test]
async fn credential_shapes_are_validated_with_422() {
    let g = Gateway::start(|c| c.security.allowed_upstream_hosts.push("*.openai.azure.com".into())).await;
    let cases = [
        (json!({"provider": "amazon-bedrock", "key": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE"}}), "secretAccessKey"),
        (json!({"provider": "azure", "key": {"api_key": "k"}}), "resource_name"),
        (json!({"provider": "google-vertex", "key": {"type": "service_account", "project_id": "p"}}), "private_key"),
        (json!({"provider": "openai", "key": {"not": "a string"}}), "must be a string"),
        (json!({"provider": "azure", "key": [{"model_slug": "openai/gpt-4o", "endpoint_url": "https://169.254.169.254/x", "api_key": "k", "model_id": "d"}]}), "not allowed"),
    ];
    for (body, needle) in cases {
        let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(body.clone())).await;
        assert_error(s, &v, 422);
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{body} -> {v}");
    }
    let ok = json!({"provider": "azure", "key": [{"model_slug": "openai/gpt-4o", "endpoint_url": "https://acme.openai.azure.com", "api_key": "azure-secret-1", "model_id": "gpt4o-prod"}]});
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(ok)).await;
    assert_eq!(s, 201, "{v}");
    assert!(!v.to_string().contains("azure-secret-1"));
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 1, "failed creates stored nothing");
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_stores_nothing() {
    let g = Gateway::start(|c| c.max_body_bytes = 64 * 1024).await;
    let raw = |body: &'static str| {
        let g = &g;
        async move {
            let r = g.http.post(g.url("/api/v1/byok")).bearer_auth(MGMT).header("content-type", "application/json").body(body).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = raw("{not json").await;
    assert_error(s, &v, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("not valid JSON"));
    let (s, v) = raw("").await;
    assert_error(s, &v, 400);
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "nope", "key": "x"}))).await;
    assert_error(s, &v, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("unknown provider `nope`"));
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-x", "disabled": "yes"}))).await;
    assert_error(s, &v, 400);
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-x", "sort_order": "first"}))).await;
    assert_error(s, &v, 400);
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai"}))).await;
    assert_error(s, &v, 400);
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-abc", "is_fallback": true, "is_byok_only": true}))).await;
    assert_error(s, &v, 400);
    let big = "x".repeat(100 * 1024);
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "key": big}))).await;
    assert_error(s, &v, 413);
    let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "x", "limits": {"requests_per_minute": "many"}}))).await;
    assert_error(s, &v, 400);
    let (s, v) = g.mgmt("DELETE", "/api/v1/byok", None).await;
    assert_error(s, &v, 405);
    let (s, v) = g.mgmt("GET", "/api/v1/nothing-here", None).await;
    assert_error(s, &v, 404);
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 0);
    let (_, keys) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!(keys["total_count"], 1, "only the bootstrap key");
}

#[tokio::test]
async fn auth_401_403_and_workspace_isolation_404() {
    let g = Gateway::start(|_| {}).await;
    let (s, v, _) = g.req("GET", "/api/v1/byok", None, None).await;
    assert_error(s, &v, 401);
    let (s, v, _) = g.req("GET", "/api/v1/byok", Some("kw-mgmt-wrong-key-000000000000000000"), None).await;
    assert_error(s, &v, 401);
    let (s, v, _) = g.req("GET", "/api/v1/byok", Some("sk-not-ours"), None).await;
    assert_error(s, &v, 401);
    let (inference, _) = g.inference_key().await;
    let (s, v, _) = g.req("GET", "/api/v1/byok", Some(&inference), None).await;
    assert_error(s, &v, 403);
    let (s, v, _) = g.req("POST", "/api/v1/keys", Some(&inference), Some(json!({"name": "x"}))).await;
    assert_error(s, &v, 403);

    // workspace B with its own management key
    let (s, ws) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Team B"}))).await;
    assert_eq!(s, 201, "{ws}");
    let ws_b = ws["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ws["data"]["slug"], "team-b");
    let (s, kb) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "b-admin", "workspace_id": ws_b, "management": true}))).await;
    assert_eq!(s, 201, "{kb}");
    let mgmt_b = kb["key"].as_str().unwrap().to_owned();
    assert!(mgmt_b.starts_with("kw-mgmt-"));

    let in_a = g.add_byok(json!({"provider": "openai", "key": "sk-workspace-a-000000001"})).await;
    let (s, v, _) = g.req("POST", "/api/v1/byok", Some(&mgmt_b), Some(json!({"provider": "openai", "key": "sk-workspace-b-000000002"}))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["data"]["workspace_id"], ws_b.as_str());

    for (m, p) in [("GET", format!("/api/v1/byok/{in_a}")), ("PATCH", format!("/api/v1/byok/{in_a}")), ("DELETE", format!("/api/v1/byok/{in_a}"))] {
        let body = (m == "PATCH").then(|| json!({"name": "hijack"}));
        let (s, v, _) = g.req(m, &p, Some(&mgmt_b), body).await;
        assert_error(s, &v, 404);
    }
    let (_, list_b, _) = g.req("GET", "/api/v1/byok", Some(&mgmt_b), None).await;
    assert_eq!(list_b["total_count"], 1);
    let (s, v, _) = g.req("GET", &format!("/api/v1/byok?workspace_id={}", g.state.store.get_workspace("default").await.unwrap().id), Some(&mgmt_b), None).await;
    assert_error(s, &v, 404);
    let (s, v, _) = g.req("POST", "/api/v1/workspaces", Some(&mgmt_b), Some(json!({"name": "C"}))).await;
    assert_error(s, &v, 403);
    // Without `workspace_id` an admin lists the default workspace (OpenRouter's reference); with
    // it, the workspace named.
    let (_, default) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(default["total_count"], 1, "{default}");
    assert_eq!(default["data"][0]["id"], in_a.as_str());
    let (s, b) = g.mgmt("GET", &format!("/api/v1/byok?workspace_id={ws_b}"), None).await;
    assert_eq!((s, b["total_count"].as_i64(), b["data"][0]["workspace_id"].as_str()), (200, Some(1), Some(ws_b.as_str())), "{b}");
}

#[tokio::test]
async fn byok_list_workspace_id_must_be_a_uuid() {
    let g = Gateway::start(|_| {}).await;
    for bad in ["not-a-uuid", "default", "1234", "00000000-0000-0000-0000-00000000000g"] {
        let (s, v) = g.mgmt("GET", &format!("/api/v1/byok?workspace_id={bad}"), None).await;
        assert_error(s, &v, 400);
        assert!(v["error"]["message"].as_str().unwrap().contains("workspace_id"), "{v}");
    }
    // A well-formed id of no workspace is not found, not an empty list.
    let (s, v) = g.mgmt("GET", "/api/v1/byok?workspace_id=00000000-0000-4000-8000-000000000000", None).await;
    assert_error(s, &v, 404);
}

#[tokio::test]
async fn keys_api_lifecycle() {
    let g = Gateway::start(|_| {}).await;
    let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "ci", "limits": {"requests_per_minute": 100}}))).await;
    assert_eq!(s, 201, "{v}");
    let raw = v["key"].as_str().unwrap().to_owned();
    let hash = v["data"]["hash"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("kw-") && !raw.starts_with("kw-mgmt-"));
    assert_eq!(hash, keyway_crypto::hash_api_key(&raw));
    assert_eq!(v["data"]["limits"]["requests_per_minute"], 100);

    let (_, list) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!(list["total_count"], 2);
    assert!(!list.to_string().contains(&raw), "raw key is never listed");
    let (s, got) = g.mgmt("GET", &format!("/api/v1/keys/{hash}"), None).await;
    assert_eq!((s, got["data"]["name"].as_str()), (200, Some("ci")));

    let (s, me, _) = g.req("GET", "/api/v1/key", Some(&raw), None).await;
    assert_eq!((s, me["data"]["hash"].as_str()), (200, Some(hash.as_str())));

    let (s, _) = g.mgmt("PATCH", &format!("/api/v1/keys/{hash}"), Some(json!({"disabled": true}))).await;
    assert_eq!(s, 200);
    let (s, v, _) = g.req("GET", "/v1/models", Some(&raw), None).await;
    assert_eq!(s, 200, "models are public: {v}");
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&raw), Some(json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))).await;
    assert_error(s, &v, 401);
    let (s, _) = g.mgmt("PATCH", &format!("/api/v1/keys/{hash}"), Some(json!({"disabled": false}))).await;
    assert_eq!(s, 200);
    let (s, _, _) = g.req("GET", "/api/v1/key", Some(&raw), None).await;
    assert_eq!(s, 200, "re-enabled at once");
    let (s, v) = g.mgmt("DELETE", &format!("/api/v1/keys/{hash}"), None).await;
    assert_eq!((s, v["deleted"].as_bool()), (200, Some(true)));
    let (s, v, _) = g.req("GET", "/api/v1/key", Some(&raw), None).await;
    assert_error(s, &v, 401);
}

#[tokio::test]
async fn secrets_never_appear_in_responses_or_logs() {
    let g = Gateway::start(|_| {}).await;
    let bedrock = json!({"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "wJalrXUtnFEMI-LEAKCHECK-bPxRfiCYEXAMPLEKEY", "region": "us-east-1"});
    let id1 = g.add_byok(json!({"provider": "openai", "key": SECRET})).await;
    let id2 = g.add_byok(json!({"provider": "amazon-bedrock", "key": bedrock})).await;
    let mut seen = String::new();
    for path in ["/api/v1/byok".to_owned(), format!("/api/v1/byok/{id1}"), format!("/api/v1/byok/{id2}")] {
        let (_, v) = g.mgmt("GET", &path, None).await;
        seen.push_str(&v.to_string());
    }
    let (_, v) = g.mgmt("PATCH", &format!("/api/v1/byok/{id1}"), Some(json!({"name": "x"}))).await;
    seen.push_str(&v.to_string());
    assert!(seen.contains("AKIA...MPLE"), "masked access key id shown: {seen}");
    for secret in [SECRET, "LEAKCHECK"] {
        assert!(!seen.contains(secret), "secret in a response");
        assert!(!logs().contains(secret), "secret in the logs");
    }
    let sealed = g.state.store.debug_sealed(&id1).await.unwrap();
    assert!(!sealed.contains(SECRET));
}

#[tokio::test]
async fn first_start_bootstrap_and_restart_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    // first start without a given key: one is generated and returned once
    let mut cfg = config(dir.path());
    cfg.bootstrap_management_key = None;
    let (state, boot) = keyway_gateway::AppState::build(cfg.clone()).await.unwrap();
    let key = boot.management_key.expect("first start creates a management key");
    assert!(key.starts_with("kw-mgmt-"));
    let mode = std::fs::metadata(dir.path().join("master.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }
    let ws = boot.workspace_id.clone();
    let cred = keyway_core::Credential::parse(keyway_core::ProviderSlug::OpenAi, &json!("sk-survives-restart-1")).unwrap();
    let rec = state.store.create_byok(&ws, keyway_core::ProviderSlug::OpenAi, &Default::default(), &cred).await.unwrap();
    state.store.close().await;
    drop(state);

    // second start: nothing new is created or printed; data and key still work
    let g = Gateway::start_with(cfg.clone(), dir).await;
    let (s, v, _) = g.req("GET", &format!("/api/v1/byok/{}", rec.id), Some(&key), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["label"], "sk-...rt-1");
    let (_, keys, _) = g.req("GET", "/api/v1/keys", Some(&key), None).await;
    assert_eq!(keys["total_count"], 1);

    // a different master key is refused with a clear message instead of failing later
    let mut wrong = cfg;
    wrong.master_key = Some(keyway_crypto::MasterKey::generate().to_base64().as_str().into());
    g.state.store.close().await;
    let err = keyway_gateway::AppState::build(wrong).await.err().expect("wrong master key must refuse to start");
    assert!(err.to_string().contains("sealed with master key"), "{err}");
}

#[tokio::test]
async fn restart_with_the_same_bootstrap_key_starts_and_keeps_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    for _ in 0..2 {
        let (state, boot) = keyway_gateway::AppState::build(cfg.clone()).await.unwrap();
        assert!(boot.management_key.is_none(), "a supplied key is never printed");
        assert_eq!(state.store.count_keys().await.unwrap(), 1);
        state.store.close().await;
    }
    // It authenticates after the restart.
    let g = Gateway::start_with(cfg, dir).await;
    let (s, v) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!((s, v["total_count"].as_i64()), (200, Some(1)), "{v}");
}

/// The state an older, non-transactional first start left when it crashed between writes:
/// the workspace and the supplied key exist, the meta that marks the store as set up doesn't.
#[tokio::test]
async fn start_after_an_interrupted_bootstrap_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        // What the old code had written when it crashed before its two set_meta calls.
        let ring = std::sync::Arc::new(keyway_crypto::Keyring::new(keyway_crypto::MasterKey::generate()));
        let store = keyway_store::Store::connect(&cfg.database_url(), ring).await.unwrap();
        let ws = store.create_workspace("Default", "default").await.unwrap();
        store.insert_key(&ws.id, "bootstrap", keyway_store::KeyKind::Management, true, &Default::default(), MGMT).await.unwrap();
        assert_eq!(store.get_meta("default_workspace").await.unwrap(), None);
        store.close().await;
    }
    let g = Gateway::start_with(cfg, dir).await;
    let (s, v) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!((s, v["total_count"].as_i64()), (200, Some(1)), "{v}");
    assert!(g.state.store.get_meta("default_workspace").await.unwrap().is_some());
}

#[tokio::test]
async fn a_malformed_bootstrap_key_is_reported_as_such() {
    for bad in ["not-a-management-key-0000000000", "kw-mgmt-short"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.bootstrap_management_key = Some(bad.into());
        let err = keyway_gateway::AppState::build(cfg).await.err().expect("a malformed bootstrap key must refuse to start");
        assert!(matches!(err, keyway_gateway::state::StartError::BootstrapKey(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY") && msg.contains("kw-mgmt-"), "{msg}");
        assert!(!msg.contains("master key"), "{msg}");
        assert!(!msg.contains(bad), "the value itself is not echoed: {msg}");
    }
}

#[tokio::test]
async fn failed_byok_patches_leave_the_record_unchanged() {
    let g = Gateway::start(|_| {}).await;
    let id = g.add_byok(json!({"provider": "openai", "name": "keep", "key": SECRET, "sort_order": 1})).await;
    let (_, before) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    let path = format!("/api/v1/byok/{id}");
    // Each body also carries a valid change, which must not be applied either.
    let cases = [
        (json!({"name": "changed", "disabled": "yes"}), 400),
        (json!({"name": "", "sort_order": 9}), 400),
        (json!({"name": "   ", "sort_order": 9}), 400),
        (json!({"name": "changed", "is_fallback": true, "is_byok_only": true}), 400),
        (json!({"name": "changed", "sort_order": "first"}), 400),
        (json!({"name": "changed", "provider": "anthropic"}), 400),
        (json!({"name": "changed", "key": {"not": "a string"}}), 422),
        (json!({"name": "changed", "key": 42}), 422),
    ];
    for (body, want) in cases {
        let (s, v) = g.mgmt("PATCH", &path, Some(body.clone())).await;
        assert_error(s, &v, want);
        let (_, after) = g.mgmt("GET", &path, None).await;
        assert_eq!(after["data"], before["data"], "{body} changed the record");
        let (_, opened) = g.state.store.open_byok(None, &id).await.unwrap();
        assert_eq!(opened.secret_strings(), vec![SECRET], "{body} changed the secret");
    }
    assert_eq!((before["data"]["name"].as_str(), before["data"]["label"].as_str()), (Some("keep"), Some("sk-...9876")));
    let unknown = uuid::Uuid::new_v4();
    let (s, v) = g.mgmt("PATCH", &format!("/api/v1/byok/{unknown}"), Some(json!({"name": "ghost"}))).await;
    assert_error(s, &v, 404);
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 1, "a 404 patch creates nothing");
    assert_eq!(list["data"][0], before["data"]);
}

#[tokio::test]
async fn list_limits_default_to_50_and_cap_at_100() {
    let g = Gateway::start(|_| {}).await;
    for i in 0..55 {
        g.add_byok(json!({"provider": "openai", "name": format!("k{i}"), "key": format!("sk-page-test-{i:04}")})).await;
    }
    let (s, v) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(s, 200);
    assert_eq!((v["data"].as_array().unwrap().len(), v["total_count"].as_i64()), (50, Some(55)));
    let (_, rest) = g.mgmt("GET", "/api/v1/byok?offset=50", None).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 5);
    let (s, v) = g.mgmt("GET", "/api/v1/byok?limit=100", None).await;
    assert_eq!((s, v["data"].as_array().unwrap().len()), (200, 55));
    let (s, v) = g.mgmt("GET", "/api/v1/byok?limit=101", None).await;
    assert_error(s, &v, 400);

    // Keys share the same paging: 1 bootstrap key + 54 created.
    for i in 0..54 {
        let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": format!("k{i}")}))).await;
        assert_eq!(s, 201, "{v}");
    }
    let (_, v) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!((v["data"].as_array().unwrap().len(), v["total_count"].as_i64()), (50, Some(55)));
    let (_, v) = g.mgmt("GET", "/api/v1/keys?limit=100", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 55);
    let (s, v) = g.mgmt("GET", "/api/v1/keys?limit=101", None).await;
    assert_error(s, &v, 400);
}

/// A second workspace with a (non-admin) management key of its own.
async fn workspace_b(g: &Gateway) -> (String, String) {
    let (s, ws) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Team B"}))).await;
    assert_eq!(s, 201, "{ws}");
    let ws_b = ws["data"]["id"].as_str().unwrap().to_owned();
    let (s, kb) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "b-manager", "workspace_id": ws_b, "management": true}))).await;
    assert_eq!(s, 201, "{kb}");
    (ws_b, kb["key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn workspaces_list_is_scoped_and_create_validates() {
    let g = Gateway::start(|_| {}).await;
    let (ws_b, mgmt_b) = workspace_b(&g).await;
    let (s, v) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Gamma", "slug": "gamma-2"}))).await;
    assert_eq!((s, v["data"]["slug"].as_str()), (201, Some("gamma-2")), "{v}");

    let (s, all) = g.mgmt("GET", "/api/v1/workspaces", None).await;
    assert_eq!(s, 200);
    let slugs: Vec<&str> = all["data"].as_array().unwrap().iter().map(|w| w["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["default", "team-b", "gamma-2"]);
    assert_eq!(all["total_count"], 3);
    let (s, own, _) = g.req("GET", "/api/v1/workspaces", Some(&mgmt_b), None).await;
    assert_eq!(s, 200);
    assert_eq!(own["total_count"], 1);
    assert_eq!(own["data"][0]["id"], ws_b.as_str());

    for body in [json!({"name": ""}), json!({"name": "   "}), json!({"name": "Ok", "slug": "Bad Slug"}), json!({"name": "Ok", "slug": "UPPER"}), json!({"name": "Ok", "slug": ""}), json!({"name": "!!!"}), json!({"slug": "no-name"})] {
        let (s, v) = g.mgmt("POST", "/api/v1/workspaces", Some(body.clone())).await;
        assert_eq!(s, 400, "{body} -> {v}");
        assert_error(s, &v, 400);
    }
    for body in [json!({"name": "Team B"}), json!({"name": "Other", "slug": "gamma-2"}), json!({"name": "x", "slug": "default"})] {
        let (s, v) = g.mgmt("POST", "/api/v1/workspaces", Some(body.clone())).await;
        assert_error(s, &v, 409);
    }
    let (_, after) = g.mgmt("GET", "/api/v1/workspaces", None).await;
    assert_eq!(after["total_count"], 3, "failed creates stored nothing");
}

#[tokio::test]
async fn keys_api_errors_over_http() {
    let g = Gateway::start(|_| {}).await;
    let (_, mgmt_b) = workspace_b(&g).await;
    let (_, hash_a) = g.inference_key().await;
    let as_b = |m: &'static str, path: String, body: Option<Value>| {
        let (g, k) = (&g, mgmt_b.clone());
        async move {
            let (s, v, _) = g.req(m, &path, Some(&k), body).await;
            (s, v)
        }
    };

    // Workspace B can't see or touch A's keys, by hash or id.
    let id_a = g.mgmt("GET", &format!("/api/v1/keys/{hash_a}"), None).await.1["data"]["id"].as_str().unwrap().to_owned();
    for handle in [&hash_a, &id_a] {
        let (s, v) = as_b("GET", format!("/api/v1/keys/{handle}"), None).await;
        assert_error(s, &v, 404);
        let (s, v) = as_b("PATCH", format!("/api/v1/keys/{handle}"), Some(json!({"disabled": true}))).await;
        assert_error(s, &v, 404);
        let (s, v) = as_b("DELETE", format!("/api/v1/keys/{handle}"), None).await;
        assert_error(s, &v, 404);
    }
    let (_, a) = g.mgmt("GET", &format!("/api/v1/keys/{hash_a}"), None).await;
    assert_eq!(a["data"]["disabled"], false, "B's attempts changed nothing");
    let (_, b_list) = as_b("GET", "/api/v1/keys".into(), None).await;
    assert_eq!(b_list["total_count"], 1, "B lists only its own key: {b_list}");
    let default_ws = g.state.store.get_workspace("default").await.unwrap().id;
    let (s, v) = as_b("GET", format!("/api/v1/keys?workspace_id={default_ws}"), None).await;
    assert_error(s, &v, 404);
    let (s, v) = as_b("POST", "/api/v1/keys".into(), Some(json!({"name": "sneak", "workspace_id": default_ws}))).await;
    assert_error(s, &v, 404);

    // Only an admin key mints management keys.
    let (s, v) = as_b("POST", "/api/v1/keys".into(), Some(json!({"name": "escalate", "management": true}))).await;
    assert_error(s, &v, 403);
    let (s, v) = as_b("POST", "/api/v1/keys".into(), Some(json!({"name": "app"}))).await;
    assert_eq!((s, v["data"]["kind"].as_str()), (201, Some("inference")), "{v}");

    // Bad names, unknown keys, a key deleting itself.
    for name in ["", "   "] {
        let (s, v) = g.mgmt("PATCH", &format!("/api/v1/keys/{hash_a}"), Some(json!({"name": name}))).await;
        assert_error(s, &v, 400);
        let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": name}))).await;
        assert_error(s, &v, 400);
    }
    let (_, a) = g.mgmt("GET", &format!("/api/v1/keys/{hash_a}"), None).await;
    assert_eq!(a["data"]["name"], "test");
    for m in ["GET", "PATCH", "DELETE"] {
        let body = (m == "PATCH").then(|| json!({"name": "ghost"}));
        let (s, v) = g.mgmt(m, "/api/v1/keys/0000000000000000000000000000000000000000000000000000000000000000", body).await;
        assert_error(s, &v, 404);
    }
    let own = keyway_crypto::hash_api_key(MGMT);
    let (s, v) = g.mgmt("DELETE", &format!("/api/v1/keys/{own}"), None).await;
    assert_error(s, &v, 409);
    let own_b = keyway_crypto::hash_api_key(&mgmt_b);
    let (s, v) = as_b("DELETE", format!("/api/v1/keys/{own_b}"), None).await;
    assert_error(s, &v, 409);
    // Disabling itself would lock the caller out just the same; renaming itself is fine.
    let own_id = g.mgmt("GET", &format!("/api/v1/keys/{own}"), None).await.1["data"]["id"].as_str().unwrap().to_owned();
    for handle in [&own, &own_id] {
        let (s, v) = g.mgmt("PATCH", &format!("/api/v1/keys/{handle}"), Some(json!({"disabled": true}))).await;
        assert_error(s, &v, 409);
    }
    let (s, v) = g.mgmt("PATCH", &format!("/api/v1/keys/{own}"), Some(json!({"name": "root", "disabled": false}))).await;
    assert_eq!((s, v["data"]["name"].as_str()), (200, Some("root")), "{v}");
    // Another key may disable it (the admin disables B's manager).
    let (s, v) = g.mgmt("PATCH", &format!("/api/v1/keys/{own_b}"), Some(json!({"disabled": true}))).await;
    assert_eq!((s, v["data"]["disabled"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = as_b("GET", "/api/v1/keys".into(), None).await;
    assert_error(s, &v, 401);
    let (s, _) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!(s, 200, "the admin key still works");
}

#[tokio::test]
async fn every_management_route_needs_a_valid_key() {
    let g = Gateway::start(|_| {}).await;
    let id = g.add_byok(json!({"provider": "openai", "key": SECRET})).await;
    let (_, hash) = g.inference_key().await;
    let routes = [
        ("GET", "/api/v1/byok".to_owned()),
        ("POST", "/api/v1/byok".to_owned()),
        ("POST", "/api/v1/byok/test".to_owned()),
        ("GET", format!("/api/v1/byok/{id}")),
        ("PATCH", format!("/api/v1/byok/{id}")),
        ("DELETE", format!("/api/v1/byok/{id}")),
        ("POST", format!("/api/v1/byok/{id}/test")),
        ("GET", "/api/v1/keys".to_owned()),
        ("POST", "/api/v1/keys".to_owned()),
        ("GET", format!("/api/v1/keys/{hash}")),
        ("PATCH", format!("/api/v1/keys/{hash}")),
        ("DELETE", format!("/api/v1/keys/{hash}")),
        ("GET", "/api/v1/key".to_owned()),
        ("GET", "/api/v1/workspaces".to_owned()),
        ("POST", "/api/v1/workspaces".to_owned()),
        ("GET", "/api/v1/credits".to_owned()),
        ("POST", "/api/v1/credits".to_owned()),
        ("GET", "/api/v1/generation?id=gen-1".to_owned()),
        ("GET", "/api/v1/activity".to_owned()),
    ];
    let bodies = |m: &str, p: &str| match (m, p) {
        ("POST", "/api/v1/byok") | ("POST", "/api/v1/byok/test") => Some(json!({"provider": "openai", "name": "intruder", "key": "sk-intruder-0001"})),
        ("POST", "/api/v1/keys") | ("POST", "/api/v1/workspaces") => Some(json!({"name": "intruder"})),
        ("POST", "/api/v1/credits") => Some(json!({"amount": 10})),
        ("PATCH", _) => Some(json!({"name": "intruder"})),
        _ => None,
    };
    for key in [None, Some(""), Some("kw-mgmt-not-a-real-key-0000000000000000"), Some("kw-not-a-real-key-0000000000000000"), Some("sk-proj-someone-elses")] {
        for (m, p) in &routes {
            let (s, v, _) = g.req(m, p, key, bodies(m, p)).await;
            assert_eq!(s, 401, "{m} {p} with {key:?}: {v}");
            assert_error(s, &v, 401);
        }
    }
    // Nothing was created, changed or deleted along the way.
    let (_, byok) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(byok["total_count"], 1);
    assert_ne!(byok["data"][0]["name"], "intruder");
    let (_, keys) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!(keys["total_count"], 2);
    let (_, ws) = g.mgmt("GET", "/api/v1/workspaces", None).await;
    assert_eq!(ws["total_count"], 1);
}

#[tokio::test]
async fn an_upstream_ca_file_is_read_at_start_and_a_bad_one_refuses_to_start() {
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../keyway-providers/tests/data/tls/ca.pem");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.upstream_ca_file = Some(ca);
    assert!(keyway_gateway::AppState::build(cfg).await.is_ok(), "a PEM file with a CA certificate is accepted");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    for (path, wanted) in [(dir.path().join("missing.pem"), "missing.pem"), (empty, "no PEM certificate")] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.upstream_ca_file = Some(path);
        let err = keyway_gateway::AppState::build(cfg).await.err().expect("a bad upstream_ca_file must refuse to start");
        let msg = err.to_string();
        assert!(msg.contains(wanted), "{msg}");
    }
}

/// The names people type (`xAI`, `Grok`, `zAI`, `Azure`, `AWS Bedrock`, `Google Vertex`), in any
/// case: accepted and stored as the slug; an unknown name's error lists the accepted ones.
#[tokio::test]
async fn byok_accepts_display_names_and_aliases() {
    let g = Gateway::start(|_| {}).await;
    for (name, slug) in [("xAI", "xai"), ("Grok", "xai"), ("zAI", "z-ai"), ("Z.AI", "z-ai"), ("OPENAI", "openai"), ("Moonshot AI", "moonshotai")] {
        let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": name, "key": "sk-name-test-0000000001"}))).await;
        assert_eq!(s, 201, "{name}: {v}");
        assert_eq!(v["data"]["provider"], slug, "{name}");
    }
    let azure = json!({"model_slug": "openai/gpt-4o", "endpoint_url": "https://res.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21", "api_key": "az-key-0000000001", "model_id": "d"});
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "Azure", "key": azure}))).await;
    assert_eq!((s, v["data"]["provider"].as_str()), (201, Some("azure")), "{v}");
    let bedrock = json!({"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s3cr3t-value", "region": "us-west-2"});
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "AWS Bedrock", "key": bedrock}))).await;
    assert_eq!((s, v["data"]["provider"].as_str()), (201, Some("amazon-bedrock")), "{v}");
    // Filtering the list by a display name works the same way.
    let (s, v) = g.mgmt("GET", "/api/v1/byok?provider=Grok", None).await;
    assert_eq!((s, v["total_count"].as_i64()), (200, Some(2)), "{v}");
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "Cohere Labs", "key": "k-0000000000001"}))).await;
    assert_error(s, &v, 400);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Cohere Labs") && msg.contains("amazon-bedrock (Amazon Bedrock)") && msg.contains("xai (xAI)"), "{msg}");
}
