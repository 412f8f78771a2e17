//! Damaged data and extreme values don't take the gateway down: an unreadable credential row
//! is skipped (listed as `unreadable`, counted, logged by id) while every other credential and
//! workspace keeps working; top-ups that would overflow are 400 and overflowing ledger sums
//! don't stop a start; `/readyz` says whether this node can serve; `/metrics` may need a token
//! or live on its own address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use serde_json::{json, Value};

fn chat() -> Value {
    json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn an_unreadable_credential_row_is_skipped_loudly_and_everything_else_keeps_working() {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
    })
    .await;
    // A workspace credential that stays good, and two global rows damaged as a binary
    // downgrade (a provider this build doesn't know) or a hand edit (broken JSON) leave them.
    let good = g.add_byok(json!({"provider": "openai", "key": "sk-good-credential-0000AbCd"})).await;
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-global-future-0000AbCd", "workspace_id": null}))).await;
    assert_eq!(s, 201, "{v}");
    let future = v["data"]["id"].as_str().unwrap().to_owned();
    let (s, v) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-global-broken-0000AbCd", "workspace_id": null}))).await;
    assert_eq!(s, 201, "{v}");
    let broken = v["data"]["id"].as_str().unwrap().to_owned();
    g.state.store.debug_damage_byok(&future, "provider", "some-future-provider").await.unwrap();
    g.state.store.debug_damage_byok(&broken, "allowed_models", "[not json").await.unwrap();
    g.state.credentials.invalidate_all();

    // Inference in the default workspace and in a second one still answers.
    let (key, _) = g.inference_key().await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h.get("x-keyway-credential").and_then(|v| v.to_str().ok()), Some(good.as_str()));
    let (s, ws) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Team B"}))).await;
    assert_eq!(s, 201, "{ws}");
    let (s, kb) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "b", "workspace_id": ws["data"]["id"]}))).await;
    assert_eq!(s, 201, "{kb}");
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(kb["key"].as_str().unwrap()), Some(chat())).await;
    // Team B has no usable credential (its globals are the damaged ones): a routing answer, not a 500.
    assert_ne!(s, 500, "{v}");

    // The list shows all three; the damaged ones with status "unreadable" and the reason.
    let (s, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["total_count"], 3, "{list}");
    let by_id = |id: &str| list["data"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned().unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(by_id(&future)["status"], "unreadable");
    assert_eq!(by_id(&future)["provider"], "some-future-provider");
    assert!(by_id(&future)["error"].as_str().unwrap().contains("some-future-provider"), "{list}");
    assert_eq!(by_id(&broken)["status"], "unreadable");
    assert!(by_id(&good).get("status").is_none(), "{list}");
    assert_eq!(by_id(&good)["provider"], "openai");
    assert!(!list.to_string().contains("sk-global"), "a secret in the list: {list}");

    // Counted, and logged with the row's id.
    let metrics = g.http.get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let n: u64 = metrics.lines().find_map(|l| l.strip_prefix("keyway_credentials_unreadable_total ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    assert!(n >= 2, "keyway_credentials_unreadable_total is {n}");
    let logs = logs();
    assert!(logs.contains(&future) && logs.contains(&broken), "the skipped rows' ids were not logged");

    // The operator can delete them (a workspace key can't touch a global one).
    let (s, kb_mgmt) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "b-admin", "workspace_id": ws["data"]["id"], "management": true}))).await;
    assert_eq!(s, 201, "{kb_mgmt}");
    let (s, v, _) = g.req("DELETE", &format!("/api/v1/byok/{future}"), kb_mgmt["key"].as_str(), None).await;
    assert_error(s, &v, 404);
    for id in [&future, &broken] {
        let (s, v) = g.mgmt("DELETE", &format!("/api/v1/byok/{id}"), None).await;
        assert_eq!((s, &v["deleted"]), (200, &json!(true)), "{v}");
    }
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 1, "{list}");
}

#[tokio::test]
async fn a_top_up_that_would_overflow_is_400_and_overflowing_sums_do_not_stop_a_start() {
    let g = Gateway::start(|_| {}).await;
    // Top-ups are capped well below what the ledger can hold (10^15 each, 10^17 per workspace).
    let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": i64::MAX}))).await;
    assert_error(s, &v, 400);
    let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": 1}))).await;
    assert_eq!(s, 201, "{v}");
    // Rows written before the check (or by hand) that sum past i64: a new start still comes up.
    let ws = g.state.store.get_workspace("default").await.unwrap().id;
    for _ in 0..2 {
        g.state.store.add_credits(&ws, keyway_store::CreditKind::Topup, i64::MAX, None, None).await.unwrap();
    }
    let (again, _) = keyway_gateway::AppState::build(config(g.dir.path())).await.expect("start-up failed on the ledger sums");
    let b = again.billing.balance(&ws, chrono::Utc::now().timestamp_millis());
    assert_eq!(b.credits_micros, i64::MAX, "saturated");
    let (s, v) = g.mgmt("GET", "/api/v1/credits", None).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn readyz_reports_the_store_and_keyring_and_503_when_the_store_is_gone() {
    let g = Gateway::start(|_| {}).await;
    let (s, v, _) = g.req("GET", "/readyz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")), "{v}");
    assert_eq!(v["checks"]["store"], "ok");
    assert_eq!(v["checks"]["keyring"], "ok");
    g.state.store.close().await;
    let r = g.http.get(g.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "not_ready", "{v}");
    assert!(v["checks"]["store"].as_str().unwrap().contains("unreachable"), "{v}");
    // /health only says the process is up.
    assert_eq!(g.http.get(g.url("/health")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn metrics_may_need_a_bearer_token() {
    let g = Gateway::start(|c| c.metrics.bearer_token = Some("scrape-token-0123456789".into())).await;
    let r = g.http.get(g.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = g.http.get(g.url("/metrics")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = g.http.get(g.url("/metrics")).bearer_auth("scrape-token-0123456789").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("keyway_usage_queue_depth"));
}

#[tokio::test]
async fn metrics_may_listen_on_their_own_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let g = Gateway::start(|c| c.metrics.listen = Some(format!("127.0.0.1:{port}").parse().unwrap())).await;
    let r = g.http.get(g.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404, "metrics still on the main address");
    let mut text = String::new();
    for _ in 0..50 {
        if let Ok(r) = g.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await {
            assert_eq!(r.status(), 200);
            text = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(text.contains("keyway_usage_queue_depth"), "{text}");
}
