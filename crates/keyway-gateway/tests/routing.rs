//! Routing rules end to end: the real server against fakes with faults switched on and off.
//! Each test is named after the rule in docs/routing.md it backs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::{FakeOptions, FakeState};
use keyway_fakes::{Fault, FakeServer};
use keyway_gateway::config::ProviderSettings;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYSTEM_KEY: &str = "sk-system-operator-0000";

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "route me"}]})
}

async fn openai_setup() -> (FakeServer, Gateway, String) {
    openai_gateway(FakeOptions::default(), SYSTEM_KEY).await
}

/// Keyway in front of `fake` (as `openai`, system credential [`SYSTEM_KEY`]), with `tweak` applied.
async fn gateway_for(fake: &FakeServer, mut tweak: impl FnMut(&mut keyway_gateway::Config)) -> (Gateway, String) {
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", SYSTEM_KEY));
        tweak(c);
    })
    .await;
    let (key, _) = g.inference_key().await;
    (g, key)
}

/// `GET /api/v1/generation?id=` (written just after the request ends, so polled briefly).
async fn generation(g: &Gateway, id: &str) -> Value {
    for _ in 0..100 {
        let (s, v) = g.mgmt("GET", &format!("/api/v1/generation?id={id}"), None).await;
        if s == 200 {
            return v["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("generation {id} was never recorded");
}

/// The `health` object of `GET /api/v1/byok/{id}`.
async fn byok_health(g: &Gateway, id: &str) -> Value {
    let (s, b) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert_eq!(s, 200, "{b}");
    b["data"]["health"].clone()
}

fn ts(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"))).unwrap().into()
}

fn streaming(model: &str) -> Value {
    let mut b = chat(model);
    b["stream"] = json!(true);
    b
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The OpenAI fake behind a layer that answers 403 to `key`, echoing the key in its message as
/// some providers do (so that scrubbing is exercised). Also returns how many 403s it sent.
async fn openai_fake_forbidding(key: &'static str) -> (FakeServer, Arc<AtomicUsize>) {
    use axum::response::IntoResponse;
    let state = FakeState::new(FakeOptions::default());
    let refused = Arc::new(AtomicUsize::new(0));
    let n = refused.clone();
    let layer = axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
        let n = n.clone();
        async move {
            let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            if auth == format!("Bearer {key}") {
                n.fetch_add(1, Ordering::SeqCst);
                let body = json!({"error": {"message": format!("Project lacks access to this model (key {key})"), "type": "invalid_request_error", "code": "model_not_found"}});
                return (axum::http::StatusCode::FORBIDDEN, axum::Json(body)).into_response();
            }
            next.run(req).await
        }
    });
    let router = keyway_fakes::openai::router(state.clone()).layer(layer);
    (FakeServer::start(router, state, None).await.unwrap(), refused)
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
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-one-000003", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-two-000004", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-one-000003", Fault::RateLimit { retry_after_secs: 30 });
    fake.set_fault_for_key("sk-byok-two-000004", Fault::RateLimit { retry_after_secs: 60 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], "system");
    assert_eq!(h["x-keyway-byok"], "false");
    assert_eq!(h["x-keyway-attempts"], "3");
    assert_eq!(fake.calls_with_key(SYSTEM_KEY), 1);
    // every attempt is recorded with the generation, readable over the API
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    assert_eq!(gen["provider"], "openai");
    assert_eq!(gen["credential_id"], "system");
    let attempts = gen["attempts"].as_array().unwrap();
    let got: Vec<(&str, &str, u64)> = attempts
        .iter()
        .map(|a| (a["provider"].as_str().unwrap(), a["credential_id"].as_str().unwrap(), a["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, [("openai", k1.as_str(), 429), ("openai", k2.as_str(), 429), ("openai", "system", 200)]);
    assert!(attempts.iter().all(|a| a["latency_ms"].is_u64()), "{attempts:?}");
    assert_eq!((attempts[0]["error"].as_str(), attempts[2].get("error")), (Some("rate_limited"), None));
    // both keys cool down for their own Retry-After, and say when they were last used
    for (id, secs) in [(&k1, 30), (&k2, 60)] {
        let health = byok_health(&g, id).await;
        assert_eq!(health["status"], "cooling_down", "{health}");
        assert_eq!(health["last_error"]["kind"], "rate_limited");
        let used = ts(&health["last_used_at"]);
        let until = ts(&health["cooldown_until"]);
        let now = chrono::Utc::now();
        assert!(now - used < chrono::Duration::seconds(10), "last_used_at {used}");
        let left = (until - now).num_seconds();
        assert!((secs - 5..=secs).contains(&left), "cooldown_until {until}: {left}s left, want ~{secs}");
    }
}

#[tokio::test]
async fn e2e_byok_5xx_moves_on_without_cooling_the_key() {
    let (fake, g, key) = openai_setup().await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-5xx-000017", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-ok-0000018", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-5xx-000017", Fault::ServerError);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2);
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    assert_eq!(gen["attempts"][0]["error"], "upstream_5xx");
    assert_eq!(gen["attempts"][0]["status"], 502);
    // a 5xx is the provider's trouble: the key keeps its place
    let health = byok_health(&g, &k1).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["last_error"]["kind"], "upstream");
    assert!(health["cooldown_until"].is_null());
    fake.clear_faults();
    let (_, _, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k1);
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
    let logs = logs();
    assert!(["sk-request-scoped-01", "sk-request-scoped-02", "sk-request-header-03"].iter().all(|k| !logs.contains(k)));
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
    let g = Gateway::for_bedrock(&fake).await;
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

// ---- Rule 4: what moves to the next attempt ----------------------------------------------------

#[tokio::test]
async fn e2e_timeout_moves_to_the_next_attempt() {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let (g, key) = gateway_for(&fake, |c| c.timeouts.first_byte_ms = 300).await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-slow-000019", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-fast-000020", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-slow-000019", Fault::SlowFirstByte(Duration::from_secs(5)));
    let t0 = Instant::now();
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert!(t0.elapsed() < Duration::from_secs(4), "the slow key was given up on: {:?}", t0.elapsed());
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2);
    assert_eq!(h["x-keyway-attempts"], "2");
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    let first = &gen["attempts"][0];
    assert_eq!((first["credential_id"].as_str(), first["error"].as_str(), first["status"].as_u64()), (Some(k1.as_str()), Some("timeout"), Some(504)));
    let waited = first["latency_ms"].as_u64().unwrap();
    assert!((300..4000).contains(&waited), "the attempt waited the first-byte timeout: {waited} ms");
}

#[tokio::test]
async fn e2e_connection_failure_moves_to_the_next_attempt() {
    let azure = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let dead = format!("http://127.0.0.1:{}/v1", closed_port());
    let g = Gateway::start(|c| {
        c.security.allowed_upstream_hosts.push("127.0.0.1".into());
        c.providers.insert("openai".into(), ProviderSettings { base_url: Some(dead.clone()) });
    })
    .await;
    let (key, _) = g.inference_key().await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-unreachable-21"})).await;
    let k2 = g.add_byok(json!({"provider": "azure", "key": [
        {"model_slug": "openai/gpt-4o-mini", "endpoint_url": azure.url(), "api_key": "azure-key-000022", "model_id": "mini"}]})).await;
    let mut body = chat("openai/gpt-4o-mini");
    body["provider"] = json!({"order": ["openai", "azure"]});
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-provider"], "azure");
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2);
    assert_eq!(v["provider"], "Azure");
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    let first = &gen["attempts"][0];
    assert_eq!((first["provider"].as_str(), first["credential_id"].as_str()), (Some("openai"), Some(k1.as_str())));
    assert_eq!((first["error"].as_str(), first["status"].as_u64()), (Some("connect"), Some(502)));
    assert_eq!(azure.calls_with_key("azure-key-000022"), 1);
}

#[tokio::test]
async fn e2e_403_from_byok_key_moves_on_and_is_flagged() {
    const FORBIDDEN: &str = "sk-byok-forbidden-00023";
    let (fake, refused) = openai_fake_forbidding(FORBIDDEN).await;
    let (g, key) = gateway_for(&fake, |_| {}).await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": FORBIDDEN, "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-allowed-00024", "sort_order": 2})).await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2);
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    assert_eq!((gen["attempts"][0]["status"].as_u64(), gen["attempts"][0]["error"].as_str()), (Some(403), Some("auth")));
    let msg = gen["attempts"][0]["message"].as_str().unwrap();
    assert!(msg.contains("***") && !msg.contains(FORBIDDEN), "the echoed key is scrubbed: {msg}");
    let health = byok_health(&g, &k1).await;
    assert_eq!(health["last_error"]["kind"], "auth", "{health}");
    assert_eq!(health["consecutive_auth_failures"], 1);
    assert_eq!(health["status"], "cooling_down");
}

#[tokio::test]
async fn e2e_400_returns_at_once_without_trying_other_keys() {
    let (fake, g, key) = openai_setup().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-badreq-00025", "sort_order": 1})).await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-unused-00026", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-badreq-00025", Fault::BadRequest);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 400);
    assert_eq!(h["x-keyway-attempts"], "1");
    assert_eq!(fake.calls_with_key("sk-byok-unused-00026"), 0);
    assert_eq!(fake.calls_with_key(SYSTEM_KEY), 0);
}

#[tokio::test]
async fn e2e_stream_error_event_before_content_falls_back_and_cools_the_key() {
    let (fake, g, key) = openai_setup().await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-evented-00027", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-steady-000028", "sort_order": 2})).await;
    // 200, then a rate-limit error event before any content
    fake.set_fault_for_key("sk-byok-evented-00027", Fault::ErrorEventAfter200);
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&streaming("openai/gpt-4o-mini")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyway-credential"].to_str().unwrap(), k2);
    assert_eq!(r.headers()["x-keyway-attempts"], "2");
    let text = r.text().await.unwrap();
    assert!(text.contains("Echo") && text.trim_end().ends_with("[DONE]") && !text.contains("\"error\""), "{text}");
    // like a 429: the key cools down, and the next request leaves it alone
    let health = byok_health(&g, &k1).await;
    assert_eq!(health["status"], "cooling_down", "{health}");
    assert_eq!(health["last_error"]["kind"], "rate_limited");
    assert!(!health["cooldown_until"].is_null());
    let before = fake.calls_with_key("sk-byok-evented-00027");
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&streaming("openai/gpt-4o-mini")).send().await.unwrap();
    assert_eq!(r.headers()["x-keyway-credential"].to_str().unwrap(), k2);
    assert_eq!(r.headers()["x-keyway-attempts"], "1");
    assert_eq!(fake.calls_with_key("sk-byok-evented-00027"), before);
}

#[tokio::test]
async fn e2e_stream_cut_midway_ends_with_error_event_no_silent_retry() {
    let (fake, g, key) = openai_setup().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-cut-00000039", "sort_order": 1})).await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-spare-000040", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-cut-00000039", Fault::CutStream);
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&streaming("openai/gpt-4o-mini")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    let content_at = data.iter().position(|d| d.contains("\"content\":\"") && !d.contains("\"content\":\"\"")).expect("content was forwarded");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "a final SSE error event: {text}");
    assert!(content_at < data.len() - 1 && !text.contains("[DONE]"), "{text}");
    assert_eq!(fake.calls_with_key("sk-byok-spare-000040") + fake.calls_with_key(SYSTEM_KEY), 0, "no silent retry after content");
}

#[tokio::test]
async fn e2e_gateway_shows_what_served_and_every_attempt() {
    let (fake, g, key) = openai_setup().await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-shown-000041"})).await;
    fake.set_fault_for_key("sk-byok-shown-000041", Fault::RateLimit { retry_after_secs: 9 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    let shown: Vec<&str> = ["x-keyway-provider", "x-keyway-credential", "x-keyway-byok", "x-keyway-attempts", "x-keyway-model"]
        .iter()
        .map(|n| h[*n].to_str().unwrap())
        .collect();
    assert_eq!(shown, ["openai", "system", "false", "2", "openai/gpt-4o-mini"]);
    assert_eq!(v["provider"], "OpenAI");
    let id = h["x-keyway-generation-id"].to_str().unwrap();
    assert_eq!(v["id"], id);
    let gen = generation(&g, id).await;
    assert_eq!((gen["provider"].as_str(), gen["credential_id"].as_str(), gen["is_byok"].as_bool()), (Some("openai"), Some("system"), Some(false)));
    assert_eq!(gen["attempts"][0]["credential_id"].as_str(), Some(k1.as_str()));
    // a request that fails says so too, and its attempts are readable the same way
    fake.set_fault_for_key(SYSTEM_KEY, Fault::ServerError);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 502);
    // the cooling key moved to the end of its section, which is still before the system's
    assert_eq!(h["x-keyway-attempts"], "2");
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    assert_eq!(gen["status"], 502);
    assert!(gen["provider"].is_null());
    let classes: Vec<&str> = gen["attempts"].as_array().unwrap().iter().map(|a| a["error"].as_str().unwrap()).collect();
    assert_eq!(classes, ["rate_limited", "upstream_5xx"], "the last failure decides the status");
}

#[tokio::test]
async fn e2e_anthropic_overloaded_event_before_content_falls_back() {
    const SYSTEM_ANT: &str = "sk-ant-system-0000029";
    let fake = keyway_fakes::anthropic::start(FakeOptions::default()).await.unwrap();
    let url = fake.url();
    let g = Gateway::start(|c| {
        c.providers.insert("anthropic".into(), ProviderSettings { base_url: Some(url.clone()) });
        c.system_credentials.push(system_key("anthropic", SYSTEM_ANT));
    })
    .await;
    let (key, _) = g.inference_key().await;
    let k1 = g.add_byok(json!({"provider": "anthropic", "key": "sk-ant-byok-overloaded-30"})).await;
    // message_start, then `event: error` with `overloaded_error`, before any content block
    fake.set_fault_for_key("sk-ant-byok-overloaded-30", Fault::ErrorEventAfter200);
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&streaming("anthropic/claude-sonnet-4.5")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyway-credential"], "system");
    assert_eq!(r.headers()["x-keyway-attempts"], "2");
    let gen_id = r.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    assert!(text.contains("Echo") && text.trim_end().ends_with("[DONE]") && !text.contains("verloaded"), "{text}");
    assert_eq!(fake.calls_with_key(SYSTEM_ANT), 1);
    let gen = generation(&g, &gen_id).await;
    assert_eq!((gen["attempts"][0]["credential_id"].as_str(), gen["attempts"][0]["error"].as_str()), (Some(k1.as_str()), Some("upstream_5xx")));
    // the same through Anthropic's own Messages API
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "route me"}]});
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["x-keyway-credential"], "system");
    let text = r.text().await.unwrap();
    assert!(text.contains("message_stop") && !text.contains("verloaded"), "{text}");
}

// ---- Rule 3 with rule 6: a pin applies only where its key applies -----------------------------

#[tokio::test]
async fn e2e_pinned_key_scoped_to_other_caller_does_not_pin() {
    let (fake, g, key) = openai_setup().await;
    let (_, other_hash) = g.inference_key().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-pin-otherkey-31", "is_required": true, "allowed_api_key_hashes": [other_hash]})).await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-pin-alice-0032", "is_required": true, "allowed_user_ids": ["alice"]})).await;
    fake.set_fault_for_key("sk-byok-pin-alice-0032", Fault::RateLimit { retry_after_secs: 33 });
    // neither key applies to bob on this Keyway key: no pin, the system credential serves
    let mut body = chat("openai/gpt-4o-mini");
    body["user"] = json!("bob");
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], "system");
    assert_eq!(fake.calls_with_key("sk-byok-pin-otherkey-31") + fake.calls_with_key("sk-byok-pin-alice-0032"), 0);
    // for alice the second key applies and pins: its 429 is the answer, the system key untouched
    let mut body = chat("openai/gpt-4o-mini");
    body["user"] = json!("alice");
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_error(s, &v, 429);
    assert_eq!(h["retry-after"], "33");
    assert_eq!(fake.calls_with_key("sk-byok-pin-alice-0032"), 1);
    assert_eq!(fake.calls_with_key("sk-byok-pin-otherkey-31"), 0);
    assert_eq!(fake.calls_with_key(SYSTEM_KEY), 1, "only bob's request");
}

#[tokio::test]
async fn e2e_pinned_key_fails_then_other_provider_fails_last_error_decides() {
    let azure = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let openai = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let (g, key) = gateway_for(&openai, |c| c.security.allowed_upstream_hosts.push("127.0.0.1".into())).await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-pinned-00042", "is_required": true})).await;
    g.add_byok(json!({"provider": "azure", "key": [
        {"model_slug": "openai/gpt-4o-mini", "endpoint_url": azure.url(), "api_key": "azure-key-000043", "model_id": "mini"}]})).await;
    openai.set_fault_for_key("sk-byok-pinned-00042", Fault::RateLimit { retry_after_secs: 44 });
    azure.set_fault(Fault::ServerError);
    // the pin bars OpenAI's system key only; Azure is still tried, and its failure is the last
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 502);
    assert_eq!(h["x-keyway-attempts"], "2");
    assert!(h.get("retry-after").is_none());
    assert!(v["error"]["message"].as_str().unwrap().starts_with("all 2 attempts failed; last: "), "{v}");
    assert_eq!(openai.calls_with_key(SYSTEM_KEY), 0);
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    let got: Vec<(&str, u64)> = gen["attempts"].as_array().unwrap().iter().map(|a| (a["provider"].as_str().unwrap(), a["status"].as_u64().unwrap())).collect();
    assert_eq!(got, [("openai", 429), ("azure", 502)], "the pinned key's 429 is in the record");
}

// ---- Rule 6: workspace isolation --------------------------------------------------------------

#[tokio::test]
async fn e2e_workspace_isolation_other_workspaces_keys_never_used() {
    const KEY_A: &str = "sk-byok-workspace-a-0034";
    let (fake, g, key_a) = openai_setup().await;
    let id_a = g.add_byok(json!({"provider": "openai", "key": KEY_A, "is_required": true})).await;
    let (s, ws) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Team B"}))).await;
    assert_eq!(s, 201, "{ws}");
    let (s, kb) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "b", "workspace_id": ws["data"]["id"]}))).await;
    assert_eq!(s, 201, "{kb}");
    let key_b = kb["key"].as_str().unwrap().to_owned();
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key_b), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((h["x-keyway-credential"].to_str().unwrap(), h["x-keyway-byok"].to_str().unwrap()), ("system", "false"));
    // not even when the system credential fails (and A's pin does not reach B either)
    fake.set_fault_for_key(SYSTEM_KEY, Fault::ServerError);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key_b), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 502);
    assert_eq!(h["x-keyway-attempts"], "1");
    assert_eq!(fake.calls_with_key(KEY_A), 0, "workspace B never uses workspace A's key");
    // the key itself works, for its own workspace
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key_a), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), id_a);
    assert_eq!(fake.calls_with_key(KEY_A), 1);
}

// ---- Rule 7: request-scoped keys --------------------------------------------------------------

#[tokio::test]
async fn e2e_request_scoped_failed_key_is_neither_logged_nor_recorded() {
    const FORBIDDEN: &str = "sk-request-scoped-refused-35";
    const GOOD: &str = "sk-request-scoped-good-0036";
    let (fake, refused) = openai_fake_forbidding(FORBIDDEN).await;
    let (g, key) = gateway_for(&fake, |_| {}).await;
    let mut body = chat("openai/gpt-4o-mini");
    body["providerOptions"] = json!({"gateway": {"byok": {"openai": [{"apiKey": FORBIDDEN}, {"apiKey": GOOD}]}}});
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(refused.load(Ordering::SeqCst), 1, "the upstream echoed the key in a 403");
    assert_eq!((h["x-keyway-credential"].to_str().unwrap(), h["x-keyway-byok"].to_str().unwrap()), ("request", "true"));
    assert_eq!(fake.calls_with_key(GOOD), 1);
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    let first = &gen["attempts"][0];
    assert_eq!((first["credential_id"].as_str(), first["status"].as_u64()), (Some("request"), Some(403)));
    assert!(first["message"].as_str().unwrap().contains("***"), "{first}");
    let all = gen.to_string();
    assert!(!all.contains(FORBIDDEN) && !all.contains(GOOD), "no request-scoped secret in the generation: {all}");
    let logs = logs();
    assert!(logs.contains("attempt failed"), "the failed attempt was logged");
    assert!(!logs.contains(FORBIDDEN) && !logs.contains(GOOD), "no request-scoped secret in the logs");
}

#[tokio::test]
async fn e2e_request_scoped_azure_endpoint_outside_allow_list_is_refused() {
    let fake = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let byok = json!({"azure": [[{"model_slug": "openai/gpt-4o-mini", "endpoint_url": fake.url(), "api_key": "azure-request-key-0037", "model_id": "mini"}]]});
    let mut body = chat("openai/gpt-4o-mini");
    body["providerOptions"] = json!({"gateway": {"byok": byok}});
    // the default allow-list holds Azure's own domains only
    let g = Gateway::start(|_| {}).await;
    let (key, _) = g.inference_key().await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body.clone())).await;
    assert_error(s, &v, 422);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("not allowed") && !msg.contains("azure-request-key-0037"), "{msg}");
    use base64::Engine;
    let header = base64::engine::general_purpose::STANDARD.encode(byok.to_string());
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).header("x-keyway-byok", header).json(&chat("openai/gpt-4o-mini")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(fake.calls().is_empty(), "nothing was sent to the refused host");
    // the same credential once the operator allows the host: served
    let g = Gateway::start(|c| c.security.allowed_upstream_hosts.push("127.0.0.1".into())).await;
    let (key, _) = g.inference_key().await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], "request");
    assert_eq!(fake.calls_with_key("azure-request-key-0037"), 1);
}

// ---- Rule 1: allow_fallbacks: false -----------------------------------------------------------

#[tokio::test]
async fn e2e_allow_fallbacks_false_with_order_tries_only_listed_providers() {
    let azure = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let openai = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let (g, key) = gateway_for(&openai, |c| c.security.allowed_upstream_hosts.push("127.0.0.1".into())).await;
    g.add_byok(json!({"provider": "azure", "key": [
        {"model_slug": "openai/gpt-4o-mini", "endpoint_url": azure.url(), "api_key": "azure-key-000038", "model_id": "mini"}]})).await;
    azure.set_fault(Fault::ServerError);
    openai.set_fault(Fault::ServerError);
    // with `order`: only the listed providers, in order (OpenRouter's behaviour)
    let mut body = chat("openai/gpt-4o-mini");
    body["provider"] = json!({"order": ["azure"], "allow_fallbacks": false});
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_error(s, &v, 502);
    assert_eq!(h["x-keyway-attempts"], "1");
    assert_eq!((azure.calls().len(), openai.calls().len()), (1, 0));
    // without `order`: only the first eligible provider (openai, first in the catalog)
    let mut body = chat("openai/gpt-4o-mini");
    body["provider"] = json!({"allow_fallbacks": false});
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_error(s, &v, 502);
    assert_eq!(h["x-keyway-attempts"], "1");
    assert_eq!((azure.calls().len(), openai.calls().len()), (1, 1));
    // and with fallbacks allowed, both
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 502);
    assert_eq!(h["x-keyway-attempts"], "2");
}

/// The BYOK pages' own Azure examples: deployments of `mistralai/mistral-large` (the single
/// object form; the catalog lists it at Mistral only), `openai/gpt-5.2` and `openai/o3-mini`
/// (with `provider.only: ["azure"]`), plus a model no catalog knows. Each is routed to its
/// deployment; usage is recorded, priced from the catalog when it knows the model, else 0.
#[tokio::test]
async fn e2e_azure_deployments_of_models_outside_the_catalogs_azure_list() {
    let fake = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let g = Gateway::start(|c| c.security.allowed_upstream_hosts.push("127.0.0.1".into())).await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "azure", "key":
        {"model_slug": "mistralai/mistral-large", "endpoint_url": fake.url(), "api_key": "azure-key-000021", "model_id": "mistral-large-2411"}})).await;
    g.add_byok(json!({"provider": "azure", "key": [
        {"model_slug": "openai/gpt-5.2", "endpoint_url": fake.url(), "api_key": "azure-key-000022", "model_id": "gpt52-prod"},
        {"model_slug": "openai/o3-mini", "endpoint_url": fake.url(), "api_key": "azure-key-000022", "model_id": "o3-mini-eu"},
        {"model_slug": "acme/house-model-7", "endpoint_url": fake.url(), "api_key": "azure-key-000022", "model_id": "house7"}]})).await;
    let mut ids = Vec::new();
    for (model, only_azure, deployment) in [("mistralai/mistral-large", false, "mistral-large-2411"), ("openai/gpt-5.2", true, "gpt52-prod"), ("openai/o3-mini", true, "o3-mini-eu"), ("acme/house-model-7", false, "house7")] {
        let mut body = chat(model);
        if only_azure {
            body["provider"] = json!({"only": ["azure"]});
        }
        let (s, v, h) = g.req("POST", "/api/v1/chat/completions", Some(&key), Some(body)).await;
        assert_eq!(s, 200, "{model}: {v}");
        assert_eq!(h["x-keyway-provider"], "azure", "{model}");
        assert!(fake.calls().last().unwrap().path.contains(deployment), "{model}: {}", fake.calls().last().unwrap().path);
        ids.push(h["x-keyway-generation-id"].to_str().unwrap().to_owned());
    }
    // Usage recorded for each; the catalog prices the models it knows, the unknown one costs 0.
    let mut costs = Vec::new();
    for id in &ids {
        let mut gen = Value::Null;
        for _ in 0..100 {
            let (s, v) = g.mgmt("GET", &format!("/api/v1/generation?id={id}"), None).await;
            if s == 200 {
                gen = v;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(gen["data"]["tokens_prompt"].as_u64().unwrap_or(0) > 0, "usage recorded: {gen}");
        costs.push(gen["data"]["cost_micros"].as_u64().unwrap_or(u64::MAX));
    }
    assert!(costs[0] > 0, "mistral-large priced from the catalog: {costs:?}");
    assert!(costs[1] > 0 && costs[2] > 0, "gpt-5.2 and o3-mini priced from the catalog: {costs:?}");
    assert_eq!(costs[3], 0, "a model no catalog knows costs 0: {costs:?}");
}

/// `[[pricing]]` with `provider = "azure"` prices a deployment of a model no catalog knows.
#[tokio::test]
async fn e2e_azure_deployment_priced_from_pricing_config() {
    let fake = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let g = Gateway::start(|c| {
        c.security.allowed_upstream_hosts.push("127.0.0.1".into());
        c.pricing.push(keyway_core::pricing::PriceOverride {
            model: "acme/house-model-8".into(),
            provider: "Azure".into(),
            input_per_mtok_micros: Some(1_000_000_000),
            output_per_mtok_micros: Some(1_000_000_000),
            cached_input_per_mtok_micros: None,
            per_request_micros: None,
        });
    })
    .await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "azure", "key":
        {"model_slug": "acme/house-model-8", "endpoint_url": fake.url(), "api_key": "azure-key-000031", "model_id": "house8"}})).await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("acme/house-model-8"))).await;
    assert_eq!(s, 200, "{v}");
    let id = h["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let gen = generation(&g, &id).await;
    let tokens = gen["tokens_prompt"].as_u64().unwrap() + gen["tokens_completion"].as_u64().unwrap();
    assert_eq!(gen["cost_micros"].as_u64().unwrap(), tokens * 1000, "$1000/Mtok = 1000 micros a token: {gen}");
}

/// The loop's one retry rule (`proxy::retry::moves_on`) through the real loop: for an error of
/// each class on the first credential, the request either moves on to the second credential or
/// stops there, as the rule says for that class.
#[tokio::test]
async fn e2e_each_error_class_moves_on_or_stops_as_the_retry_rule_says() {
    use keyway_gateway::proxy::retry::moves_on;
    use keyway_providers::error::TimeoutKind;
    use keyway_providers::ProviderError;
    let cases: Vec<(Fault, &str, ProviderError)> = vec![
        (Fault::RateLimit { retry_after_secs: 60 }, "rate_limited", ProviderError::RateLimited { status: 429, retry_after: None, message: String::new(), body: None }),
        (Fault::ServerError, "upstream_5xx", ProviderError::Upstream5xx { status: 500, message: String::new() }),
        (Fault::Unauthorized, "auth", ProviderError::Auth { status: 401, message: String::new(), body: None }),
        (Fault::Forbidden, "auth", ProviderError::Auth { status: 403, message: String::new(), body: None }),
        (Fault::InvalidJson, "protocol", ProviderError::Protocol(String::new())),
        (Fault::SlowFirstByte(Duration::from_secs(5)), "timeout", ProviderError::Timeout(TimeoutKind::FirstByte)),
        (Fault::BadRequest, "bad_request", ProviderError::BadRequest { status: 400, message: String::new(), body: None }),
    ];
    for (i, (fault, class, error)) in cases.into_iter().enumerate() {
        let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
        let (g, key) = gateway_for(&fake, |c| c.timeouts.first_byte_ms = 300).await;
        let (first, second) = (format!("sk-byok-first-{i:06}"), format!("sk-byok-second-{i:06}"));
        g.add_byok(json!({"provider": "openai", "key": first, "sort_order": 1})).await;
        let k2 = g.add_byok(json!({"provider": "openai", "key": second, "sort_order": 2})).await;
        fake.set_fault_for_key(&first, fault);
        let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
        let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
        assert_eq!(gen["attempts"][0]["error"].as_str(), Some(class), "{gen}");
        if moves_on(&error) {
            assert_eq!(s, 200, "{class} moves on: {v}");
            assert_eq!(h["x-keyway-credential"].to_str().unwrap(), k2, "{class}");
            assert_eq!(h["x-keyway-attempts"], "2", "{class}");
            assert_eq!(fake.calls_with_key(&second), 1, "{class}");
        } else {
            assert_ne!(s, 200, "{class} stops: {v}");
            assert_eq!(h["x-keyway-attempts"], "1", "{class}");
            assert_eq!(fake.calls_with_key(&second), 0, "{class} stops before the second credential");
        }
        assert_eq!(fake.calls_with_key(SYSTEM_KEY), 0, "{class}");
    }
}
