//! Quota exhausted versus rate limited, end to end: each provider's fake answers its real
//! "out of money or quota" error (`Fault::QuotaExhausted`); the gateway parks that key (left out
//! of every plan, `health.status: "quota_exhausted"`), moves on, and stops calling it until its
//! recheck time or until an owner re-enables it. A transient 429 keeps its cooldown (routing.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::{Fault, FakeServer};
use keyway_gateway::config::ProviderSettings;
use serde_json::{json, Value};

const PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pem");
const PUBLIC_PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pub.pem");
const EMAIL: &str = "keyway-quota@proj-quota.iam.gserviceaccount.com";
const PROJECT: &str = "proj-quota";

fn chat(model: &str, only: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16, "provider": {"only": [only]}})
}

async fn health(g: &Gateway, id: &str) -> Value {
    let (s, b) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert_eq!(s, 200, "{b}");
    b["data"]["health"].clone()
}

/// The one-key pattern: the key's account is out of quota. The request fails as 402, the key is
/// parked, the next request does not reach the upstream at all, explain says why, and an owner
/// re-enabling the key has it tried at once.
async fn one_key_is_parked(fake: &FakeServer, g: &Gateway, id: &str, body: Value, upstream_status: u16) {
    let (key, _) = g.inference_key().await;
    fake.fail_next(Fault::QuotaExhausted);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body.clone())).await;
    assert_eq!(s, 402, "{v}");
    assert_eq!(v["error"]["code"], "upstream_quota_exhausted", "{v}");
    let h = health(g, id).await;
    assert_eq!((h["status"].as_str(), h["state"].as_str()), (Some("quota_exhausted"), Some("quota_exhausted")), "{h}");
    assert_eq!(h["last_error"]["kind"], "quota_exhausted", "{h}");
    assert_eq!(h["last_error"]["status"], upstream_status, "{h}");
    assert!(h["until"].is_string() && h["until"] == h["quota_exhausted_until"], "{h}");
    assert!(h["cooldown_until"].is_null(), "parked, not cooled: {h}");

    // Skipped by every request: no call reaches the upstream.
    let before = fake.calls().len();
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body.clone())).await;
    assert_eq!(s, 404, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("out of quota"), "{v}");
    assert_eq!(fake.calls().len(), before, "a parked key was called");
    let (s, e, _) = g.req("POST", "/api/v1/route", Some(&key), Some(body.clone())).await;
    assert_eq!(s, 200, "{e}");
    let parked: Vec<&Value> = e["data"]["excluded"].as_array().unwrap().iter().filter(|x| x["code"] == "quota_exhausted").collect();
    assert_eq!(parked.len(), 1, "{e}");
    assert_eq!(parked[0]["credential_id"], id, "{e}");

    // The owner tops up and re-enables it: tried at once.
    let (s, b) = g.mgmt("PATCH", &format!("/api/v1/byok/{id}"), Some(json!({"disabled": false}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["health"]["status"], "ok", "{b}");
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(fake.calls().len(), before + 1);
}

#[tokio::test]
async fn openai_insufficient_quota_parks_the_key_and_the_next_key_serves() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-quota-0000001").await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-broke-000001", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-paid-0000002", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-broke-000001", Fault::QuotaExhausted);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini", "openai"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2);
    let hl = health(&g, &k1).await;
    assert_eq!(hl["status"], "quota_exhausted", "{hl}");
    assert_eq!(hl["last_error"]["status"], 429, "{hl}");
    // OpenAI says 429 like a rate limit, but the key is not hammered again after a Retry-After.
    for _ in 0..3 {
        let (s, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini", "openai"))).await;
        assert_eq!((s, h["x-keyway-credential"].to_str().unwrap()), (200, k2.as_str()));
    }
    assert_eq!(fake.calls_with_key("sk-byok-broke-000001"), 1);
    // Listed with its health, from the same board.
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    let item = list["data"].as_array().unwrap().iter().find(|i| i["id"] == k1).unwrap();
    assert_eq!(item["health"]["state"], "quota_exhausted", "{item}");
    // A metric and a log line say so.
    let (_, m, _) = g.req("GET", "/metrics", None, None).await;
    let text = m.as_str().map(str::to_owned).unwrap_or_else(|| m.to_string());
    assert!(text.contains("keyway_credentials_quota_exhausted_total"), "{text}");
    assert!(logs().contains("out of quota or credit"), "no log line");
}

#[tokio::test]
async fn anthropic_credit_balance_too_low_parks_the_key() {
    let fake = keyway_fakes::anthropic::start(FakeOptions::default()).await.unwrap();
    let url = fake.url();
    let g = Gateway::start(|c| {
        c.providers.insert("anthropic".into(), ProviderSettings { base_url: Some(url.clone()) });
    })
    .await;
    let id = g.add_byok(json!({"provider": "anthropic", "key": "sk-ant-broke-0000001"})).await;
    // Anthropic answers 400 invalid_request_error: not the request's fault, the account's.
    one_key_is_parked(&fake, &g, &id, chat("anthropic/claude-sonnet-4.5", "anthropic"), 400).await;
}

#[tokio::test]
async fn gemini_daily_quota_resource_exhausted_parks_the_key() {
    let fake = keyway_fakes::gemini::start(FakeOptions::default()).await.unwrap();
    let url = fake.url();
    let g = Gateway::start(|c| {
        c.providers.insert("google-ai-studio".into(), ProviderSettings { base_url: Some(url.clone()) });
    })
    .await;
    let id = g.add_byok(json!({"provider": "google-ai-studio", "key": "AIza-quota-test-key-0001"})).await;
    one_key_is_parked(&fake, &g, &id, chat("google/gemini-2.5-flash", "google-ai-studio"), 429).await;
}

#[tokio::test]
async fn vertex_billing_disabled_parks_the_key() {
    let vertex = keyway_fakes::vertex::start(FakeOptions::default()).await.unwrap();
    vertex.auth.register(EMAIL, PUBLIC_PEM, None, PROJECT);
    let base = vertex.base_template();
    let allowed = vertex.url().trim_start_matches("http://").to_owned();
    let g = Gateway::start(|c| {
        c.providers.insert("google-vertex".into(), ProviderSettings { base_url: Some(base.clone()) });
        c.security.allowed_upstream_hosts.push(allowed.clone());
    })
    .await;
    let sa = json!({"type": "service_account", "project_id": PROJECT, "private_key_id": "kid-quota", "private_key": PEM,
                    "client_email": EMAIL, "token_uri": vertex.token_url(), "location": "us-central1"});
    let id = g.add_byok(json!({"provider": "google-vertex", "key": sa})).await;
    one_key_is_parked(&vertex.server, &g, &id, chat("google/gemini-2.5-flash", "google-vertex"), 403).await;
}

#[tokio::test]
async fn bedrock_daily_token_quota_parks_the_key() {
    const AKID: &str = "AKIAQUOTATESTKEY0001";
    let fake = keyway_fakes::bedrock::start(FakeOptions::default(), keyway_fakes::bedrock::BedrockConfig::default().with_key(AKID, "quota-secret"))
        .await
        .unwrap();
    let g = Gateway::for_bedrock(&fake).await;
    let id = g.add_byok(json!({"provider": "amazon-bedrock", "key": [{"region": "global", "accessKeyId": AKID, "secretAccessKey": "quota-secret"}]})).await;
    one_key_is_parked(&fake, &g, &id, chat("amazon/nova-micro-v1", "amazon-bedrock"), 429).await;
}
