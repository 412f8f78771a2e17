//! The Azure OpenAI adapter against the Azure fake, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use harness::*;
use keyway_core::{Credential, ProviderSlug};
use keyway_fakes::azure;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::{FakeServer, Fault};
use keyway_providers::error::TimeoutKind;
use keyway_providers::{ProviderError, Providers, StreamEvent};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "azure-key-0000000000000001";
const KEY2: &str = "azure-key-0000000000000002";
const SLUG: &str = "openai/gpt-4o";

async fn start(options: FakeOptions) -> FakeServer {
    azure::start(FakeOptions { keys: [KEY.to_owned(), KEY2.to_owned()].into(), ..options }).await.unwrap()
}

/// Providers whose `{resource}` template points at the fake's `/r/{resource}` routes.
fn resource_providers(fake: &FakeServer) -> Providers {
    providers(ProviderSlug::Azure, format!("{}/r/{{resource}}", fake.url()))
}

fn resource(mappings: Value) -> Credential {
    Credential::parse(ProviderSlug::Azure, &json!({"api_key": KEY, "resource_name": "myres", "model_mappings": mappings})).unwrap()
}

fn hello(stream: bool) -> Value {
    json!({"model": SLUG, "stream": stream, "seed": 5, "x_custom": {"kept": true},
           "messages": [{"role": "user", "content": "hello azure"}]})
}

async fn error_of(p: &Providers, cred: &Credential, body: Value) -> ProviderError {
    let c = call(ProviderSlug::Azure, "gpt-4o", SLUG, cred);
    match chat(p, &c, body).await {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

fn header(fake: &FakeServer, i: usize, name: &str) -> Option<String> {
    fake.calls()[i].headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn resource_credential_uses_the_template_and_model_mappings() {
    let fake = start(FakeOptions::default()).await;
    let p = resource_providers(&fake);
    let cred = resource(json!([{"gateway_model_slug": SLUG, "custom_model_id": "prod-4o"}]));
    let (body, usage) = complete(chat(&p, &call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred), hello(false)).await.unwrap());
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello azure");
    assert!(usage.unwrap().completion_tokens > 0);
    let calls = fake.calls();
    assert_eq!(calls[0].path, "/r/myres/openai/deployments/prod-4o/chat/completions");
    assert_eq!(calls[0].key, KEY);
    assert_eq!(header(&fake, 0, "authorization"), None);
    // Azure's body is OpenAI's: unknown fields pass through.
    assert_eq!(calls[0].body["seed"], 5);
    assert_eq!(calls[0].body["x_custom"], json!({"kept": true}));

    // Without a mapping the deployment is the model's own name.
    let plain = resource(Value::Null);
    complete(chat(&p, &call(ProviderSlug::Azure, "gpt-4o-mini", "openai/gpt-4o-mini", &plain), hello(false)).await.unwrap());
    assert_eq!(fake.calls()[1].path, "/r/myres/openai/deployments/gpt-4o-mini/chat/completions");
}

#[tokio::test]
async fn deployments_credential_picks_the_entry_for_the_slug() {
    let fake = start(FakeOptions::default()).await;
    let p = providers(ProviderSlug::Azure, "http://127.0.0.1:9/unused/{resource}".into());
    let cred = Credential::parse(ProviderSlug::Azure, &json!([
        {"model_slug": "openai/gpt-4o-mini", "endpoint_url": fake.url(), "api_key": KEY, "model_id": "mini-dep"},
        {"model_slug": SLUG, "endpoint_url": format!("{}/", fake.url()), "api_key": KEY2, "model_id": "big-dep"},
        {"model_slug": "openai/o3", "endpoint_url": format!("{}/openai/deployments/o3-full/chat/completions?api-version=2025-01-01-preview", fake.url()),
         "api_key": KEY, "model_id": "ignored"}
    ])).unwrap();
    complete(chat(&p, &call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred), hello(false)).await.unwrap());
    complete(chat(&p, &call(ProviderSlug::Azure, "o3", "openai/o3", &cred), hello(false)).await.unwrap());
    let calls = fake.calls();
    assert_eq!((calls[0].path.as_str(), calls[0].key.as_str()), ("/openai/deployments/big-dep/chat/completions", KEY2));
    assert_eq!((calls[1].path.as_str(), calls[1].key.as_str()), ("/openai/deployments/o3-full/chat/completions", KEY));

    // No deployment for the slug: this credential can't serve it.
    let none = chat(&p, &call(ProviderSlug::Azure, "gpt-5", "openai/gpt-5", &cred), hello(false)).await;
    assert!(matches!(none, Err(ProviderError::Unsupported(_))), "{none:?}");
}

#[tokio::test]
async fn stream_round_trip_asks_for_usage() {
    let fake = start(FakeOptions::default()).await;
    let p = resource_providers(&fake);
    let cred = resource(Value::Null);
    let items = collect(chat(&p, &call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred), hello(true)).await.unwrap()).await;
    assert_eq!(stream_text(&items), "Echo: hello azure");
    assert_eq!(finish_reason(&items).as_deref(), Some("stop"));
    assert!(stream_usage(&items).is_some_and(|u| u.completion_tokens == 3));
    assert_eq!(fake.calls()[0].body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn tools_round_trip() {
    let fake = start(FakeOptions::default()).await;
    let p = resource_providers(&fake);
    let cred = resource(Value::Null);
    let c = call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let body = json!({"messages": [{"role": "user", "content": "weather?"}], "tools": tools});
    let (resp, _) = complete(chat(&p, &c, body.clone()).await.unwrap());
    assert_eq!(resp["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let items = collect(chat(&p, &c, streamed).await.unwrap()).await;
    let calls = stream_tool_calls(&items);
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), json!({"city": "Paris"}));
}

#[tokio::test]
async fn embeddings_use_the_deployment_embeddings_path() {
    let fake = start(FakeOptions::default()).await;
    let p = resource_providers(&fake);
    let cred = resource(json!({"openai/text-embedding-3-small": "emb-dep"}));
    let c = call(ProviderSlug::Azure, "text-embedding-3-small", "openai/text-embedding-3-small", &cred);
    let adapter = p.get(ProviderSlug::Azure).unwrap();
    let resp = adapter.embeddings(&c, &request(json!({"input": ["a b", "c"]}))).await.unwrap();
    assert_eq!(resp.body.clone().into_value()["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(resp.usage.map(|u| u.prompt_tokens), Some(3));
    assert_eq!(fake.calls()[0].path, "/r/myres/openai/deployments/emb-dep/embeddings");
}

#[tokio::test]
async fn upstream_error_classes() {
    let fake = start(FakeOptions::default()).await;
    let p = resource_providers(&fake);
    let cred = resource(Value::Null);

    fake.fail_next(Fault::RateLimit { retry_after_secs: 3 });
    match error_of(&p, &cred, hello(false)).await {
        ProviderError::RateLimited { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(3))),
        other => panic!("{other:?}"),
    }
    let wrong = Credential::parse(ProviderSlug::Azure, &json!({"api_key": "not-the-key-1234567", "resource_name": "myres"})).unwrap();
    let e = error_of(&p, &wrong, hello(false)).await;
    assert!(matches!(e, ProviderError::Auth { status: 401, .. }), "{e:?}");
    assert!(!e.to_string().contains("not-the-key-1234567"));
    fake.fail_next(Fault::BadRequest);
    assert!(matches!(error_of(&p, &cred, hello(false)).await, ProviderError::BadRequest { status: 400, .. }));
    fake.fail_next(Fault::ServerError);
    assert!(matches!(error_of(&p, &cred, hello(true)).await, ProviderError::Upstream5xx { status: 500, .. }));
    fake.fail_next(Fault::InvalidJson);
    assert!(matches!(error_of(&p, &cred, hello(false)).await, ProviderError::Protocol(_)));
    assert!(matches!(error_of(&p, &api_key("k"), hello(false)).await, ProviderError::Unsupported(_)));

    fake.fail_next(Fault::ErrorEventAfter200);
    let items = collect(chat(&p, &call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred), hello(true)).await.unwrap()).await;
    assert!(matches!(items.first(), Some(Err(ProviderError::RateLimited { .. }))), "{items:?}");

    fake.fail_next(Fault::CutStream);
    let items = collect(chat(&p, &call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred), hello(true)).await.unwrap()).await;
    let err_at = items.iter().position(Result::is_err).expect("an error");
    assert!(items[..err_at].iter().any(|i| matches!(i, Ok(StreamEvent::Chunk { content: true, .. }))));
    assert!(matches!(items[err_at], Err(ProviderError::Protocol(_))));
}

#[tokio::test]
async fn forbidden_closed_port_early_end_and_idle_stall() {
    let fake = start(FakeOptions::default()).await;
    let p = resource_providers(&fake);
    let cred = resource(Value::Null);
    fake.fail_next(Fault::Forbidden);
    let e = error_of(&p, &cred, hello(false)).await;
    assert!(matches!(&e, ProviderError::Auth { status: 403, message, .. } if message.contains("does not have access")), "{e:?}");
    assert_eq!(serde_json::from_str::<Value>(e.body().unwrap()).unwrap()["error"]["code"], "PermissionDenied");

    // A stream that ends cleanly before [DONE] is not a success.
    fake.fail_next(Fault::EndStreamEarly);
    let c = call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred);
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    assert!(matches!(error_after_content(&items), ProviderError::Protocol(_)), "{items:?}");
    fake.fail_next(Fault::InvalidJson);
    let items = collect(chat(&p, &c, hello(true)).await.unwrap()).await;
    assert!(matches!(items.as_slice(), [Err(ProviderError::Protocol(_))]), "{items:?}");

    // Closed port, both through the template and a deployment's own endpoint_url.
    let closed = providers(ProviderSlug::Azure, format!("{}/r/{{resource}}", closed_port_url()));
    assert!(matches!(error_of(&closed, &cred, hello(false)).await, ProviderError::Connect(_)));
    let dep = Credential::parse(ProviderSlug::Azure, &json!([{"model_slug": SLUG, "endpoint_url": closed_port_url(), "api_key": KEY, "model_id": "d"}])).unwrap();
    assert!(matches!(error_of(&p, &dep, hello(true)).await, ProviderError::Connect(_)));

    let idle = providers_with(ProviderSlug::Azure, format!("{}/r/{{resource}}", fake.url()), short_idle());
    assert_idle_timeout_mid_stream(&fake, &idle, &c, hello(true)).await;
}

#[tokio::test]
async fn slow_first_byte_times_out() {
    let fake = start(FakeOptions::default()).await;
    let p = providers_with(ProviderSlug::Azure, format!("{}/r/{{resource}}", fake.url()), short_first_byte());
    fake.set_fault(Fault::SlowFirstByte(Duration::from_secs(5)));
    assert_eq!(error_of(&p, &resource(Value::Null), hello(false)).await, ProviderError::Timeout(TimeoutKind::FirstByte));
}

#[tokio::test]
async fn streams_chunk_by_chunk() {
    let delay = Duration::from_millis(200);
    let fake = start(FakeOptions { chunk_delay: delay, chunks: 4, ..FakeOptions::default() }).await;
    let p = resource_providers(&fake);
    let cred = resource(Value::Null);
    let items = collect_timed(chat(&p, &call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred), hello(true)).await.unwrap()).await;
    // After the first text chunk: 3 more, the finish chunk, the usage chunk.
    assert_streams_incrementally(&items, delay, 5);
}

#[tokio::test]
async fn preview_masks_the_key() {
    let fake = start(FakeOptions::default()).await;
    let p = resource_providers(&fake);
    let cred = resource(Value::Null);
    let preview = p.get(ProviderSlug::Azure).unwrap().preview_chat(&call(ProviderSlug::Azure, "gpt-4o", SLUG, &cred), &request(hello(false))).await.unwrap();
    assert!(preview.url.ends_with("/r/myres/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"), "{}", preview.url);
    assert!(!preview.to_curl().contains(KEY));
}

#[tokio::test]
async fn fake_demands_api_key_header_and_api_version() {
    let fake = start(FakeOptions::default()).await;
    let http = reqwest::Client::new();
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let base = format!("{}/openai/deployments/d/chat/completions", fake.url());
    let r = http.post(format!("{base}?api-version=2024-10-21")).bearer_auth(KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http.post(&base).header("api-key", KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["message"], "Resource not found");
    let r = http.post(format!("{base}?api-version=2024-10-21")).header("api-key", KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
