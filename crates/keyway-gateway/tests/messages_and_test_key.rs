//! Anthropic's Messages API on Keyway, and "Test key".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::Fault;
use keyway_gateway::config::ProviderSettings;
use serde_json::{json, Value};

fn msg(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "system": "be brief", "messages": [{"role": "user", "content": "hi claude"}]})
}

#[tokio::test]
async fn messages_served_natively_by_anthropic_plain_and_streaming() {
    let fake = keyway_fakes::anthropic::start(FakeOptions::default()).await.unwrap();
    let url = fake.url();
    let g = Gateway::start(|c| {
        c.providers.insert("anthropic".into(), ProviderSettings { base_url: Some(url.clone()) });
        c.system_credentials.push(system_key("anthropic", "sk-ant-system-000001"));
    })
    .await;
    let (key, _) = g.inference_key().await;
    // Anthropic clients authenticate with x-api-key
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).header("anthropic-version", "2023-06-01").json(&msg("claude-sonnet-4-5")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyway-provider"], "anthropic");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert!(v["content"][0]["text"].as_str().unwrap().contains("hi claude"), "{v}");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = &fake.calls()[0];
    assert_eq!(sent.key, "sk-ant-system-000001");
    assert_eq!(sent.body["system"], "be brief");

    let mut body = msg("claude-sonnet-4-5");
    body["stream"] = json!(true);
    let text = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap().text().await.unwrap();
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert!(events.contains(&"content_block_delta"));
    assert_eq!(events.last(), Some(&"message_stop"), "{text}");
}

#[tokio::test]
async fn messages_served_by_an_openai_provider_through_translation() {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", "sk-openai-system-0001"));
    })
    .await;
    let (key, _) = g.inference_key().await;
    let r = g.http.post(g.url("/v1/messages")).bearer_auth(&key).json(&msg("openai/gpt-4o-mini")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert!(v["content"][0]["text"].as_str().unwrap().contains("hi claude"));
    let sent = &fake.calls()[0].body;
    assert_eq!(sent["messages"][0]["role"], "system");
    // errors in Anthropic's shape
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", "kw-wrong").json(&msg("openai/gpt-4o-mini")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn test_key_reports_ok_and_failure_without_a_500() {
    let fake = keyway_fakes::openai::start(FakeOptions { keys: ["sk-good-key-000000001".to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| c.providers.insert("openai".into(), ProviderSettings { base_url: Some(base.clone()) }).map(|_| ()).unwrap_or(())).await;
    let good = g.add_byok(json!({"provider": "openai", "key": "sk-good-key-000000001"})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{good}/test"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["status"], 200);
    assert_eq!(v["model"], "gpt-4o-mini");
    let curl = v["request"].as_str().unwrap();
    assert!(curl.starts_with("curl -X POST") && curl.contains("/chat/completions") && curl.contains("\"max_tokens\":1"), "{curl}");
    assert!(!curl.contains("sk-good-key-000000001") && curl.contains("sk-...0001"), "masked: {curl}");
    assert_eq!(fake.calls()[0].body["max_tokens"], 1);

    let bad = g.add_byok(json!({"provider": "openai", "key": "sk-wrong-key-00000002"})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{bad}/test"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], 401);
    assert!(!v.to_string().contains("sk-wrong-key-00000002"));

    // unsaved credential, same body as create
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "openai", "key": "sk-good-key-000000001"}))).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 2, "testing saves nothing");

    fake.set_fault(Fault::RateLimit { retry_after_secs: 3 });
    let (_, v) = g.mgmt("POST", &format!("/api/v1/byok/{good}/test"), None).await;
    assert_eq!((v["ok"].as_bool(), v["status"].as_u64()), (Some(false), Some(429)));
}

#[tokio::test]
async fn test_key_refuses_caller_urls_outside_the_allow_list_and_literal_refs() {
    let g = Gateway::start(|_| {}).await;
    let (s, v) = g
        .mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "azure", "key": [{"model_slug": "openai/gpt-4o", "endpoint_url": "http://127.0.0.1:1/x", "api_key": "k", "model_id": "d"}]})))
        .await;
    assert_error(s, &v, 422);
    assert!(v["error"]["message"].as_str().unwrap().contains("not allowed"));
    let pem = include_str!("../../keyway-core/testdata/test-rsa-key.pem");
    let (s, v) = g
        .mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "google-vertex", "key": {"type": "service_account", "project_id": "p",
            "private_key": pem, "client_email": "a@p.iam.gserviceaccount.com", "token_uri": "http://169.254.169.254/token"}})))
        .await;
    assert_error(s, &v, 422);
    // an env: reference from a caller is a literal string, never resolved
    std::env::set_var("KW_TEST_SHOULD_NOT_LEAK", "sk-operator-secret-xyz");
    let (_, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "openai", "key": "env:KW_TEST_SHOULD_NOT_LEAK"}))).await;
    assert!(!v.to_string().contains("sk-operator-secret-xyz"));
    assert_eq!(v["ok"], false);
}
