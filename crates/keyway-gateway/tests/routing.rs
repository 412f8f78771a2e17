//! Routing rules end to end: the real server against fakes with faults switched on and off.
//! Each test is named after the rule in docs/routing.md it backs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::{Fault, FakeServer};
use keyway_gateway::config::ProviderSettings;
use serde_json::{json, Value};

const SYSTEM_KEY: &str = "sk-system-operator-0000";

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "route me"}]})
}

async fn openai_setup() -> (FakeServer, Gateway, String) {
    openai_gateway(FakeOptions::default(), SYSTEM_KEY).await
}

#[tokio::test]
async fn e2e_429_on_key_1_key_2_serves() {
    let (fake, g, key) = openai_setup().await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-one-000001", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-two-000002", "sort_order": 2})).await;
    let (_, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k1, "sort_order decides");
    fake.set_fault_for_key("sk-byok-one-000001", Fault::RateLimit { retry_after_secs: 60 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2);
    // key 1 cools down: the next request goes to key 2 first, without touching key 1
    let before = fake.calls_with_key("sk-byok-one-000001");
    let (_, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2);
    assert_eq!(h["x-keyway-attempts"], "1");
    assert_eq!(fake.calls_with_key("sk-byok-one-000001"), before);
    assert_eq!(fake.calls_with_key(SYSTEM_KEY), 0);
}

#[tokio::test]
async fn e2e_all_byok_keys_429_system_serves() {
    let (fake, g, key) = openai_setup().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-one-000003"})).await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-two-000004"})).await;
    fake.set_fault_for_key("sk-byok-one-000003", Fault::RateLimit { retry_after_secs: 5 });
    fake.set_fault_for_key("sk-byok-two-000004", Fault::ServerError);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], "system");
    assert_eq!(h["x-keyway-attempts"], "3");
    let gen_id = h["x-keyway-generation-id"].to_str().unwrap().to_owned();
    // the attempts are recorded with the generation
    let mut row = None;
    for _ in 0..50 {
        if let Ok(r) = g.state.store.get_generation(None, &gen_id).await {
            row = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let row = row.expect("generation recorded");
    let attempts: Vec<Value> = serde_json::from_str(&row.attempts).unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["status"], 429);
    assert_eq!(attempts[1]["error"], "upstream_5xx");
    assert_eq!(attempts[2]["credential_id"], "system");
}

#[tokio::test]
async fn e2e_pinned_key_429_passes_through_and_system_is_untouched() {
    let (fake, g, key) = openai_setup().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-pinned-0005", "is_required": true})).await;
    fake.set_fault_for_key("sk-byok-pinned-0005", Fault::RateLimit { retry_after_secs: 42 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 429);
    assert_eq!(h["retry-after"], "42");
    assert_eq!(fake.calls_with_key(SYSTEM_KEY), 0, "the system key is never used for a pinned provider");
}

#[tokio::test]
async fn e2e_byok_only_key_never_falls_back_to_system() {
    let (fake, g, key) = openai_setup().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-only-000006", "is_byok_only": true})).await;
    fake.set_fault_for_key("sk-byok-only-000006", Fault::ServerError);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 502);
    assert_eq!(fake.calls_with_key(SYSTEM_KEY), 0);
}

#[tokio::test]
async fn e2e_fallback_section_key_used_only_after_system_fails() {
    let (fake, g, key) = openai_setup().await;
    let fb = g.add_byok(json!({"provider": "openai", "key": "sk-byok-fallback-07", "is_fallback": true})).await;
    let (_, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(h["x-keyway-credential"], "system");
    assert_eq!(fake.calls_with_key("sk-byok-fallback-07"), 0);
    fake.set_fault_for_key(SYSTEM_KEY, Fault::ServerError);
    let (s, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), fb);
}

#[tokio::test]
async fn e2e_request_scoped_keys_override_stored_ones() {
    use base64::Engine;
    let (fake, g, key) = openai_setup().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-stored-0008"})).await;
    let mut body = chat("openai/gpt-4o-mini");
    body["providerOptions"] = json!({"gateway": {"byok": {"openai": [{"apiKey": "sk-request-scoped-01"}, {"apiKey": "sk-request-scoped-02"}]}}});
    fake.set_fault_for_key("sk-request-scoped-01", Fault::RateLimit { retry_after_secs: 1 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], "request");
    assert_eq!(fake.calls_with_key("sk-request-scoped-02"), 1, "several per provider, tried in order");
    assert_eq!(fake.calls_with_key("sk-byok-stored-0008"), 0);
    assert!(fake.calls().iter().all(|c| c.body.get("providerOptions").is_none()));
    // the same through the header, for clients that can't add body fields
    let header = base64::engine::general_purpose::STANDARD.encode(json!({"openai": [{"apiKey": "sk-request-header-03"}]}).to_string());
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).header("x-keyway-byok", header).json(&chat("openai/gpt-4o-mini")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(fake.calls_with_key("sk-request-header-03"), 1);
    // never stored, never logged
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 1);
    assert!(!logs().contains("sk-request-scoped-02") && !logs().contains("sk-request-header-03"));
}

#[tokio::test]
async fn e2e_model_mapping_sends_the_mapped_id() {
    let (fake, g, key) = openai_setup().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-mapped-0009",
        "model_mappings": [{"gateway_model_slug": "openai/gpt-4o-mini", "custom_model_id": "ft:gpt-4o-mini:acme:v2"}]})).await;
    let (s, _, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200);
    assert_eq!(fake.calls()[0].body["model"], "ft:gpt-4o-mini:acme:v2");
}

#[tokio::test]
async fn e2e_scoped_key_serves_only_its_api_keys() {
    let (fake, g, key) = openai_setup().await;
    let (_, other_hash) = g.inference_key().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-scoped-0010", "allowed_api_key_hashes": [other_hash]})).await;
    let (_, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(h["x-keyway-credential"], "system");
    assert_eq!(fake.calls_with_key("sk-byok-scoped-0010"), 0);
}

#[tokio::test]
async fn e2e_azure_deployment_mapping() {
    let fake = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let g = Gateway::start(|c| c.security.allowed_upstream_hosts.push("127.0.0.1".into())).await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "azure", "key": [
        {"model_slug": "openai/gpt-4o", "endpoint_url": fake.url(), "api_key": "azure-key-000011", "model_id": "prod-gpt4o"},
        {"model_slug": "openai/gpt-4o-mini", "endpoint_url": fake.url(), "api_key": "azure-key-000011", "model_id": "cheap-mini"}]})).await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-provider"], "azure");
    let calls = fake.calls();
    assert!(calls[0].path.contains("cheap-mini"), "deployment picked by slug: {}", calls[0].path);
    assert_eq!(calls[0].key, "azure-key-000011");
}

#[tokio::test]
async fn e2e_bedrock_region_choice_with_global_fallback() {
    const AKID_G: &str = "AKIAGLOBALKEY0000001";
    const AKID_EU: &str = "AKIAEUROPEKEY0000002";
    let fake = keyway_fakes::bedrock::start(
        FakeOptions::default(),
        keyway_fakes::bedrock::BedrockConfig::default().with_key(AKID_G, "global-secret-xyz").with_key(AKID_EU, "eu-secret-xyz"),
    )
    .await
    .unwrap();
    let base = format!("{}/{{region}}", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("amazon-bedrock".into(), ProviderSettings { base_url: Some(base.clone()) });
    })
    .await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "amazon-bedrock", "key": [
        {"region": "global", "accessKeyId": AKID_G, "secretAccessKey": "global-secret-xyz"},
        {"region": "eu-west-1", "accessKeyId": AKID_EU, "secretAccessKey": "eu-secret-xyz"}]})).await;
    let mut body = chat("amazon/nova-micro-v1");
    body["providerOptions"] = json!({"bedrock": {"region": "eu-west-1"}});
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("route me"));
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("amazon/nova-micro-v1"))).await;
    assert_eq!(s, 200, "{v}");
    let calls = fake.calls();
    assert_eq!(calls[0].key, AKID_EU, "the region's own key set");
    assert!(calls[0].path.starts_with("/eu-west-1/"), "{}", calls[0].path);
    assert_eq!(calls[1].key, AKID_G, "no us-east-1 set: the global one");
    assert!(calls[1].path.starts_with("/us-east-1/"), "{}", calls[1].path);
}

#[tokio::test]
async fn e2e_models_fallback_tries_the_next_model() {
    let (fake, g, key) = openai_setup().await;
    let mut body = chat("openai/gpt-4o");
    body["models"] = json!(["openai/gpt-4o", "openai/gpt-4o-mini"]);
    fake.fail_next(Fault::ServerError);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], "openai/gpt-4o-mini");
    assert_eq!(h["x-keyway-model"], "openai/gpt-4o-mini");
    let calls = fake.calls();
    assert_eq!((calls[0].body["model"].as_str(), calls[1].body["model"].as_str()), (Some("gpt-4o"), Some("gpt-4o-mini")));
}

#[tokio::test]
async fn e2e_broken_byok_key_401_moves_on_and_is_flagged() {
    let fake = keyway_fakes::openai::start(FakeOptions { keys: [SYSTEM_KEY.to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", SYSTEM_KEY));
    })
    .await;
    let (key, _) = g.inference_key().await;
    let id = g.add_byok(json!({"provider": "openai", "key": "sk-byok-revoked-0011"})).await;
    let (s, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-keyway-credential"], "system");
    let (_, b) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert_eq!(b["data"]["health"]["last_error"]["kind"], "auth", "{b}");
}
