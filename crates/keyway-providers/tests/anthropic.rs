//! The Anthropic adapter against the Anthropic fake, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use harness::*;
use keyway_core::{Credential, ProviderSlug};
use keyway_fakes::anthropic;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::{FakeServer, Fault};
use keyway_providers::error::TimeoutKind;
use keyway_providers::{ProviderError, Providers, StreamEvent};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-ant-api03-test-key-0001";
const MODEL: &str = "claude-haiku-4-5";
const SLUG: &str = "anthropic/claude-haiku-4.5";

async fn setup(options: FakeOptions) -> (FakeServer, Providers, Credential) {
    let fake = anthropic::start(FakeOptions { keys: [KEY.to_owned()].into(), ..options }).await.unwrap();
    let providers = providers(ProviderSlug::Anthropic, fake.url());
    (fake, providers, api_key(KEY))
}

fn hello(stream: bool) -> Value {
    json!({"model": SLUG, "stream": stream, "max_tokens": 50, "n": 1, "seed": 3,
           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world"}]})
}

fn weather(stream: bool) -> Value {
    json!({"model": SLUG, "stream": stream,
           "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
           "messages": [{"role": "user", "content": "Weather in Paris?"}]})
}

async fn error_of(p: &Providers, cred: &Credential, body: Value) -> ProviderError {
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, cred);
    match chat(p, &c, body).await {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

/// The first item of a stream that opened with 200.
async fn first_stream_item(p: &Providers, cred: &Credential) -> Result<StreamEvent, ProviderError> {
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, cred);
    let items = collect(chat(p, &c, hello(true)).await.unwrap()).await;
    items.into_iter().next().expect("at least one item")
}

#[tokio::test]
async fn chat_round_trip() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let (body, usage) = complete(chat(&p, &call(ProviderSlug::Anthropic, MODEL, SLUG, &cred), hello(false)).await.unwrap());
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello world");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // "Be brief." + "hello world" = 4 words in; "Echo: hello world" = 3 out.
    let usage = usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens), (4, 3, 0));
    assert_eq!(body["usage"]["total_tokens"], 7);

    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].key, KEY);
    let header = |n: &str| calls[0].headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("authorization"), None);
    assert_eq!(calls[0].body, json!({"model": MODEL, "max_tokens": 50, "system": "Be brief.",
                                     "messages": [{"role": "user", "content": "hello world"}]}));
}

#[tokio::test]
async fn golden_requests_reach_the_wire_exactly_and_the_fake_accepts_them() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let path = format!("{}/tests/testdata/anthropic/requests.json", env!("CARGO_MANIFEST_DIR"));
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in cases {
        fake.clear_calls();
        let model = case["model"].as_str().unwrap();
        let c = call(ProviderSlug::Anthropic, model, SLUG, &cred);
        let resp = chat(&p, &c, case["openai"].clone()).await;
        let resp = resp.unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        if let keyway_providers::ChatResponse::Stream(_) = resp {
            let items = collect(resp).await;
            assert!(items.iter().all(Result::is_ok), "{}", case["name"]);
        }
        assert_eq!(fake.calls()[0].body, case["anthropic"], "case: {}", case["name"]);
    }
}

#[tokio::test]
async fn stream_round_trip() {
    let (_fake, p, cred) = setup(FakeOptions::default()).await;
    let items = collect(chat(&p, &call(ProviderSlug::Anthropic, MODEL, SLUG, &cred), hello(true)).await.unwrap()).await;
    let chunks = chunks(&items);
    // The role chunk first, without content; then text chunks; all OpenAI chunk objects.
    assert_eq!(chunks[0].0["choices"][0]["delta"]["role"], "assistant");
    assert!(!chunks[0].1);
    assert!(chunks.iter().all(|(c, _)| c["object"] == "chat.completion.chunk" && c["model"] == MODEL));
    assert!(chunks.iter().filter(|(c, _)| c.pointer("/choices/0/delta/content").and_then(Value::as_str).is_some_and(|t| !t.is_empty())).all(|(_, content)| *content));
    assert_eq!(stream_text(&items), "Echo: hello world");
    assert_eq!(finish_reason(&items).as_deref(), Some("stop"));
    let u = stream_usage(&items).unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (4, 3));
    // The last chunk carries usage in OpenAI's shape, after the finish chunk.
    let last = &chunks.last().unwrap().0;
    assert_eq!(last["usage"]["prompt_tokens"], 4);
    assert_eq!(last["choices"], json!([]));
}

#[tokio::test]
async fn tools_round_trip() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, &cred);
    let (body, usage) = complete(chat(&p, &c, weather(false)).await.unwrap());
    let m = &body["choices"][0]["message"];
    assert_eq!(m["content"], "Calling get_weather.");
    assert_eq!(m["tool_calls"], json!([{"id": "toolu_fake1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]));
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(usage.unwrap().completion_tokens, 2 + 10);
    assert_eq!(fake.calls()[0].body["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");

    let items = collect(chat(&p, &c, weather(true)).await.unwrap()).await;
    assert_eq!(stream_text(&items), "Calling get_weather.");
    let calls = stream_tool_calls(&items);
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].0.as_str(), calls[0].1.as_str()), ("toolu_fake1", "get_weather"));
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), json!({"city": "Paris"}));
    assert_eq!(finish_reason(&items).as_deref(), Some("tool_calls"));

    // A second turn with the tool's answer is valid for the real API's pairing rules.
    let mut next = weather(false);
    next["messages"].as_array_mut().unwrap().extend([m.clone(), json!({"role": "tool", "tool_call_id": "toolu_fake1", "content": "18C"})]);
    next["tool_choice"] = json!("none");
    let (body, _) = complete(chat(&p, &c, next).await.unwrap());
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn cache_usage_is_counted_into_prompt_tokens() {
    let (_fake, p, cred) = setup(FakeOptions::default()).await;
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, &cred);
    let body = json!({"model": SLUG, "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long shared context", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "hi"}]});
    let (resp, usage) = complete(chat(&p, &c, body.clone()).await.unwrap());
    let u = usage.unwrap();
    // 4 words uncached input + 7 read + 5 written.
    assert_eq!((u.prompt_tokens, u.cached_tokens, u.cache_write_tokens), (4 + 7 + 5, 7, 5));
    assert_eq!(resp["usage"]["prompt_tokens_details"]["cached_tokens"], 7);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let items = collect(chat(&p, &c, streamed).await.unwrap()).await;
    assert_eq!(stream_usage(&items), Some(u));
}

#[tokio::test]
async fn upstream_error_classes() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;

    fake.fail_next(Fault::RateLimit { retry_after_secs: 7 });
    match error_of(&p, &cred, hello(false)).await {
        ProviderError::RateLimited { status: 429, retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    fake.fail_next(Fault::Unauthorized);
    assert!(matches!(error_of(&p, &cred, hello(false)).await, ProviderError::Auth { status: 401, .. }));
    let wrong = api_key("sk-ant-wrong-key-xyz");
    let e = error_of(&p, &wrong, hello(false)).await;
    assert!(matches!(e, ProviderError::Auth { status: 401, .. }), "{e:?}");
    assert!(!e.to_string().contains("sk-ant-wrong-key-xyz"));

    fake.fail_next(Fault::BadRequest);
    assert!(matches!(error_of(&p, &cred, hello(false)).await, ProviderError::BadRequest { status: 400, .. }));
    // A conversation the real API refuses (it must open with a user turn) is a 400 too.
    let e = error_of(&p, &cred, json!({"model": SLUG, "messages": [{"role": "assistant", "content": "first"}]})).await;
    assert!(matches!(e, ProviderError::BadRequest { status: 400, .. }), "{e:?}");

    fake.fail_next(Fault::ServerError);
    assert!(matches!(error_of(&p, &cred, hello(false)).await, ProviderError::Upstream5xx { status: 529, .. }));
    fake.fail_next(Fault::ServerError);
    assert!(matches!(error_of(&p, &cred, hello(true)).await, ProviderError::Upstream5xx { status: 529, .. }));

    fake.fail_next(Fault::InvalidJson);
    assert!(matches!(error_of(&p, &cred, hello(false)).await, ProviderError::Protocol(_)));

    // A key that isn't an API key can't be used.
    let azure = Credential::parse(ProviderSlug::Azure, &json!({"api_key": "k", "resource_name": "r"})).unwrap();
    assert!(matches!(error_of(&p, &azure, hello(false)).await, ProviderError::Unsupported(_)));
}

#[tokio::test]
async fn internal_server_error_is_upstream_5xx() {
    let fake = anthropic::start_with(FakeOptions::default(), http::StatusCode::INTERNAL_SERVER_ERROR).await.unwrap();
    let p = providers(ProviderSlug::Anthropic, fake.url());
    fake.fail_next(Fault::ServerError);
    assert!(matches!(error_of(&p, &api_key(KEY), hello(false)).await, ProviderError::Upstream5xx { status: 500, .. }));
}

#[tokio::test]
async fn slow_first_byte_times_out() {
    let fake = anthropic::start(FakeOptions::default()).await.unwrap();
    let p = providers_with(ProviderSlug::Anthropic, fake.url(), short_first_byte());
    fake.set_fault(Fault::SlowFirstByte(Duration::from_secs(5)));
    let started = std::time::Instant::now();
    let e = error_of(&p, &api_key(KEY), hello(true)).await;
    assert_eq!(e, ProviderError::Timeout(TimeoutKind::FirstByte));
    assert!(started.elapsed() < Duration::from_secs(4), "gave up only after {:?}", started.elapsed());
}

#[tokio::test]
async fn stream_faults() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;

    // An error event after the 200 and message_start, before any content: the first item is the error.
    fake.fail_next(Fault::ErrorEventAfter200);
    let first = first_stream_item(&p, &cred).await;
    assert!(matches!(first, Err(ProviderError::Upstream5xx { status: 529, .. })), "{first:?}");

    // A cut stream: some chunks, then an error, and nothing after it.
    fake.fail_next(Fault::CutStream);
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, &cred);
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    let err_at = items.iter().position(Result::is_err).expect("an error");
    assert_eq!(err_at, items.len() - 1);
    assert!(items[..err_at].iter().any(|i| matches!(i, Ok(StreamEvent::Chunk { content: true, .. }))));
    assert!(matches!(items[err_at], Err(ProviderError::Protocol(_))));

    // A 200 whose body isn't an event stream ends without message_stop: a protocol error.
    fake.fail_next(Fault::InvalidJson);
    assert!(matches!(first_stream_item(&p, &cred).await, Err(ProviderError::Protocol(_))));
}

#[tokio::test]
async fn forbidden_closed_port_early_end_and_idle_stall() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    // 403 permission_error: Auth, with Anthropic's own body kept.
    fake.fail_next(Fault::Forbidden);
    let e = error_of(&p, &cred, hello(false)).await;
    assert!(matches!(&e, ProviderError::Auth { status: 403, .. }), "{e:?}");
    let body: Value = serde_json::from_str(e.body().unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "permission_error");
    let e = error_of(&p, &api_key("sk-ant-wrong-key-xyz"), hello(false)).await;
    assert!(e.body().unwrap().contains("authentication_error"), "{e:?}");

    // A body that ends cleanly before message_stop: content, then a protocol error.
    fake.fail_next(Fault::EndStreamEarly);
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, &cred);
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    assert!(matches!(error_after_content(&items), ProviderError::Protocol(_)), "{items:?}");

    let closed = providers(ProviderSlug::Anthropic, closed_port_url());
    let e = error_of(&closed, &cred, hello(true)).await;
    assert!(matches!(e, ProviderError::Connect(_)) && e.is_retryable(), "{e:?}");

    let idle = providers_with(ProviderSlug::Anthropic, fake.url(), short_idle());
    assert_idle_timeout_mid_stream(&fake, &idle, &c, hello(true)).await;
}

#[tokio::test]
async fn embeddings_are_unsupported_without_a_call() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, &cred);
    let e = p.get(ProviderSlug::Anthropic).unwrap().embeddings(&c, &request(json!({"input": "x"}))).await.unwrap_err();
    // Unsupported here, not a bad request: the attempt loop moves on to a provider with embeddings.
    assert!(matches!(e, ProviderError::Unsupported(_)) && e.is_retryable() && e.status() == 400, "{e:?}");
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn streams_chunk_by_chunk() {
    let delay = Duration::from_millis(200);
    let (_fake, p, cred) = setup(FakeOptions { chunk_delay: delay, chunks: 4, ..FakeOptions::default() }).await;
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, &cred);
    let items = collect_timed(chat(&p, &c, hello(true)).await.unwrap()).await;
    assert_eq!(stream_text(&items.iter().map(|(_, i)| i.clone()).collect::<Vec<_>>()), "Echo: hello world");
    // After the first text delta: 3 more deltas, content_block_stop, message_delta, message_stop.
    assert_streams_incrementally(&items, delay, 6);
}

#[tokio::test]
async fn preview_masks_the_key() {
    let (_fake, p, cred) = setup(FakeOptions::default()).await;
    let c = call(ProviderSlug::Anthropic, MODEL, SLUG, &cred);
    let adapter = p.get(ProviderSlug::Anthropic).unwrap();
    let preview = adapter.preview_chat(&c, &request(hello(false))).await.unwrap();
    assert!(preview.url.ends_with("/v1/messages"));
    let curl = preview.to_curl();
    assert!(!curl.contains(KEY), "{curl}");
    assert!(curl.contains("x-api-key: sk-...0001"), "{curl}");
    assert!(curl.contains("anthropic-version: 2023-06-01"));
    assert_eq!(adapter.test_model(), "claude-haiku-4-5");
}

#[tokio::test]
async fn fake_checks_auth_and_version_like_the_real_api() {
    let fake = anthropic::start(FakeOptions { keys: [KEY.to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/messages", fake.url());
    let body = json!({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let send = |req: reqwest::RequestBuilder| {
        let body = body.clone();
        async move {
            let r = req.json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, err) = send(http.post(&url).bearer_auth(KEY).header("anthropic-version", "2023-06-01")).await;
    assert_eq!((status, err["error"]["type"].as_str()), (401, Some("authentication_error")));
    let (status, err) = send(http.post(&url).header("x-api-key", KEY)).await;
    assert_eq!((status, err["type"].as_str(), err["error"]["type"].as_str()), (400, Some("error"), Some("invalid_request_error")));
    let (status, ok) = send(http.post(&url).header("x-api-key", KEY).header("anthropic-version", "2023-06-01")).await;
    assert_eq!((status, ok["type"].as_str()), (200, Some("message")));
    // Unknown top-level fields are refused, as by the real API.
    let r = http
        .post(&url)
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": MODEL, "max_tokens": 5, "n": 1, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
