//! The OpenAI-compatible adapter against the OpenAI fake, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use harness::*;
use keyway_core::{Credential, ProviderSlug};
use keyway_fakes::openai;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::{FakeServer, Fault};
use keyway_providers::error::TimeoutKind;
use keyway_providers::{ProviderError, Providers, StreamEvent};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-proj-test-key-00000001";
const SLUG: &str = "openai/gpt-4o-mini";

async fn setup(options: FakeOptions) -> (FakeServer, Providers, Credential) {
    let fake = openai::start(FakeOptions { keys: [KEY.to_owned()].into(), ..options }).await.unwrap();
    let providers = providers(ProviderSlug::OpenAi, format!("{}/v1", fake.url()));
    (fake, providers, api_key(KEY))
}

fn hello(stream: bool) -> Value {
    json!({"model": SLUG, "stream": stream, "seed": 9, "logit_bias": {"50256": -100}, "vendor_extension": [1, 2],
           "messages": [{"role": "user", "content": "hello there"}]})
}

async fn error_of(p: &Providers, cred: &Credential, body: Value) -> ProviderError {
    match chat(p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, cred), body).await {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

#[tokio::test]
async fn chat_round_trip_passes_unknown_fields_through() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let (body, usage) = complete(chat(&p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred), hello(false)).await.unwrap());
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(usage.unwrap().completion_tokens, 3);
    let calls = fake.calls();
    assert_eq!((calls[0].path.as_str(), calls[0].key.as_str()), ("/v1/chat/completions", KEY));
    let mut expected = hello(false);
    expected["model"] = json!("gpt-4o-mini");
    assert_eq!(calls[0].body, expected);
}

#[tokio::test]
async fn other_members_of_the_family_share_the_adapter() {
    let fake = openai::start(FakeOptions::default()).await.unwrap();
    let p = providers(ProviderSlug::Mistral, format!("{}/v1", fake.url()));
    let cred = api_key("mistral-key");
    let (body, _) = complete(chat(&p, &call(ProviderSlug::Mistral, "mistral-small-latest", "mistral/mistral-small", &cred), hello(false)).await.unwrap());
    assert_eq!(body["model"], "mistral-small-latest");
    assert_eq!(fake.calls()[0].key, "mistral-key");
}

#[tokio::test]
async fn stream_round_trip_asks_for_usage() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let items = collect(chat(&p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred), hello(true)).await.unwrap()).await;
    assert_eq!(stream_text(&items), "Echo: hello there");
    assert_eq!(finish_reason(&items).as_deref(), Some("stop"));
    let chunks = chunks(&items);
    assert!(!chunks[0].1, "the role chunk carries no content");
    assert!(stream_usage(&items).is_some_and(|u| u.completion_tokens == 3));
    let sent = &fake.calls()[0].body;
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent["vendor_extension"], json!([1, 2]));
}

#[tokio::test]
async fn tools_round_trip() {
    let (_fake, p, cred) = setup(FakeOptions::default()).await;
    let c = call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred);
    let body = json!({"messages": [{"role": "user", "content": "weather?"}],
                      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let (resp, _) = complete(chat(&p, &c, body.clone()).await.unwrap());
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(resp["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let items = collect(chat(&p, &c, streamed).await.unwrap()).await;
    let calls = stream_tool_calls(&items);
    assert_eq!((calls[0].0.as_str(), calls[0].1.as_str()), ("call_fake1", "get_weather"));
    assert_eq!(calls[0].2, "{\"city\":\"Paris\"}");
    assert_eq!(finish_reason(&items).as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn embeddings() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let c = call(ProviderSlug::OpenAi, "text-embedding-3-small", "openai/text-embedding-3-small", &cred);
    let resp = p.get(ProviderSlug::OpenAi).unwrap().embeddings(&c, &request(json!({"input": "one two three", "dimensions": 8}))).await.unwrap();
    assert_eq!(resp.body["data"][0]["object"], "embedding");
    assert_eq!(resp.usage.map(|u| u.prompt_tokens), Some(3));
    let sent = &fake.calls()[0];
    assert_eq!((sent.path.as_str(), &sent.body["model"], &sent.body["dimensions"]), ("/v1/embeddings", &json!("text-embedding-3-small"), &json!(8)));
}

#[tokio::test]
async fn upstream_error_classes() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    fake.fail_next(Fault::RateLimit { retry_after_secs: 2 });
    match error_of(&p, &cred, hello(false)).await {
        ProviderError::RateLimited { status: 429, retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(2))),
        other => panic!("{other:?}"),
    }
    let e = error_of(&p, &api_key("sk-wrong-key-555555"), hello(false)).await;
    assert!(matches!(e, ProviderError::Auth { status: 401, .. }), "{e:?}");
    assert!(!e.to_string().contains("sk-wrong-key-555555"));
    fake.fail_next(Fault::BadRequest);
    let e = error_of(&p, &cred, hello(false)).await;
    assert!(matches!(e, ProviderError::BadRequest { status: 400, .. }) && !e.is_retryable(), "{e:?}");
    fake.fail_next(Fault::ServerError);
    assert!(matches!(error_of(&p, &cred, hello(true)).await, ProviderError::Upstream5xx { status: 500, .. }));
    fake.fail_next(Fault::InvalidJson);
    assert!(matches!(error_of(&p, &cred, hello(false)).await, ProviderError::Protocol(_)));
    let azure = Credential::parse(ProviderSlug::Azure, &json!({"api_key": "k", "resource_name": "r"})).unwrap();
    assert!(matches!(error_of(&p, &azure, hello(false)).await, ProviderError::Unsupported(_)));

    fake.fail_next(Fault::ErrorEventAfter200);
    let items = collect(chat(&p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred), hello(true)).await.unwrap()).await;
    assert!(matches!(items.first(), Some(Err(ProviderError::RateLimited { .. }))), "{items:?}");

    fake.fail_next(Fault::CutStream);
    let items = collect(chat(&p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred), hello(true)).await.unwrap()).await;
    let err_at = items.iter().position(Result::is_err).expect("an error");
    assert!(items[..err_at].iter().any(|i| matches!(i, Ok(StreamEvent::Chunk { content: true, .. }))));
    assert!(matches!(items[err_at], Err(ProviderError::Protocol(_))));
}

#[tokio::test]
async fn slow_first_byte_times_out() {
    let fake = openai::start(FakeOptions::default()).await.unwrap();
    let p = providers_with(ProviderSlug::OpenAi, format!("{}/v1", fake.url()), short_first_byte());
    fake.set_fault(Fault::SlowFirstByte(Duration::from_secs(5)));
    assert_eq!(error_of(&p, &api_key(KEY), hello(true)).await, ProviderError::Timeout(TimeoutKind::FirstByte));
}

#[tokio::test]
async fn streams_chunk_by_chunk() {
    let delay = Duration::from_millis(200);
    let (_fake, p, cred) = setup(FakeOptions { chunk_delay: delay, chunks: 4, ..FakeOptions::default() }).await;
    let items = collect_timed(chat(&p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred), hello(true)).await.unwrap()).await;
    // After the first text chunk: 3 more, the finish chunk, the usage chunk.
    assert_streams_incrementally(&items, delay, 5);
}
