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
    // `response` is the upstream's own error body, and the error names its message.
    assert_eq!(v["response"]["error"]["message"], "Incorrect API key provided.", "{v}");
    assert_eq!(v["response"]["error"]["code"], "invalid_api_key", "{v}");
    assert!(v["error"].as_str().unwrap().contains("Incorrect API key provided."), "{v}");
    assert!(!v.to_string().contains("sk-wrong-key-00000002"));

    // unsaved credential, same body as create
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "openai", "key": "sk-good-key-000000001"}))).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 2, "testing saves nothing");

    fake.set_fault(Fault::RateLimit { retry_after_secs: 3 });
    let (_, v) = g.mgmt("POST", &format!("/api/v1/byok/{good}/test"), None).await;
    assert_eq!((v["ok"].as_bool(), v["status"].as_u64()), (Some(false), Some(429)));
    assert_eq!(v["response"]["error"]["code"], "rate_limit_exceeded", "{v}");
    fake.set_fault(Fault::Forbidden);
    let (_, v) = g.mgmt("POST", &format!("/api/v1/byok/{good}/test"), None).await;
    assert_eq!((v["ok"].as_bool(), v["status"].as_u64()), (Some(false), Some(403)), "{v}");
    assert_eq!(v["response"]["error"]["message"], "Country, region, or territory not supported", "{v}");
}

#[tokio::test]
async fn test_key_azure_deployments_and_resource_stored_and_unsaved() {
    const GOOD: &str = "azure-good-key-00000000001";
    const WRONG: &str = "azure-wrong-key-0000000002";
    let fake = keyway_fakes::azure::start(FakeOptions { keys: [GOOD.to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
    let template = format!("{}/r/{{resource}}", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("azure".into(), ProviderSettings { base_url: Some(template.clone()) });
        c.security.allowed_upstream_hosts.push("127.0.0.1".into());
    })
    .await;
    let deployments = |key: &str| {
        json!([{"model_slug": "openai/gpt-4o-mini", "endpoint_url": fake.url(), "api_key": key, "model_id": "mini-dep"},
               {"model_slug": "openai/gpt-4o", "endpoint_url": fake.url(), "api_key": key, "model_id": "big-dep"}])
    };

    // Stored deployment list: the first deployment is tested unless a model is named.
    let id = g.add_byok(json!({"provider": "azure", "key": deployments(GOOD)})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((s, v["ok"].as_bool(), v["status"].as_u64()), (200, Some(true), Some(200)), "{v}");
    assert_eq!(v["model"], "mini-dep");
    assert_eq!(v["response"]["object"], "chat.completion", "{v}");
    let curl = v["request"].as_str().unwrap();
    assert!(curl.contains("/openai/deployments/mini-dep/chat/completions?api-version=") && !curl.contains(GOOD), "{curl}");
    let (_, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), Some(json!({"model": "openai/gpt-4o"}))).await;
    assert_eq!((v["ok"].as_bool(), v["model"].as_str()), (Some(true), Some("big-dep")), "{v}");
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].path.as_str(), calls[0].key.as_str()), ("/openai/deployments/mini-dep/chat/completions", GOOD));
    assert_eq!(calls[1].path, "/openai/deployments/big-dep/chat/completions");
    assert_eq!(calls[0].body["max_tokens"], 1);

    // Unsaved deployment list with a wrong key: the upstream's status and message, no secret.
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "azure", "key": deployments(WRONG)}))).await;
    assert_eq!((s, v["ok"].as_bool(), v["status"].as_u64()), (200, Some(false), Some(401)), "{v}");
    assert!(v["response"]["error"]["message"].as_str().unwrap().starts_with("Access denied due to invalid subscription key"), "{v}");
    assert!(!v.to_string().contains(WRONG), "{v}");

    // Resource credentials, through the `{resource}` template: a mapping, then the default model.
    let res = json!({"provider": "azure", "key": {"api_key": GOOD, "resource_name": "myres", "model_mappings": {"openai/gpt-4o": "prod-4o"}}});
    let (_, v) = g.mgmt("POST", "/api/v1/byok/test", Some(res)).await;
    assert_eq!((v["ok"].as_bool(), v["model"].as_str()), (Some(true), Some("prod-4o")), "{v}");
    let id = g.add_byok(json!({"provider": "azure", "key": {"api_key": GOOD, "resource_name": "other"}})).await;
    let (_, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((v["ok"].as_bool(), v["model"].as_str()), (Some(true), Some("gpt-4o-mini")), "{v}");
    let paths: Vec<String> = fake.calls().iter().skip(2).map(|c| c.path.clone()).collect();
    assert_eq!(paths, ["/r/myres/openai/deployments/prod-4o/chat/completions", "/r/other/openai/deployments/gpt-4o-mini/chat/completions"]);
    let wrong = json!({"provider": "azure", "key": {"api_key": WRONG, "resource_name": "myres"}});
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(wrong)).await;
    assert_eq!((s, v["ok"].as_bool(), v["status"].as_u64()), (200, Some(false), Some(401)), "{v}");
    assert!(!v.to_string().contains(WRONG), "{v}");
}

#[tokio::test]
async fn test_key_refuses_caller_urls_outside_the_allow_list_and_literal_refs() {
    // Accepts any key, so that it records the one it was sent.
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    // Loopback is reachable as the OpenAI base URL (operator config), not as a caller's URL.
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), ProviderSettings { base_url: Some(base.clone()) });
    })
    .await;
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
    assert_eq!(v["ok"], true, "{v}");
    // The upstream was sent the reference itself as the key: proof it was not resolved.
    let keys: Vec<String> = fake.calls().iter().map(|c| c.key.clone()).collect();
    assert_eq!(keys, ["env:KW_TEST_SHOULD_NOT_LEAK"]);
    let (_, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "openai", "key": "file:/etc/hostname"}))).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(fake.calls()[1].key, "file:/etc/hostname");
}

#[tokio::test]
async fn test_key_anthropic_and_every_openai_compatible_provider() {
    const GOOD: &str = "sk-ant-api03-good-key-0001";
    let anthropic = keyway_fakes::anthropic::start(FakeOptions { keys: [GOOD.to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
    let openai = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let family = ["openai", "mistral", "deepseek", "xai", "z-ai", "groq", "deepinfra", "perplexity", "moonshotai", "baseten", "fireworks", "together"];
    let (au, ou) = (anthropic.url(), format!("{}/v1", openai.url()));
    let g = Gateway::start(|c| {
        c.providers.insert("anthropic".into(), ProviderSettings { base_url: Some(au.clone()) });
        for p in family {
            c.providers.insert(p.into(), ProviderSettings { base_url: Some(ou.clone()) });
        }
    })
    .await;

    let id = g.add_byok(json!({"provider": "anthropic", "key": GOOD})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((s, v["ok"].as_bool(), v["status"].as_u64()), (200, Some(true), Some(200)), "{v}");
    assert_eq!(v["model"], "claude-haiku-4-5");
    let curl = v["request"].as_str().unwrap();
    assert!(curl.contains("/v1/messages") && curl.contains("anthropic-version: 2023-06-01") && !curl.contains(GOOD), "{curl}");
    let sent = &anthropic.calls()[0];
    assert_eq!((sent.key.as_str(), &sent.body["max_tokens"]), (GOOD, &json!(1)));
    let wrong = "sk-ant-api03-wrong-key-002";
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "anthropic", "key": wrong}))).await;
    assert_eq!((s, v["ok"].as_bool(), v["status"].as_u64()), (200, Some(false), Some(401)), "{v}");
    assert_eq!(v["response"]["error"]["type"], "authentication_error", "{v}");
    assert_eq!(v["response"]["error"]["message"], "invalid x-api-key", "{v}");
    assert!(!v.to_string().contains(wrong), "{v}");

    for (i, p) in family.into_iter().enumerate() {
        let key = format!("{p}-test-key-{i:04}");
        let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": p, "key": key}))).await;
        assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{p}: {v}");
        let model = v["model"].as_str().unwrap();
        assert_eq!(v["response"]["model"], model, "{p}");
        assert!(!v["request"].as_str().unwrap().contains(&key), "{p}: key masked");
        let calls = openai.calls();
        let sent = calls.last().unwrap();
        assert_eq!((sent.key.as_str(), sent.path.as_str(), &sent.body["model"], &sent.body["max_tokens"]), (key.as_str(), "/v1/chat/completions", &json!(model), &json!(1)), "{p}");
    }
    assert_eq!(openai.calls().len(), family.len());
}

/// A 200 that isn't an event stream, and one that stops before `[DONE]`, through the server:
/// before content the next key serves; after content the client gets a final error event.
#[tokio::test]
async fn streams_without_done_fall_back_before_content_and_end_with_an_error_after() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-operator-key").await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-user-key-0009"})).await;
    let body = json!({"model": "openai/gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hello"}]});

    fake.set_fault_for_key("sk-byok-user-key-0009", Fault::InvalidJson);
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.headers()["x-keyway-credential"], "system");
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"finish_reason\":\"stop\"") && text.trim_end().ends_with("[DONE]"), "{text}");
    assert_eq!(fake.calls().iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["sk-byok-user-key-0009", "sk-system-operator-key"]);

    fake.clear_faults();
    fake.set_fault(Fault::EndStreamEarly);
    let calls_before = fake.calls().len();
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let last = text.lines().rfind(|l| !l.is_empty()).unwrap_or("");
    assert!(last.starts_with("data: {\"error\"") && last.contains("ended before [DONE]"), "final SSE error event: {text}");
    assert!(!text.lines().any(|l| l == "data: [DONE]"), "{text}");
    assert_eq!(fake.calls().len(), calls_before + 1, "no silent retry after content was sent");
}

async fn anthropic_gateway(system: &str) -> (keyway_fakes::FakeServer, Gateway, String) {
    let fake = keyway_fakes::anthropic::start(FakeOptions::default()).await.unwrap();
    let url = fake.url();
    let g = Gateway::start(|c| {
        c.providers.insert("anthropic".into(), ProviderSettings { base_url: Some(url.clone()) });
        c.system_credentials.push(system_key("anthropic", system));
    })
    .await;
    let (key, _) = g.inference_key().await;
    (fake, g, key)
}

/// The generation as `GET /api/v1/generation` shows it (written just after the answer).
async fn generation(g: &Gateway, id: &str) -> Value {
    for _ in 0..200 {
        let (s, v) = g.mgmt("GET", &format!("/api/v1/generation?id={id}"), None).await;
        if s == 200 {
            return v["data"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("generation {id} was never recorded");
}

/// (event name, data) pairs of an Anthropic SSE body.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_owned();
        } else if let Some(d) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"));
            assert_eq!(v["type"], name.as_str(), "event name and data type agree: {text}");
            out.push((name.clone(), v));
        }
    }
    out
}

/// Every Anthropic-only field a Claude Code request carries, routing fields aside.
fn rich_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 4000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "top_k": 5,
        "service_tier": "auto",
        "metadata": {"user_id": "user-42"},
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "weather in Paris?", "cache_control": {"type": "ephemeral"}}]}],
        "provider": {"allow_fallbacks": true},
    })
}

#[tokio::test]
async fn native_anthropic_sends_the_client_body_and_returns_thinking_with_its_signature() {
    let (fake, g, key) = anthropic_gateway("sk-ant-system-native-01").await;
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).header("anthropic-beta", "interleaved-thinking-2025-05-14").json(&rich_request()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyway-provider"], "anthropic");
    let gen_id = r.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();

    // Upstream got the client's body as written: only the model id swapped and routing fields gone.
    let calls = fake.calls();
    let sent = &calls[0];
    let mut want = rich_request();
    want.as_object_mut().unwrap().remove("provider");
    want["model"] = sent.body["model"].clone();
    assert_eq!(sent.body, want);
    assert!(sent.body["model"].as_str().unwrap().starts_with("claude-sonnet-4"), "{}", sent.body["model"]);
    assert_eq!((sent.body["top_k"].clone(), sent.body["tools"][0]["cache_control"]["ttl"].clone()), (json!(5), json!("1h")));
    assert!(sent.headers.iter().any(|(k, v)| k == "anthropic-beta" && v == "interleaved-thinking-2025-05-14"), "{:?}", sent.headers);

    // The answer is Anthropic's own: the signed thinking block first, the upstream's id, model as asked.
    assert_eq!(v["id"], "msg_fake1", "{v}");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["content"][0]["type"], "thinking", "{v}");
    let thinking = v["content"][0]["thinking"].as_str().unwrap();
    assert_eq!(v["content"][0]["signature"], keyway_fakes::anthropic::signature(thinking));
    assert_eq!(v["content"][2]["type"], "tool_use", "{v}");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 7);
    assert!(v.get("provider").is_none() && v.get("choices").is_none() && v.get("system_fingerprint").is_none(), "{v}");

    // Usage and the finish reason are recorded as for a translated answer.
    let rec = generation(&g, &gen_id).await;
    assert_eq!(rec["finish_reason"], "tool_calls", "{rec}");
    assert_eq!(rec["provider_name"], "Anthropic", "{rec}");
    let u = &v["usage"];
    let prompt = u["input_tokens"].as_u64().unwrap() + 7 + 5;
    assert_eq!((rec["tokens_prompt"].as_u64(), rec["tokens_completion"].as_u64()), (Some(prompt), u["output_tokens"].as_u64()), "{rec}");
    assert!(rec["total_cost"].as_f64().unwrap() > 0.0, "{rec}");
}

#[tokio::test]
async fn native_anthropic_streams_thinking_deltas_and_a_thinking_tool_use_history_is_accepted() {
    let (fake, g, key) = anthropic_gateway("sk-ant-system-native-02").await;
    let mut body = rich_request();
    body["stream"] = json!(true);
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let gen_id = r.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let events = sse_events(&r.text().await.unwrap());
    assert_eq!(events.first().unwrap().1["message"]["model"], "claude-sonnet-4-5");
    assert_eq!(events.first().unwrap().1["message"]["id"], "msg_fake1");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(events.iter().filter(|(n, _)| n == "message_stop").count(), 1);
    // Rebuild the content blocks the way the SDKs do.
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_parts = String::new();
    for (name, e) in &events {
        match name.as_str() {
            "content_block_start" => blocks.push(e["content_block"].clone()),
            "content_block_delta" => {
                let b = blocks.last_mut().unwrap();
                let d = &e["delta"];
                match d["type"].as_str().unwrap() {
                    "thinking_delta" => b["thinking"] = json!(format!("{}{}", b["thinking"].as_str().unwrap(), d["thinking"].as_str().unwrap())),
                    "signature_delta" => b["signature"] = d["signature"].clone(),
                    "text_delta" => b["text"] = json!(format!("{}{}", b["text"].as_str().unwrap(), d["text"].as_str().unwrap())),
                    "input_json_delta" => json_parts.push_str(d["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" if blocks.last().unwrap()["type"] == "tool_use" => {
                blocks.last_mut().unwrap()["input"] = serde_json::from_str(&json_parts).unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(blocks.iter().map(|b| b["type"].as_str().unwrap()).collect::<Vec<_>>(), ["thinking", "text", "tool_use"]);
    let sig = blocks[0]["signature"].as_str().unwrap();
    assert_eq!(sig, keyway_fakes::anthropic::signature(blocks[0]["thinking"].as_str().unwrap()));
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    let rec = generation(&g, &gen_id).await;
    assert_eq!((rec["finish_reason"].as_str(), rec["streamed"].as_bool()), (Some("tool_calls"), Some(true)), "{rec}");
    assert_eq!(rec["tokens_completion"], delta.1["usage"]["output_tokens"], "{rec}");

    // The next turn: the assistant's blocks back (thinking first, signed), then the tool result.
    let mut next = rich_request();
    next["messages"] = json!([
        body["messages"][0],
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_fake1", "content": "18C, sunny", "cache_control": {"type": "ephemeral"}}]},
    ]);
    next["tool_choice"] = json!({"type": "none"});
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&next).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"][0]["type"], "thinking");
    assert_eq!(v["content"][1]["text"], "Echo: ", "{v}");
    let sent = &fake.calls()[1].body;
    assert_eq!(sent["messages"][1]["content"][0]["signature"], sig);
    assert_eq!(sent["messages"][2]["content"][0]["cache_control"]["type"], "ephemeral");

    // Without its thinking block that history is refused upstream (what translation used to cause).
    next["messages"][1]["content"].as_array_mut().unwrap().remove(0);
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&next).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert!(v["error"]["message"].as_str().unwrap().contains("must start with a thinking block"), "{v}");
}

#[tokio::test]
async fn native_anthropic_returns_stop_sequence_and_serves_server_tools() {
    let (fake, g, key) = anthropic_gateway("sk-ant-system-native-03").await;
    let mut body = msg("claude-sonnet-4-5");
    body["stop_sequences"] = json!(["claude"]);
    let v: Value = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!((v["stop_reason"].as_str(), v["stop_sequence"].as_str()), (Some("stop_sequence"), Some("claude")), "{v}");
    assert_eq!(v["content"][0]["text"], "Echo: hi ");
    body["stream"] = json!(true);
    let text = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap().text().await.unwrap();
    let delta = sse_events(&text).into_iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"], json!({"stop_reason": "stop_sequence", "stop_sequence": "claude"}));

    // A server tool only Anthropic runs: sent as is (it used to be refused with a 400).
    let mut body = msg("claude-sonnet-4-5");
    body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]);
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stop_reason"], "end_turn", "{v}");
    assert_eq!(fake.calls().last().unwrap().body["tools"], body["tools"]);
    // The next turn carries the server tool's call and result blocks back, untouched.
    let turn = json!({"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "keyway"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [{"type": "web_search_result", "url": "https://example.com", "title": "t", "encrypted_content": "abc"}]},
        {"type": "text", "text": "Found it.", "citations": null}]});
    body["messages"] = json!([body["messages"][0], turn, {"role": "user", "content": "thanks"}]);
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(fake.calls().last().unwrap().body["messages"][1], turn);
}

#[tokio::test]
async fn native_anthropic_only_requests_are_refused_by_other_providers() {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", "sk-openai-system-0003"));
    })
    .await;
    let (key, _) = g.inference_key().await;
    // Thinking and top_k are dropped for an OpenAI upstream; the request is still served.
    let mut body = rich_request();
    body["model"] = json!("openai/gpt-4o-mini");
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    let sent = &fake.calls()[0].body;
    assert!(sent.get("top_k").is_none() && sent.get("thinking").is_none() && sent["tools"][0]["type"] == "function", "{sent}");
    // A server tool has no OpenAI form: an Anthropic-shaped 400, and nothing sent upstream.
    let mut body = msg("openai/gpt-4o-mini");
    body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("only Anthropic can serve"), "{v}");
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn native_anthropic_streams_fall_back_before_content_and_end_with_an_error_event_after() {
    let (fake, g, key) = anthropic_gateway("sk-ant-system-native-05").await;
    g.add_byok(json!({"provider": "anthropic", "key": "sk-ant-byok-native-0005"})).await;
    let mut body = rich_request();
    body["stream"] = json!(true);

    // An error event right after message_start: nothing with content was sent, the next key serves.
    fake.set_fault_for_key("sk-ant-byok-native-0005", Fault::ErrorEventAfter200);
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!((r.headers()["x-keyway-credential"].to_str().unwrap(), r.headers()["x-keyway-attempts"].to_str().unwrap()), ("system", "2"));
    let events = sse_events(&r.text().await.unwrap());
    assert_eq!(events.iter().filter(|(n, _)| n == "message_start").count(), 1, "{events:?}");
    assert!(!events.iter().any(|(n, _)| n == "error"), "{events:?}");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(fake.calls().iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["sk-ant-byok-native-0005", "sk-ant-system-native-05"]);

    // Cut after content: no silent retry, a final `error` event in Anthropic's shape.
    fake.clear_faults();
    fake.set_fault(Fault::EndStreamEarly);
    let before = fake.calls().len();
    let text = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap().text().await.unwrap();
    let events = sse_events(&text);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "error", "{text}");
    assert_eq!(last["error"]["type"], "api_error", "{text}");
    assert!(events.iter().any(|(_, e)| e["delta"]["type"] == "thinking_delta"), "{text}");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{text}");
    assert_eq!(fake.calls().len(), before + 1);
}

#[tokio::test]
async fn native_anthropic_on_vertex_sends_the_client_body_to_raw_predict() {
    const PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pem");
    const PUBLIC_PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pub.pem");
    const EMAIL: &str = "keyway-native@proj-native.iam.gserviceaccount.com";
    let vertex = keyway_fakes::vertex::start(FakeOptions::default()).await.unwrap();
    vertex.auth.register(EMAIL, PUBLIC_PEM, None, "proj-native");
    let (vt, allowed) = (vertex.base_template(), vertex.url().trim_start_matches("http://").to_owned());
    let g = Gateway::start(|c| {
        c.providers.insert("google-vertex".into(), ProviderSettings { base_url: Some(vt.clone()) });
        c.security.allowed_upstream_hosts.push(allowed.clone());
    })
    .await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "google-vertex", "key": {"type": "service_account", "project_id": "proj-native", "private_key_id": "kid",
        "private_key": PEM, "client_email": EMAIL, "token_uri": vertex.token_url(), "location": "us-east5"}}))
        .await;
    let mut body = rich_request();
    body["model"] = json!("anthropic/claude-sonnet-4.5");
    body["provider"] = json!({"only": ["google-vertex"]});
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).header("anthropic-beta", "context-1m-2025-08-07").json(&body).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-keyway-provider"].to_str().unwrap()), (200, "google-vertex"));
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_vrtx_") && v.get("choices").is_none(), "{v}");
    assert_eq!((v["model"].as_str(), v["stop_reason"].as_str()), (Some("anthropic/claude-sonnet-4.5"), Some("tool_use")), "{v}");
    let calls = vertex.server.calls();
    let sent = calls.last().unwrap();
    assert!(sent.path.ends_with(":rawPredict"), "{}", sent.path);
    let mut want = body.clone();
    let w = want.as_object_mut().unwrap();
    w.remove("model");
    w.remove("provider");
    w.insert("anthropic_version".into(), json!("vertex-2023-10-16"));
    assert_eq!(sent.body, want);
    assert!(sent.headers.iter().any(|(k, v)| k == "anthropic-beta" && v == "context-1m-2025-08-07"), "{:?}", sent.headers);

    body["stream"] = json!(true);
    let r = g.http.post(g.url("/v1/messages")).header("x-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.unwrap());
    assert!(events[0].1["message"]["id"].as_str().unwrap().starts_with("msg_vrtx_"), "{events:?}");
    assert_eq!(events[0].1["message"]["model"], "anthropic/claude-sonnet-4.5");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert!(events.iter().any(|(_, e)| e["delta"]["type"] == "input_json_delta"), "{events:?}");
    assert!(vertex.server.calls().last().unwrap().path.ends_with(":streamRawPredict"));
}
