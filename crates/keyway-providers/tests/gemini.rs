//! Google AI Studio (Gemini API) over real HTTP against `keyway_fakes::gemini`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::StreamExt;
use keyway_core::{Credential, ProviderSlug, Usage};
use keyway_fakes::server::FakeOptions;
use keyway_fakes::{Fault, FakeServer};
use keyway_providers::{Call, ChatRequest, ChatResponse, ProviderError, Providers, ProvidersConfig, StreamEvent};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

const KEY: &str = "AIzaSyFakeKeyForKeywayTests0000000000";
const MODEL: &str = "gemini-2.5-flash";

async fn start() -> (FakeServer, Providers) {
    let f = keyway_fakes::gemini::start(FakeOptions { keys: HashSet::from([KEY.to_owned()]), ..Default::default() }).await.unwrap();
    let p = Providers::new(ProvidersConfig { base_urls: HashMap::from([(ProviderSlug::GoogleAiStudio, f.url())]), ..Default::default() }).unwrap();
    (f, p)
}

fn key(k: &str) -> Credential {
    Credential::parse(ProviderSlug::GoogleAiStudio, &json!(k)).unwrap()
}

fn call(c: &Credential) -> Call<'_> {
    Call { provider: ProviderSlug::GoogleAiStudio, model: MODEL, gateway_model: "google/gemini-2.5-flash", credential: c, region: None }
}

fn req(v: Value) -> ChatRequest {
    ChatRequest::new(v.as_object().unwrap().clone())
}

fn hello(stream: bool) -> ChatRequest {
    req(json!({"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hello there"}], "stream": stream, "temperature": 0.2}))
}

fn weather(stream: bool) -> ChatRequest {
    req(json!({"messages": [{"role": "user", "content": "weather in Paris?"}], "stream": stream,
               "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}}]}))
}

async fn complete(p: &Providers, c: &Credential, r: &ChatRequest) -> Result<(Value, Option<Usage>), ProviderError> {
    match p.get(ProviderSlug::GoogleAiStudio).unwrap().chat(&call(c), r).await? {
        ChatResponse::Complete { body, usage } => Ok((body.into_value(), usage)),
        ChatResponse::Stream(_) => panic!("expected a complete response"),
    }
}

async fn collect(p: &Providers, c: &Credential, r: &ChatRequest) -> (Vec<(Value, bool)>, Option<Usage>, Option<ProviderError>) {
    let ChatResponse::Stream(mut s) = p.get(ProviderSlug::GoogleAiStudio).unwrap().chat(&call(c), r).await.unwrap() else {
        panic!("expected a stream");
    };
    let (mut chunks, mut usage, mut err) = (vec![], None, None);
    while let Some(item) = s.next().await {
        match item {
            Ok(StreamEvent::Chunk { json, content, .. }) => chunks.push((serde_json::from_slice(&json).unwrap(), content)),
            Ok(StreamEvent::Usage(u)) => usage = Some(u),
            Err(e) => err = Some(e),
        }
    }
    (chunks, usage, err)
}

fn text_of(chunks: &[(Value, bool)]) -> String {
    chunks.iter().filter_map(|(c, _)| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect()
}

fn finish_of(chunks: &[(Value, bool)]) -> Option<String> {
    chunks.iter().find_map(|(c, _)| c.pointer("/choices/0/finish_reason").and_then(Value::as_str).map(str::to_owned))
}

#[tokio::test]
async fn chat_round_trip_with_the_key_in_a_header() {
    let (f, p) = start().await;
    let c = key(KEY);
    let (body, usage) = complete(&p, &c, &hello(false)).await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(usage.map(|u| u.completion_tokens), Some(3));
    let calls = f.calls();
    assert_eq!(calls[0].path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert!(!calls[0].path.contains("key="));
    assert!(calls[0].headers.iter().any(|(k, v)| k == "x-goog-api-key" && v == KEY));
    assert_eq!(calls[0].body["systemInstruction"], json!({"parts": [{"text": "be brief"}]}));
    assert_eq!(calls[0].body["contents"], json!([{"role": "user", "parts": [{"text": "hello there"}]}]));
    assert_eq!(calls[0].body["generationConfig"], json!({"temperature": 0.2}));
}

#[tokio::test]
async fn stream_round_trip() {
    let (f, p) = start().await;
    let c = key(KEY);
    let (chunks, usage, err) = collect(&p, &c, &hello(true)).await;
    assert_eq!(err, None);
    assert_eq!(text_of(&chunks), "Echo: hello there");
    assert_eq!(finish_of(&chunks).as_deref(), Some("stop"));
    assert!(!chunks[0].1, "the role chunk carries no content");
    assert_eq!(chunks.last().unwrap().0["usage"]["completion_tokens"], 3);
    let u = usage.unwrap();
    assert_eq!(u.completion_tokens, 3);
    assert!(u.prompt_tokens > 0);
    assert_eq!(f.calls()[0].path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
}

#[tokio::test]
async fn tools_round_trip() {
    let (f, p) = start().await;
    let c = key(KEY);
    let (body, _) = complete(&p, &c, &weather(false)).await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let tc = body["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(tc["function"]["name"], "get_weather");
    assert_eq!(serde_json::from_str::<Value>(tc["function"]["arguments"].as_str().unwrap()).unwrap(), json!({"city": "Paris"}));
    let decl = &f.calls()[0].body["tools"][0]["functionDeclarations"][0];
    assert_eq!(decl["name"], "get_weather");
    assert!(decl["parameters"].get("additionalProperties").is_none());

    let (chunks, _, err) = collect(&p, &c, &weather(true)).await;
    assert_eq!(err, None);
    assert_eq!(finish_of(&chunks).as_deref(), Some("tool_calls"));
    let streamed = chunks.iter().find_map(|(c, _)| c.pointer("/choices/0/delta/tool_calls/0").cloned()).unwrap();
    assert_eq!(streamed["index"], 0);
    assert_eq!(streamed["function"]["name"], "get_weather");

    let mut follow = weather(false);
    let msgs = follow.body.map_mut().unwrap().get_mut("messages").unwrap().as_array_mut().unwrap();
    msgs.push(body["choices"][0]["message"].clone());
    msgs.push(json!({"role": "tool", "tool_call_id": tc["id"], "content": "{\"temp\": 21}"}));
    let (body, _) = complete(&p, &c, &follow).await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Tool said: {\"temp\":21}");
    let sent = &f.calls()[2].body["contents"];
    assert_eq!(sent[1]["parts"][0]["functionCall"], json!({"name": "get_weather", "args": {"city": "Paris"}}));
    assert_eq!(sent[2]["parts"][0]["functionResponse"], json!({"name": "get_weather", "response": {"temp": 21}}));
}

#[tokio::test]
async fn structured_output_and_images_are_translated() {
    let (f, p) = start().await;
    let c = key(KEY);
    let r = req(json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is it"},
                                                                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                       "max_completion_tokens": 64, "stop": ["\n\n"]}));
    complete(&p, &c, &r).await.unwrap();
    let sent = &f.calls()[0].body;
    assert_eq!(sent["contents"][0]["parts"][1], json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}));
    assert_eq!(sent["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(sent["generationConfig"]["responseSchema"]["properties"]["a"]["type"], "string");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 64);
    assert_eq!(sent["generationConfig"]["stopSequences"], json!(["\n\n"]));
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error() {
    let (f, p) = start().await;
    let c = key("AIzaSyWrongKey");
    match complete(&p, &c, &hello(false)).await {
        Err(ProviderError::Auth { status: 401, message, .. }) => assert!(message.contains("API key not valid")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(f.calls().is_empty());
}

#[tokio::test]
async fn embeddings_single_and_batch() {
    let (f, p) = start().await;
    let c = key(KEY);
    let a = p.get(ProviderSlug::GoogleAiStudio).unwrap();
    let call = Call { model: "text-embedding-004", ..call(&c) };
    let one = a.embeddings(&call, &req(json!({"input": "hello", "dimensions": 4}))).await.unwrap().body.into_value();
    assert_eq!(one["object"], "list");
    assert_eq!(one["data"][0]["object"], "embedding");
    assert_eq!(one["data"][0]["embedding"].as_array().unwrap().len(), 4);
    let many = a.embeddings(&call, &req(json!({"input": ["a", "bb", "ccc"]}))).await.unwrap().body.into_value();
    let data = many["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data.iter().map(|d| d["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    let calls = f.calls();
    assert_eq!(calls[0].path, "/v1beta/models/text-embedding-004:embedContent");
    assert_eq!(calls[0].body["outputDimensionality"], 4);
    assert_eq!(calls[1].path, "/v1beta/models/text-embedding-004:batchEmbedContents");
    assert_eq!(calls[1].body["requests"][2]["content"], json!({"parts": [{"text": "ccc"}]}));
}

#[tokio::test]
async fn faults_map_to_error_classes() {
    let (f, p) = start().await;
    let c = key(KEY);
    f.fail_next(Fault::RateLimit { retry_after_secs: 2 });
    assert!(matches!(complete(&p, &c, &hello(false)).await, Err(ProviderError::RateLimited { .. })));
    f.fail_next(Fault::ServerError);
    assert!(matches!(complete(&p, &c, &hello(false)).await, Err(ProviderError::Upstream5xx { .. })));
    f.fail_next(Fault::InvalidJson);
    assert!(matches!(complete(&p, &c, &hello(false)).await, Err(ProviderError::Protocol(_))));
    f.fail_next(Fault::ErrorEventAfter200);
    let (chunks, _, err) = collect(&p, &c, &hello(true)).await;
    assert!(matches!(err, Some(ProviderError::RateLimited { .. })), "{err:?}");
    assert!(chunks.iter().all(|(_, content)| !content));
    f.fail_next(Fault::CutStream);
    let (_, usage, err) = collect(&p, &c, &hello(true)).await;
    assert!(matches!(err, Some(ProviderError::Protocol(_))), "{err:?}");
    assert_eq!(usage, None);
}

#[tokio::test]
async fn preview_masks_the_key() {
    let (_f, p) = start().await;
    let c = key(KEY);
    let preview = p.get(ProviderSlug::GoogleAiStudio).unwrap().preview_chat(&call(&c), &hello(false)).await.unwrap();
    assert!(!preview.url.contains("key="));
    assert!(!preview.to_curl().contains(KEY));
    assert!(preview.headers.iter().any(|(k, _)| k == "x-goog-api-key"));
}
