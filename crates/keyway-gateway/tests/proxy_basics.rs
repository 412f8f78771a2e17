//! The inference path end to end over real HTTP: Keyway in front of the OpenAI fake.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::Fault;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn system_credential_serves_and_headers_say_so() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-operator-key").await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(v["provider"], "OpenAI");
    assert_eq!(v["model"], "openai/gpt-4o-mini");
    assert!(v["id"].as_str().unwrap().starts_with("gen-"));
    assert_eq!(h["x-keyway-provider"], "openai");
    assert_eq!(h["x-keyway-credential"], "system");
    assert_eq!(h["x-keyway-byok"], "false");
    assert_eq!(h["x-keyway-generation-id"].to_str().unwrap(), v["id"].as_str().unwrap());
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].key, "sk-system-operator-key");
    assert_eq!(calls[0].body["model"], "gpt-4o-mini", "catalog id sent upstream");
}

#[tokio::test]
async fn byok_first_then_system_on_429_and_routing_fields_never_forwarded() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-operator-key").await;
    let byok = g.add_byok(json!({"provider": "openai", "key": "sk-byok-user-key-0001"})).await;
    let mut body = chat("openai/gpt-4o-mini");
    body["provider"] = json!({"order": ["openai"], "allow_fallbacks": true, "quantizations": ["fp8"]});
    body["custom_field"] = json!({"kept": true});
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), byok);
    assert_eq!(h["x-keyway-byok"], "true");
    assert!(h["x-keyway-ignored"].to_str().unwrap().contains("quantizations"));
    let sent = &fake.calls()[0].body;
    assert!(sent.get("provider").is_none(), "routing options are not forwarded");
    assert_eq!(sent["custom_field"], json!({"kept": true}), "unknown fields pass through");

    fake.set_fault_for_key("sk-byok-user-key-0001", Fault::RateLimit { retry_after_secs: 30 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], "system");
    assert_eq!(h["x-keyway-attempts"], "2");
    let (_, b, _) = g.req("GET", &format!("/api/v1/byok/{byok}"), Some(MGMT), None).await;
    assert_eq!(b["data"]["health"]["status"], "cooling_down", "{b}");
}

#[tokio::test]
async fn bad_request_is_not_retried_and_errors_are_openai_shaped() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-operator-key").await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-user-key-0002"})).await;
    fake.set_fault(Fault::BadRequest);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_error(s, &v, 400);
    assert_eq!(h["x-keyway-attempts"], "1");
    assert_eq!(fake.calls().len(), 1, "a 400 is never retried");
    assert!(v["error"].get("type").is_some() && v["error"].get("code").is_some());

    for (body, want) in [
        (json!({"messages": [{"role": "user", "content": "x"}]}), 400),
        (json!({"model": 5, "messages": []}), 400),
        (json!({"model": "openai/gpt-4o-mini", "messages": []}), 400),
        (json!({"model": "nobody/unknown", "messages": [{"role": "user", "content": "x"}]}), 400),
        (json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "provider": {"order": "openai"}}), 400),
    ] {
        let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
        assert_error(s, &v, want);
        assert!(v["error"]["type"].is_string(), "{v}");
    }
}

/// The client's body crosses the gateway as its text (split at the top level only): a
/// duplicated key counts once (the last, as a parser keeps it), numbers keep their spelling, and
/// what the gateway doesn't parse still gets a clear OpenAI-shaped error.
#[tokio::test]
async fn the_client_body_goes_upstream_as_written() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-operator-key").await;
    let send = |body: &'static str| {
        let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).header("content-type", "application/json").body(body);
        async move {
            let resp = r.send().await.unwrap();
            let s = resp.status().as_u16();
            (s, serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap_or(Value::Null))
        }
    };
    let (s, v) = send(r#"{"model":"openai/gpt-4o-mini","seed":3,"messages":[{"role":"user","content":"hello there"}],"seed":4,"temperature":1.10,"provider":{"order":["openai"]},"route":"fallback"}"#).await;
    assert_eq!(s, 200, "{v}");
    let sent = &fake.calls()[0].body;
    assert_eq!(sent["seed"], 4, "the last copy of a duplicated key");
    assert_eq!(sent["temperature"], 1.1);
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert!(sent.get("provider").is_none() && sent.get("route").is_none(), "routing fields never go upstream: {sent}");
    for (body, want) in [
        (r#"{"model":"openai/gpt-4o-mini","messages":"hi"}"#, "`messages` must be a non-empty list"),
        (r#"{"model":"openai/gpt-4o-mini","messages":[ ]}"#, "`messages` must be a non-empty list"),
        (r#"{"model":"openai/gpt-4o-mini","messages":[{}],"stream":"yes"}"#, "`stream` must be true or false"),
        (r#"{"model":"openai/gpt-4o-mini","messages":[{}],"user":7}"#, "`user` must be a string"),
        (r#"{"model":"openai/gpt-4o-mini","messages":[{}],"provider":{"order":"openai"}}"#, "provider.order"),
        (r#"{"model":"openai/gpt-4o-mini","messages":[{}]"#, "not valid JSON"),
        // Split over, then refused when the gateway parses the routing field it must act on.
        (r#"{"model":"openai/gpt-4o-mini","messages":[{}],"provider":{"order":["\ud800"]}}"#, "provider"),
        (r#"[{"model":"openai/gpt-4o-mini"}]"#, "wrong shape"),
    ] {
        let (s, v) = send(body).await;
        assert_error(s, &v, 400);
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    assert_eq!(fake.calls().len(), 1, "refused bodies never go upstream");
}

#[tokio::test]
async fn stream_arrives_chunk_by_chunk() {
    let (fake, g, key) = openai_gateway(FakeOptions { chunk_delay: Duration::from_millis(250), chunks: 4, ..FakeOptions::default() }, "sk-system-operator-key").await;
    let mut body = chat("openai/gpt-4o-mini");
    body["stream"] = json!(true);
    let t0 = Instant::now();
    let mut resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut first_content_at = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if first_content_at.is_none() && text.contains("\"content\":\"Echo") {
            first_content_at = Some(t0.elapsed());
        }
    }
    let total = t0.elapsed();
    let first = first_content_at.expect("content arrived");
    // 6+ events 250 ms apart: the first content must arrive well before the stream ends.
    assert!(total - first >= Duration::from_millis(600), "first content at {first:?}, end at {total:?}: buffered?");
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let joined: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(joined, "Echo: hello there");
    assert_eq!(fake.calls()[0].body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn stream_error_before_content_falls_back_and_after_content_ends_with_error_event() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-operator-key").await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-user-key-0003"})).await;
    let mut body = chat("openai/gpt-4o-mini");
    body["stream"] = json!(true);

    fake.set_fault_for_key("sk-byok-user-key-0003", Fault::ErrorEventAfter200);
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.headers()["x-keyway-credential"], "system");
    let text = resp.text().await.unwrap();
    assert!(text.contains("Echo") && text.trim_end().ends_with("[DONE]"), "{text}");

    fake.clear_faults();
    fake.set_fault(Fault::CutStream);
    let calls_before = fake.calls().len();
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"error\""), "final SSE error event: {text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(fake.calls().len(), calls_before + 1, "no silent retry after content was sent");
}

/// Every chunk carries Keyway's generation id, the gateway's model name and the provider, the
/// choices as the upstream wrote them; the usage-only chunk Keyway asks for upstream reaches
/// the client only when the client asked for it too.
#[tokio::test]
async fn stream_chunks_are_rewritten_and_the_usage_chunk_passes_only_when_asked() {
    let (_fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-operator-key").await;
    for asked in [false, true] {
        let mut body = chat("openai/gpt-4o-mini");
        body["stream"] = json!(true);
        if asked {
            body["stream_options"] = json!({"include_usage": true});
        }
        let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let gen_id = resp.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
        let text = resp.text().await.unwrap();
        let chunks: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect();
        assert!(chunks.len() >= 3, "{text}");
        for c in &chunks {
            assert_eq!((c["id"].as_str(), c["model"].as_str(), c["provider"].as_str()), (Some(gen_id.as_str()), Some("openai/gpt-4o-mini"), Some("OpenAI")), "{c}");
            assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        }
        let usage_only: Vec<&Value> = chunks.iter().filter(|c| c["choices"].as_array().is_some_and(Vec::is_empty) && c.get("usage").is_some()).collect();
        assert_eq!(usage_only.len(), usize::from(asked), "{text}");
        if let Some(u) = usage_only.first() {
            assert!(u["usage"]["total_tokens"].as_u64().unwrap() > 0, "{u}");
        }
        let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
        assert_eq!(finish, ["stop"], "{text}");
        let joined: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(joined, "Echo: hello there");
    }
}
