//! Issue #20: who may do what (roles), and the access defects a review found. Each defect has a
//! test here that failed before its fix.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Defect 2: a non-admin management key disabled or deleted the admin key (200), leaving the
/// instance with no admin key.
#[tokio::test]
async fn a_non_admin_management_key_cannot_lock_the_admin_out() {
    let g = Gateway::start(|_| {}).await;
    let (s, k) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "team", "management": true}))).await;
    assert_eq!(s, 201, "{k}");
    let owner = k["key"].as_str().unwrap().to_owned();
    assert_eq!(k["data"]["role"], "owner");
    let (_, me) = g.mgmt("GET", "/api/v1/key", None).await;
    let admin_hash = me["data"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(me["data"]["role"], "admin");

    let (s, v, _) = g.req("PATCH", &format!("/api/v1/keys/{admin_hash}"), Some(&owner), Some(json!({"disabled": true}))).await;
    assert_error(s, &v, 403);
    let (s, v, _) = g.req("DELETE", &format!("/api/v1/keys/{admin_hash}"), Some(&owner), None).await;
    assert_error(s, &v, 403);
    let (s, v, _) = g.req("PATCH", &format!("/api/v1/keys/{admin_hash}"), Some(&owner), Some(json!({"name": "pwned"}))).await;
    assert_error(s, &v, 403);
    let (s, v) = g.mgmt("GET", "/api/v1/keys", None).await;
    assert_eq!(s, 200, "the admin key still works: {v}");
    assert!(v["data"].as_array().unwrap().iter().any(|k| k["hash"] == admin_hash.as_str() && k["disabled"] == false && k["name"] == "bootstrap"));

    // Owners can't mint keys above their own rank either.
    for role in ["owner", "admin"] {
        let (s, v, _) = g.req("POST", "/api/v1/keys", Some(&owner), Some(json!({"name": "up", "role": role}))).await;
        assert_error(s, &v, 403);
    }
    let (s, v, _) = g.req("POST", "/api/v1/keys", Some(&owner), Some(json!({"name": "ro", "role": "viewer"}))).await;
    assert_eq!((s, v["data"]["role"].as_str()), (201, Some("viewer")), "{v}");
}

/// The last enabled admin key can't be disabled or deleted, by anyone; a second admin can be.
#[tokio::test]
async fn the_last_admin_key_stays() {
    let g = Gateway::start(|_| {}).await;
    let (s, k) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "second admin", "role": "admin"}))).await;
    assert_eq!(s, 201, "{k}");
    let second = k["key"].as_str().unwrap().to_owned();
    let second_hash = k["data"]["hash"].as_str().unwrap().to_owned();
    let (_, me) = g.mgmt("GET", "/api/v1/key", None).await;
    let first_hash = me["data"]["hash"].as_str().unwrap().to_owned();
    // Two admins: one may remove the other.
    let (s, v, _) = g.req("DELETE", &format!("/api/v1/keys/{first_hash}"), Some(&second), None).await;
    assert_eq!(s, 200, "{v}");
    // Now `second` is the last one: the store refuses, whatever the route.
    assert_eq!(g.state.store.count_enabled_admins().await.unwrap(), 1);
    let p = keyway_store::KeyPatch { disabled: Some(true), ..Default::default() };
    assert!(matches!(g.state.store.update_key(None, &second_hash, &p).await, Err(keyway_store::StoreError::Conflict(_))));
    assert!(matches!(g.state.store.delete_key(None, &second_hash).await, Err(keyway_store::StoreError::Conflict(_))));
    let (s, v, _) = g.req("PATCH", &format!("/api/v1/keys/{second_hash}"), Some(&second), Some(json!({"disabled": true}))).await;
    assert_error(s, &v, 409);
    assert_eq!(g.state.store.count_enabled_admins().await.unwrap(), 1);
}

/// Defect 4: a management key was also an inference key.
#[tokio::test]
async fn management_keys_are_refused_on_inference_routes() {
    let (fake, g, app) = openai_gateway(Default::default(), "sk-system-0000000000").await;
    let chat = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(MGMT), Some(chat.clone())).await;
    assert_error(s, &v, 403);
    assert!(v["error"]["message"].as_str().unwrap().contains("inference key"), "{v}");
    let (s, v, _) = g.req("POST", "/api/v1/chat/completions", Some(MGMT), Some(chat.clone())).await;
    assert_error(s, &v, 403);
    let (s, v, _) = g.req("POST", "/v1/embeddings", Some(MGMT), Some(json!({"model": "openai/text-embedding-3-small", "input": "x"}))).await;
    assert_error(s, &v, 403);
    let msg = json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (s, v, _) = g.req("POST", "/v1/messages", Some(MGMT), Some(msg)).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["type"], "error", "Anthropic's error shape on /v1/messages: {v}");
    assert_eq!(fake.calls_with_key("sk-system-0000000000"), 0, "nothing reached the upstream");
    // The inference key works, and a management key still reads its own key object.
    let (s, _, _) = g.req("POST", "/v1/chat/completions", Some(&app), Some(chat)).await;
    assert_eq!(s, 200);
    let (s, v) = g.mgmt("GET", "/api/v1/key", None).await;
    assert_eq!((s, v["data"]["is_management_key"].as_bool()), (200, Some(true)));
}

/// Defect 3: Test key scrubbed the raw body as text, then parsed it, so a key quoted with JSON
/// escapes came back whole.
#[tokio::test]
async fn test_key_never_returns_the_key_an_upstream_quotes_with_json_escapes() {
    use axum::routing::post;
    const KEY: &str = "sk-proj/hostile+quoted-0123456789";
    fn escaped(s: &str) -> String {
        s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
    }
    // An upstream that echoes the bearer key in its 401, escaped three ways, and once in a header-like text body.
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|headers: axum::http::HeaderMap| async move {
            let key = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").trim_start_matches("Bearer ").to_owned();
            let body = format!(
                r#"{{"error": {{"message": "Incorrect API key provided: {}", "code": "invalid_api_key", "param": "{}", "echo": ["{}{}"]}}}}"#,
                key.replace('/', "\\/"),
                escaped(&key),
                &key[..3],
                escaped(&key[3..])
            );
            (axum::http::StatusCode::UNAUTHORIZED, [("content-type", "application/json")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
    })
    .await;

    let resp = g.http.post(g.url("/api/v1/byok/test")).bearer_auth(MGMT).json(&json!({"provider": "openai", "key": KEY})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let raw = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], 401);
    assert_eq!(v["response"]["error"]["message"], "Incorrect API key provided: ***", "{v}");
    // Neither the raw answer nor its decoded form holds any 8 characters of the key.
    let decoded = v.to_string();
    for w in KEY.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!raw.contains(w) && !decoded.contains(w), "`{w}` of the key came back: {raw}");
    }
    // Stored and tested: the same.
    let id = g.add_byok(json!({"provider": "openai", "name": "hostile", "key": KEY})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!(s, 200);
    assert!(!v.to_string().contains("hostile+quoted"), "{v}");
    assert!(!logs().contains("hostile+quoted"));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Admin,
    Owner,
    Viewer,
    Inference,
}

/// Every role against every route, on its own workspace and on another: every cell asserted.
#[tokio::test]
async fn role_matrix_every_role_every_route_own_and_other_workspace() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
    })
    .await;
    let (_, ws_b) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "B", "slug": "b"}))).await;
    let ws_b = ws_b["data"]["id"].as_str().unwrap().to_owned();
    let ws_a = g.state.store.get_workspace("default").await.unwrap().id;
    let mut keys = BTreeMap::new();
    keys.insert(Who::Admin, MGMT.to_owned());
    for (who, role) in [(Who::Owner, "owner"), (Who::Viewer, "viewer"), (Who::Inference, "inference")] {
        let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": role, "role": role}))).await;
        assert_eq!(s, 201, "{v}");
        keys.insert(who, v["key"].as_str().unwrap().to_owned());
    }
    // One credential and one inference key in each workspace, as targets.
    let cred = |ws: &str| json!({"provider": "openai", "name": "target", "key": "sk-target-000000000", "workspace_id": ws});
    let cred_a = g.add_byok(cred(&ws_a)).await;
    let cred_b = g.add_byok(cred(&ws_b)).await;
    let victim = |ws: &str| json!({"name": "victim", "workspace_id": ws});
    let (_, va) = g.mgmt("POST", "/api/v1/keys", Some(victim(&ws_a))).await;
    let (_, vb) = g.mgmt("POST", "/api/v1/keys", Some(victim(&ws_b))).await;
    let (key_a, key_b) = (va["data"]["hash"].as_str().unwrap().to_owned(), vb["data"]["hash"].as_str().unwrap().to_owned());

    // (route name, needs: Some(min role) for management routes / None for inference,
    //  workspace-scoped, request for (own, other)).
    type Req = (&'static str, String, Option<Value>);
    struct Row {
        name: &'static str,
        min: Who,
        inference_only: bool,
        scoped: bool,
        own: Req,
        other: Req,
    }
    let chat = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let rows = vec![
        Row { name: "list byok", min: Who::Viewer, inference_only: false, scoped: true, own: ("GET", format!("/api/v1/byok?workspace_id={ws_a}"), None), other: ("GET", format!("/api/v1/byok?workspace_id={ws_b}"), None) },
        Row { name: "get byok", min: Who::Viewer, inference_only: false, scoped: true, own: ("GET", format!("/api/v1/byok/{cred_a}"), None), other: ("GET", format!("/api/v1/byok/{cred_b}"), None) },
        Row { name: "list keys", min: Who::Viewer, inference_only: false, scoped: true, own: ("GET", format!("/api/v1/keys?workspace_id={ws_a}"), None), other: ("GET", format!("/api/v1/keys?workspace_id={ws_b}"), None) },
        Row { name: "get key", min: Who::Viewer, inference_only: false, scoped: true, own: ("GET", format!("/api/v1/keys/{key_a}"), None), other: ("GET", format!("/api/v1/keys/{key_b}"), None) },
        Row { name: "activity", min: Who::Viewer, inference_only: false, scoped: true, own: ("GET", format!("/api/v1/activity?workspace_id={ws_a}"), None), other: ("GET", format!("/api/v1/activity?workspace_id={ws_b}"), None) },
        Row { name: "create byok", min: Who::Owner, inference_only: false, scoped: true, own: ("POST", "/api/v1/byok".into(), Some(cred(&ws_a))), other: ("POST", "/api/v1/byok".into(), Some(cred(&ws_b))) },
        Row { name: "patch byok", min: Who::Owner, inference_only: false, scoped: true, own: ("PATCH", format!("/api/v1/byok/{cred_a}"), Some(json!({"name": "renamed"}))), other: ("PATCH", format!("/api/v1/byok/{cred_b}"), Some(json!({"name": "renamed"}))) },
        Row { name: "test byok", min: Who::Owner, inference_only: false, scoped: true, own: ("POST", format!("/api/v1/byok/{cred_a}/test"), None), other: ("POST", format!("/api/v1/byok/{cred_b}/test"), None) },
        Row { name: "create key", min: Who::Owner, inference_only: false, scoped: true, own: ("POST", "/api/v1/keys".into(), Some(victim(&ws_a))), other: ("POST", "/api/v1/keys".into(), Some(victim(&ws_b))) },
        Row { name: "patch key", min: Who::Owner, inference_only: false, scoped: true, own: ("PATCH", format!("/api/v1/keys/{key_a}"), Some(json!({"name": "renamed"}))), other: ("PATCH", format!("/api/v1/keys/{key_b}"), Some(json!({"name": "renamed"}))) },
        Row { name: "create workspace", min: Who::Admin, inference_only: false, scoped: false, own: ("POST", "/api/v1/workspaces".into(), Some(json!({"name": "C"}))), other: ("POST", "/api/v1/workspaces".into(), Some(json!({"name": "D"}))) },
        Row { name: "top up credits", min: Who::Admin, inference_only: false, scoped: false, own: ("POST", "/api/v1/credits".into(), Some(json!({"amount_micros": 1, "workspace_id": ws_a}))), other: ("POST", "/api/v1/credits".into(), Some(json!({"amount_micros": 1, "workspace_id": ws_b}))) },
        Row { name: "keyring", min: Who::Admin, inference_only: false, scoped: false, own: ("GET", "/api/v1/keyring".into(), None), other: ("GET", "/api/v1/keyring".into(), None) },
        Row { name: "chat", min: Who::Inference, inference_only: true, scoped: false, own: ("POST", "/v1/chat/completions".into(), Some(chat.clone())), other: ("POST", "/api/v1/chat/completions".into(), Some(chat.clone())) },
    ];
    // Roles in rank order: a management route admits `min` and every role above it.
    let rank = |w: Who| match w {
        Who::Admin => 3,
        Who::Owner => 2,
        Who::Viewer => 1,
        Who::Inference => 0,
    };
    let mut cells = 0;
    let mut wrong = Vec::new();
    for row in &rows {
        for (&who, key) in &keys {
            for (target, (method, path, body)) in [("own", &row.own), ("other", &row.other)] {
                let want_ok = if row.inference_only { who == Who::Inference } else { who != Who::Inference && rank(who) >= rank(row.min) };
                let want: &[u16] = match (want_ok, row.scoped && target == "other" && who != Who::Admin) {
                    (true, false) => &[200, 201],
                    (true, true) => &[404],
                    (false, _) => &[403],
                };
                let (s, v, _) = g.req(method, path, Some(key), body.clone()).await;
                cells += 1;
                if !want.contains(&s) {
                    wrong.push(format!("{:<16} {:?} {:<5} -> {s} (want {want:?}): {v}", row.name, who, target));
                } else if s >= 400 && v["error"]["message"].as_str().unwrap_or("").is_empty() {
                    wrong.push(format!("{} {:?} {target}: error without a message: {v}", row.name, who));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} cells wrong:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(cells, rows.len() * 4 * 2);
    eprintln!("role matrix: {cells} cells");
}

/// The keyring rotates while requests flow: none fails, and the new key seals every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_while_serving_fails_no_request() {
    let (fake, g, app) = openai_gateway(Default::default(), "sk-system-rot-000000").await;
    for i in 0..20 {
        g.add_byok(json!({"provider": "openai", "name": format!("k{i}"), "key": format!("sk-byok-rot-{i:04}-00000"), "sort_order": i})).await;
    }
    let chat = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut traffic = Vec::new();
    for _ in 0..4 {
        let (http, url, app, chat, stop) = (g.http.clone(), g.url("/v1/chat/completions"), app.clone(), chat.clone(), stop.clone());
        traffic.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http.post(&url).bearer_auth(&app).json(&chat).send().await.unwrap();
                if r.status() == 200 && r.headers().get("x-keyway-credential").is_some_and(|c| c != "system") {
                    ok += 1;
                } else {
                    failed.push(r.status().as_u16());
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut key_ids = Vec::new();
    for _ in 0..3 {
        let (s, v) = g.mgmt("POST", "/api/v1/keyring/rotate", None).await;
        assert_eq!((s, v["complete"].as_bool()), (200, Some(true)), "{v}");
        assert_eq!(v["data"]["rewrapped"], 20, "{v}");
        key_ids.push(v["data"]["key_id"].as_str().unwrap().to_owned());
        // A fresh credential cache must open everything under the new key.
        g.state.credentials.invalidate_all();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for t in traffic {
        let (o, f) = t.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(failed.is_empty() && ok > 20, "{ok} ok, failed: {failed:?}");
    eprintln!("rotation under traffic: {ok} requests, 0 failed, 3 rotations");
    let (_, ring) = g.mgmt("GET", "/api/v1/keyring", None).await;
    let active: Vec<&Value> = ring["data"].as_array().unwrap().iter().filter(|k| k["state"] == "active").collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["id"], key_ids[2].as_str());
    assert_eq!(active[0]["records"], 20, "{ring}");
    assert!(!ring.to_string().contains("sk-byok-rot"));
    assert_eq!(fake.calls_with_key("sk-system-rot-000000"), 0, "BYOK keys served every request");
}

/// Every change is in the audit log (who, what, never a secret), with refusals, filters and
/// cursor pagination; owners and viewers read only their workspace's rows.
#[tokio::test]
async fn the_audit_log_records_every_change_and_never_a_secret() {
    let g = Gateway::start(|_| {}).await;
    const SECRET: &str = "sk-audit-secret-value-000000";
    let id = g.add_byok(json!({"provider": "openai", "name": "audited", "key": SECRET})).await;
    let (s, _) = g.mgmt("PATCH", &format!("/api/v1/byok/{id}"), Some(json!({"name": "renamed", "key": "sk-audit-second-secret-0"}))).await;
    assert_eq!(s, 200);
    let (_, owner) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "team owner", "role": "owner"}))).await;
    let owner_key = owner["key"].as_str().unwrap().to_owned();
    let (_, ws_b) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "B", "slug": "b"}))).await;
    let ws_b = ws_b["data"]["id"].as_str().unwrap().to_owned();
    g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": 5_000_000, "workspace_id": ws_b}))).await;
    // A refused attempt (owner tries to create a workspace) is recorded as denied.
    let (s, _, _) = g.req("POST", "/api/v1/workspaces", Some(&owner_key), Some(json!({"name": "C"}))).await;
    assert_eq!(s, 403);
    g.mgmt("DELETE", &format!("/api/v1/byok/{id}"), None).await;
    g.mgmt("POST", "/api/v1/keyring/rotate", None).await;

    let (s, log) = g.mgmt("GET", "/api/v1/audit", None).await;
    assert_eq!(s, 200, "{log}");
    let text = log.to_string();
    assert!(!text.contains(SECRET) && !text.contains("sk-audit-second"), "no secret in the log: {text}");
    let actions: Vec<&str> = log["data"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in ["byok.create", "byok.update", "byok.delete", "key.create", "workspace.create", "credits.top_up", "keyring.rotate", "POST /api/v1/workspaces"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let update = log["data"].as_array().unwrap().iter().find(|r| r["action"] == "byok.update").unwrap();
    assert_eq!(update["changes"], json!({"name": "renamed", "key": "(set)"}));
    assert_eq!(update["target"]["id"], id.as_str());
    assert_eq!(update["actor"]["name"], "bootstrap");
    assert_eq!(update["actor"]["source"], "127.0.0.1");
    assert_eq!(update["outcome"], "ok");
    let denied = log["data"].as_array().unwrap().iter().find(|r| r["action"] == "POST /api/v1/workspaces").unwrap();
    assert_eq!((denied["outcome"].as_str(), denied["actor"]["name"].as_str()), (Some("denied"), Some("team owner")));

    // Filters and pages of 2 walk the same rows, newest first, without repeats.
    let (_, by_target) = g.mgmt("GET", &format!("/api/v1/audit?target={id}"), None).await;
    assert_eq!(by_target["data"].as_array().unwrap().len(), 3, "{by_target}");
    let (_, by_actor) = g.mgmt("GET", "/api/v1/audit?actor=team%20owner", None).await;
    assert_eq!(by_actor["data"].as_array().unwrap().len(), 1);
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = match &cursor { Some(c) => format!("/api/v1/audit?limit=2&cursor={c}"), None => "/api/v1/audit?limit=2".into() };
        let (s, page) = g.mgmt("GET", &path, None).await;
        assert_eq!(s, 200);
        seen.extend(page["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() { Some(c) => cursor = Some(c.to_owned()), None => break }
    }
    let all: Vec<String> = log["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen, all);
    let (s, v) = g.mgmt("GET", "/api/v1/audit?since=yesterday", None).await;
    assert_error(s, &v, 400);
    // The owner sees its workspace's rows only (the workspace B rows are not there).
    let (_, own) = g.req("GET", "/api/v1/audit", Some(&owner_key), None).await.1.clone().pipe(|v| (0, v));
    assert!(own["data"].as_array().unwrap().iter().all(|r| r["workspace_id"] != ws_b.as_str()), "{own}");
    let (s, v, _) = g.req("GET", &format!("/api/v1/audit?workspace_id={ws_b}"), Some(&owner_key), None).await;
    assert_error(s, &v, 404);
    // Written in the change's transaction: a change that fails leaves no "ok" row.
    let before = g.mgmt("GET", "/api/v1/audit?action=key.update", None).await.1["data"].as_array().unwrap().len();
    let (_, me) = g.mgmt("GET", "/api/v1/key", None).await;
    let p = keyway_store::KeyPatch { disabled: Some(true), ..Default::default() };
    let entry = keyway_store::AuditEntry { actor: Default::default(), action: "key.update".into(), changes: json!({}) };
    assert!(g.state.store.audited(entry).update_key(None, me["data"]["hash"].as_str().unwrap(), &p).await.is_err(), "last admin");
    let after = g.mgmt("GET", "/api/v1/audit?action=key.update", None).await.1["data"].as_array().unwrap().len();
    assert_eq!(before, after);
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

/// Hostile callers: an unknown key is answered from a bounded negative cache (no query per
/// attempt), and a source address past 100 failed authentications a minute gets 429 + Retry-After.
#[tokio::test]
async fn bogus_keys_cost_no_queries_and_a_flood_is_rate_limited() {
    let g = Gateway::start(|_| {}).await;
    let chat = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let bogus = "kw-thisisnotakey0000000000000000000000000000";
    let (s, _, _) = g.req("POST", "/v1/chat/completions", Some(bogus), Some(chat.clone())).await;
    assert_eq!(s, 401);
    let before = g.state.store.query_count();
    for _ in 0..50 {
        let (s, _, _) = g.req("POST", "/v1/chat/completions", Some(bogus), Some(chat.clone())).await;
        assert_eq!(s, 401);
    }
    assert_eq!(g.state.store.query_count(), before, "the same unknown key is not looked up again");
    let mut limited = None;
    for i in 0..60 {
        let (s, v, h) = g.req("GET", "/api/v1/keys", Some(&format!("kw-mgmt-bogus-{i:040}")), None).await;
        if s == 429 {
            limited = Some((v, h));
            break;
        }
        assert_eq!(s, 401);
    }
    let (v, h) = limited.expect("429 after 100 failures");
    assert!(h.get("retry-after").is_some(), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("failed authentications"));
}
