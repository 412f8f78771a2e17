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
    assert_eq!(resp.body.clone().into_value()["data"][0]["object"], "embedding");
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
async fn a_stream_that_ends_without_done_is_not_a_success() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    let c = call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred);
    // Half the chunks, then a clean end of the body: no [DONE], no HTTP-level error.
    fake.fail_next(Fault::EndStreamEarly);
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    let e = error_after_content(&items);
    assert!(matches!(e, ProviderError::Protocol(m) if m.contains("[DONE]")), "{e:?}");
    assert!(finish_reason(&items[..items.len() - 1]).is_none(), "cut before the choice finished");
    // A 200 whose body is not an event stream at all: an error before any content (falls back).
    fake.fail_next(Fault::InvalidJson);
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    assert!(matches!(items.as_slice(), [Err(ProviderError::Protocol(_))]), "{items:?}");
    // The complete stream still ends cleanly, with no error item.
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    // Perplexity never sends [DONE]: a stream whose choice finished (and usage came) is whole.
    fake.fail_next(Fault::NoDoneMarker);
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert_eq!((stream_text(&items).as_str(), finish_reason(&items).as_deref()), ("Echo: hello there", Some("stop")));
    assert!(stream_usage(&items).is_some());
}

#[tokio::test]
async fn forbidden_is_auth_and_keeps_the_upstream_body() {
    let (fake, p, cred) = setup(FakeOptions::default()).await;
    fake.fail_next(Fault::Forbidden);
    let e = error_of(&p, &cred, hello(false)).await;
    assert!(matches!(&e, ProviderError::Auth { status: 403, message, .. } if message == "Country, region, or territory not supported"), "{e:?}");
    let body: Value = serde_json::from_str(e.body().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unsupported_country_region_territory");
    // 401 and 429 keep theirs too (Test key shows them).
    let e = error_of(&p, &api_key("sk-wrong-key-555555"), hello(false)).await;
    assert!(e.body().unwrap().contains("invalid_api_key"), "{e:?}");
    fake.fail_next(Fault::RateLimit { retry_after_secs: 1 });
    assert!(error_of(&p, &cred, hello(false)).await.body().unwrap().contains("rate_limit_exceeded"));
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    let p = providers(ProviderSlug::OpenAi, format!("{}/v1", closed_port_url()));
    let e = error_of(&p, &api_key(KEY), hello(false)).await;
    assert!(matches!(e, ProviderError::Connect(_)) && e.is_retryable(), "{e:?}");
    assert!(matches!(error_of(&p, &api_key(KEY), hello(true)).await, ProviderError::Connect(_)));
}

#[tokio::test]
async fn a_stall_between_chunks_is_an_idle_timeout() {
    let fake = openai::start(FakeOptions::default()).await.unwrap();
    let p = providers_with(ProviderSlug::OpenAi, format!("{}/v1", fake.url()), short_idle());
    assert_idle_timeout_mid_stream(&fake, &p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &api_key(KEY)), hello(true)).await;
    // Without the stall the same timeouts serve the whole stream.
    let items = collect(chat(&p, &call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &api_key(KEY)), hello(true)).await.unwrap()).await;
    assert_eq!(stream_text(&items), "Echo: hello there");
}

/// Every member of the OpenAI-compatible family: (slug, public base URL, Test key's model).
const FAMILY: [(ProviderSlug, &str, &str); 12] = [
    (ProviderSlug::OpenAi, "https://api.openai.com/v1", "gpt-4o-mini"),
    (ProviderSlug::Mistral, "https://api.mistral.ai/v1", "mistral-small-latest"),
    (ProviderSlug::DeepSeek, "https://api.deepseek.com/v1", "deepseek-chat"),
    (ProviderSlug::XAi, "https://api.x.ai/v1", "grok-3-mini"),
    (ProviderSlug::ZAi, "https://api.z.ai/api/paas/v4", "glm-4.5-flash"),
    (ProviderSlug::Groq, "https://api.groq.com/openai/v1", "llama-3.1-8b-instant"),
    (ProviderSlug::DeepInfra, "https://api.deepinfra.com/v1/openai", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
    (ProviderSlug::Perplexity, "https://api.perplexity.ai", "sonar"),
    (ProviderSlug::MoonshotAi, "https://api.moonshot.ai/v1", "moonshot-v1-8k"),
    (ProviderSlug::Baseten, "https://inference.baseten.co/v1", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
    (ProviderSlug::Fireworks, "https://api.fireworks.ai/inference/v1", "accounts/fireworks/models/llama-v3p1-8b-instruct"),
    (ProviderSlug::Together, "https://api.together.xyz/v1", "meta-llama/Llama-3.2-3B-Instruct-Turbo"),
];

#[tokio::test]
async fn every_family_member_chats_streams_calls_tools_and_embeds_with_its_own_bearer_key() {
    use keyway_core::Protocol;
    let family: Vec<ProviderSlug> = ProviderSlug::ALL.into_iter().filter(|p| p.protocol() == Protocol::OpenAiCompat).collect();
    assert_eq!(family, FAMILY.map(|(s, _, _)| s), "the table covers the whole family");
    let fake = openai::start(FakeOptions::default()).await.unwrap();
    // Each member's base URL ends in a different path on a real host; here all point at the fake.
    let p = providers_for(&family, &format!("{}/v1", fake.url()));
    for (i, (slug, public_base, test_model)) in FAMILY.into_iter().enumerate() {
        assert_eq!(slug.default_base_url(), public_base, "{slug}");
        assert!(url::Url::parse(public_base).is_ok_and(|u| u.scheme() == "https"), "{slug}");
        let adapter = p.get(slug).unwrap_or_else(|| panic!("{slug} has an adapter"));
        assert_eq!(adapter.test_model(), test_model, "{slug}");

        let key = format!("{slug}-key-{i:04}");
        let cred = api_key(&key);
        let gateway = format!("{slug}/{test_model}");
        let c = call(slug, test_model, &gateway, &cred);
        let (body, usage) = complete(chat(&p, &c, hello(false)).await.unwrap());
        assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello there", "{slug}");
        assert_eq!(body["model"], test_model, "{slug}");
        assert!(usage.is_some(), "{slug}");
        let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
        assert_eq!(stream_text(&items), "Echo: hello there", "{slug}");
        assert!(stream_usage(&items).is_some(), "{slug}");

        let calls = fake.calls();
        let sent = &calls[calls.len() - 2..];
        for (n, call) in sent.iter().enumerate() {
            assert_eq!((call.path.as_str(), call.key.as_str()), ("/v1/chat/completions", key.as_str()), "{slug} call {n}");
            let auth = call.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str());
            assert_eq!(auth, Some(format!("Bearer {key}").as_str()), "{slug}");
            assert_eq!(call.body["model"], test_model, "{slug}");
            assert_eq!(call.body["vendor_extension"], json!([1, 2]), "{slug}: unknown fields pass through");
        }
        assert_eq!(sent[1].body["stream_options"], json!({"include_usage": true}), "{slug}");

        // Tools and embeddings go through the same adapter, path and key.
        let tools = json!({"messages": [{"role": "user", "content": "weather?"}],
                           "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
        let (resp, _) = complete(chat(&p, &c, tools).await.unwrap());
        assert_eq!(resp["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather", "{slug}");
        let emb = adapter.embeddings(&c, &request(json!({"input": "one two"}))).await.unwrap();
        assert_eq!(emb.usage.map(|u| u.prompt_tokens), Some(2), "{slug}");
        let calls = fake.calls();
        let last = &calls[calls.len() - 1];
        assert_eq!((last.path.as_str(), last.key.as_str(), &last.body["model"]), ("/v1/embeddings", key.as_str(), &json!(test_model)), "{slug}");
        // The preview (Test key's curl line) names the same URL with the key masked.
        let preview = adapter.preview_chat(&c, &request(hello(false))).await.unwrap();
        assert_eq!(preview.url, format!("{}/v1/chat/completions", fake.url()), "{slug}");
        assert!(!preview.to_curl().contains(&key), "{slug}");
    }
    assert_eq!(fake.calls().len(), 4 * FAMILY.len());
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

/// The direct hyper-util client and reqwest (used when a proxy is configured) send the same
/// request and read the same answers, whole and streamed, and fail alike on a closed port.
#[tokio::test]
async fn both_transports_send_and_read_alike() {
    use keyway_providers::Transport;
    let mut seen = Vec::new();
    for transport in [Transport::Direct, Transport::Reqwest] {
        let fake = openai::start(FakeOptions { keys: [KEY.to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
        let p = providers_via(ProviderSlug::OpenAi, format!("{}/v1", fake.url()), transport);
        assert_eq!(p.http().transport(), transport);
        let cred = api_key(KEY);
        let c = call(ProviderSlug::OpenAi, "gpt-4o-mini", SLUG, &cred);
        let (body, usage) = complete(chat(&p, &c, hello(false)).await.unwrap());
        let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
        let calls = fake.calls();
        assert_eq!(calls.len(), 2);
        let header = |name: &str| calls[0].headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(header("user-agent").as_deref(), Some(concat!("keyway/", env!("CARGO_PKG_VERSION"))), "{transport:?}");
        assert_eq!(header("content-type").as_deref(), Some("application/json"), "{transport:?}");
        let answer = (body["choices"].clone(), usage.map(|u| u.completion_tokens), stream_text(&items), finish_reason(&items));
        let sent: Vec<_> = calls.iter().map(|c| (c.path.clone(), c.key.clone(), c.body.clone())).collect();
        seen.push((answer, sent));

        let closed = providers_via(ProviderSlug::OpenAi, format!("{}/v1", closed_port_url()), transport);
        let e = error_of(&closed, &cred, hello(false)).await;
        assert!(matches!(&e, ProviderError::Connect(m) if m.contains("refused")), "{transport:?}: {e:?}");
    }
    assert_eq!(seen[0], seen[1]);
}
