//! Vertex AI over real HTTP against `keyway_fakes::vertex`: the service-account token flow (the
//! fake verifies the JWT against the account's public key), token caching and single-flight
//! refresh, Gemini models, and Claude on Vertex.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::StreamExt;
use keyway_core::{Credential, ProviderSlug, Usage};
use keyway_fakes::server::FakeOptions;
use keyway_fakes::vertex::VertexFake;
use keyway_fakes::Fault;
use keyway_providers::{Call, ChatRequest, ChatResponse, ProviderError, Providers, ProvidersConfig, StreamEvent};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pem");
const EMAIL: &str = "keyway-test@proj-1.iam.gserviceaccount.com";
const PROJECT: &str = "proj-1";
const MODEL: &str = "gemini-2.5-flash";

fn public_pem(private_pem: &str) -> String {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).unwrap();
    key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

async fn start() -> (VertexFake, Arc<Providers>) {
    let f = keyway_fakes::vertex::start(FakeOptions::default()).await.unwrap();
    f.auth.register(EMAIL, &public_pem(PEM), Some("kid-1"), PROJECT);
    let p = Providers::new(ProvidersConfig { base_urls: HashMap::from([(ProviderSlug::GoogleVertex, f.base_template())]), ..Default::default() }).unwrap();
    (f, Arc::new(p))
}

fn service_account(f: &VertexFake, private_pem: &str) -> Credential {
    let sa = json!({"type": "service_account", "project_id": PROJECT, "private_key_id": "kid-1", "private_key": private_pem,
                    "client_email": EMAIL, "token_uri": f.token_url(), "location": "us-central1"});
    Credential::parse(ProviderSlug::GoogleVertex, &sa).unwrap()
}

fn call<'a>(c: &'a Credential, model: &'a str, region: Option<&'a str>) -> Call<'a> {
    Call { provider: ProviderSlug::GoogleVertex, model, gateway_model: "google/gemini-2.5-flash", credential: c, region }
}

fn req(v: Value) -> ChatRequest {
    ChatRequest::new(v.as_object().unwrap().clone())
}

fn hello(stream: bool) -> ChatRequest {
    req(json!({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}], "stream": stream, "max_tokens": 100}))
}

async fn complete(p: &Providers, call: &Call<'_>, r: &ChatRequest) -> Result<(Value, Option<Usage>), ProviderError> {
    match p.get(ProviderSlug::GoogleVertex).unwrap().chat(call, r).await? {
        ChatResponse::Complete { body, usage } => Ok((body.into_value(), usage)),
        ChatResponse::Stream(_) => panic!("expected a complete response"),
    }
}

async fn collect(p: &Providers, call: &Call<'_>, r: &ChatRequest) -> (Vec<(Value, bool)>, Option<Usage>, Option<ProviderError>) {
    let ChatResponse::Stream(mut s) = p.get(ProviderSlug::GoogleVertex).unwrap().chat(call, r).await.unwrap() else {
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

#[tokio::test]
async fn gemini_round_trip_with_a_service_account_token() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    let (body, usage) = complete(&p, &call(&c, MODEL, None), &hello(false)).await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(usage.map(|u| u.completion_tokens), Some(3));
    let calls = f.server.calls();
    assert_eq!(calls[0].path, "/us-central1/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent");
    assert!(calls[0].key.starts_with("ya29.fake-"));
    assert_eq!(calls[0].body["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(f.auth.tokens_issued(), 1);

    // A second call reuses the cached token.
    complete(&p, &call(&c, MODEL, None), &hello(false)).await.unwrap();
    assert_eq!(f.auth.token_requests(), 1);
    assert_eq!(f.server.calls()[1].key, calls[0].key);
}

#[tokio::test]
async fn gemini_stream_and_tools() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    let (chunks, usage, err) = collect(&p, &call(&c, MODEL, None), &hello(true)).await;
    assert_eq!(err, None);
    assert_eq!(text_of(&chunks), "Echo: hello there");
    assert_eq!(usage.map(|u| u.completion_tokens), Some(3));
    assert!(f.server.calls()[0].path.ends_with(":streamGenerateContent?alt=sse"));

    let tools = req(json!({"messages": [{"role": "user", "content": "weather?"}], "tool_choice": "auto",
                          "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}));
    let (body, _) = complete(&p, &call(&c, MODEL, None), &tools).await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn gemini_tools_streamed_and_the_result_sent_back() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    let weather = |stream: bool| {
        req(json!({"messages": [{"role": "user", "content": "weather in Paris?"}], "stream": stream,
                   "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}))
    };
    let (chunks, _, err) = collect(&p, &call(&c, MODEL, None), &weather(true)).await;
    assert_eq!(err, None);
    let finish = chunks.iter().find_map(|(c, _)| c.pointer("/choices/0/finish_reason").and_then(Value::as_str).map(str::to_owned));
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let streamed = chunks.iter().find_map(|(c, _)| c.pointer("/choices/0/delta/tool_calls/0").cloned()).unwrap();
    assert_eq!(streamed["function"]["name"], "get_weather");
    assert_eq!(serde_json::from_str::<Value>(streamed["function"]["arguments"].as_str().unwrap()).unwrap(), json!({"city": "Paris"}));
    assert!(f.server.calls()[0].path.ends_with(":streamGenerateContent?alt=sse"));
    assert_eq!(f.server.calls()[0].body["tools"][0]["functionDeclarations"][0]["name"], "get_weather");

    let (body, _) = complete(&p, &call(&c, MODEL, None), &weather(false)).await.unwrap();
    let tc = body["choices"][0]["message"]["tool_calls"][0].clone();
    let mut follow = weather(false);
    let msgs = follow.body.map_mut().unwrap().get_mut("messages").unwrap().as_array_mut().unwrap();
    msgs.push(body["choices"][0]["message"].clone());
    msgs.push(json!({"role": "tool", "tool_call_id": tc["id"], "content": "{\"temp\": 21}"}));
    let (body, _) = complete(&p, &call(&c, MODEL, None), &follow).await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Tool said: {\"temp\":21}");
    assert_eq!(f.server.calls()[2].body["contents"][2]["parts"][0]["functionResponse"], json!({"name": "get_weather", "response": {"temp": 21}}));
}

#[tokio::test]
async fn the_request_location_overrides_the_credentials() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    complete(&p, &call(&c, MODEL, Some("europe-west4")), &hello(false)).await.unwrap();
    assert!(f.server.calls()[0].path.starts_with("/europe-west4/v1/projects/proj-1/locations/europe-west4/"));
    let e = complete(&p, &call(&c, MODEL, Some("bad/location")), &hello(false)).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unsupported(_)));
}

#[tokio::test]
async fn concurrent_first_requests_share_one_token_refresh() {
    let (f, p) = start().await;
    // Slow token endpoint, so that all twenty requests queue behind the first refresh.
    f.auth.set_token_delay(Duration::from_millis(200));
    // 61 s lifetime: stale for Keyway (60 s margin) one second after it is issued.
    f.auth.set_token_lifetime(61);
    let c = Arc::new(service_account(&f, PEM));
    let run = |p: Arc<Providers>, c: Arc<Credential>| async move {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (p, c) = (p.clone(), c.clone());
                tokio::spawn(async move { complete(&p, &call(&c, MODEL, None), &hello(false)).await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    run(p.clone(), c.clone()).await;
    assert_eq!(f.auth.token_requests(), 1, "20 concurrent first requests -> exactly 1 token request");
    assert_eq!(f.server.calls().len(), 20);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    run(p.clone(), c.clone()).await;
    assert_eq!(f.auth.token_requests(), 2, "after expiry -> exactly 1 refresh");
    let tokens: std::collections::HashSet<String> = f.server.calls().iter().map(|c| c.key.clone()).collect();
    assert_eq!(tokens.len(), 2);
}

#[tokio::test]
async fn a_wrong_service_account_key_is_an_auth_error() {
    let (f, p) = start().await;
    // A different key pair than the one the fake knows for this account.
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let other_pem = other.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let c = Arc::new(service_account(&f, &other_pem));
    // The five requests queue behind one refresh, and share its failure.
    f.auth.set_token_delay(Duration::from_millis(200));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (p, c) = (p.clone(), c.clone());
            tokio::spawn(async move { complete(&p, &call(&c, MODEL, None), &hello(false)).await })
        })
        .collect();
    for t in tasks {
        match t.await.unwrap() {
            Err(ProviderError::Auth { message, .. }) => {
                assert!(message.contains("Invalid JWT Signature"), "{message}");
                assert!(!message.contains("PRIVATE KEY"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(f.server.calls().is_empty());
    assert_eq!(f.auth.token_requests(), 1);
    assert_eq!(f.auth.tokens_issued(), 0);
}

#[tokio::test]
async fn a_revoked_token_is_dropped_and_refreshed() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    complete(&p, &call(&c, MODEL, None), &hello(false)).await.unwrap();
    f.auth.revoke_all();
    assert!(matches!(complete(&p, &call(&c, MODEL, None), &hello(false)).await, Err(ProviderError::Auth { status: 401, .. })));
    complete(&p, &call(&c, MODEL, None), &hello(false)).await.unwrap();
    assert_eq!(f.auth.token_requests(), 2);
}

#[tokio::test]
async fn another_projects_resources_are_denied() {
    let (f, p) = start().await;
    let sa = json!({"type": "service_account", "project_id": "someone-elses", "private_key": PEM, "private_key_id": "kid-1",
                    "client_email": EMAIL, "token_uri": f.token_url()});
    let c = Credential::parse(ProviderSlug::GoogleVertex, &sa).unwrap();
    assert!(matches!(complete(&p, &call(&c, MODEL, Some("us-east5")), &hello(false)).await, Err(ProviderError::Auth { status: 403, .. })));
}

#[tokio::test]
async fn faults_map_to_error_classes() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    f.server.fail_next(Fault::RateLimit { retry_after_secs: 1 });
    assert!(matches!(complete(&p, &call(&c, MODEL, None), &hello(false)).await, Err(ProviderError::RateLimited { .. })));
    f.server.fail_next(Fault::ServerError);
    assert!(matches!(complete(&p, &call(&c, MODEL, None), &hello(false)).await, Err(ProviderError::Upstream5xx { .. })));
    f.server.fail_next(Fault::ErrorEventAfter200);
    let (_, _, err) = collect(&p, &call(&c, MODEL, None), &hello(true)).await;
    assert!(matches!(err, Some(ProviderError::RateLimited { .. })), "{err:?}");
    f.server.fail_next(Fault::CutStream);
    let (_, _, err) = collect(&p, &call(&c, MODEL, None), &hello(true)).await;
    assert!(matches!(err, Some(ProviderError::Protocol(_))), "{err:?}");
}

#[tokio::test]
async fn preview_names_the_token_endpoint_without_fetching() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    let preview = p.get(ProviderSlug::GoogleVertex).unwrap().preview_chat(&call(&c, MODEL, None), &hello(false)).await.unwrap();
    assert_eq!(f.auth.token_requests(), 0);
    assert!(preview.url.ends_with("/publishers/google/models/gemini-2.5-flash:generateContent"));
    let auth = preview.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).unwrap();
    assert!(auth.contains(&f.token_url()), "{auth}");
}

#[tokio::test]
async fn claude_on_vertex_round_trip() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    let model = "claude-sonnet-4-5@20250929";
    let (body, usage) = complete(&p, &call(&c, model, Some("us-east5")), &hello(false)).await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(usage.map(|u| u.completion_tokens), Some(3));
    let sent = &f.server.calls()[0];
    assert_eq!(sent.path, "/us-east5/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict");
    assert_eq!(sent.body["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.body.get("model").is_none());
    assert!(sent.body["system"].to_string().contains("be brief"));

    let (chunks, usage, err) = collect(&p, &call(&c, model, Some("us-east5")), &hello(true)).await;
    assert_eq!(err, None);
    assert_eq!(text_of(&chunks), "Echo: hello there");
    assert!(usage.is_some());
    assert!(f.server.calls()[1].path.ends_with(":streamRawPredict"));
    assert_eq!(f.server.calls()[1].body["stream"], true);

    f.server.fail_next(Fault::ErrorEventAfter200);
    let (_, _, err) = collect(&p, &call(&c, model, Some("us-east5")), &hello(true)).await;
    assert!(matches!(err, Some(ProviderError::Upstream5xx { .. })), "{err:?}");
}

#[tokio::test]
async fn claude_on_vertex_tools_round_trip() {
    let (f, p) = start().await;
    let c = service_account(&f, PEM);
    let model = "claude-sonnet-4-5@20250929";
    let weather = |stream: bool| {
        req(json!({"messages": [{"role": "user", "content": "weather in Paris?"}], "stream": stream, "max_tokens": 100,
                   "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}))
    };
    let (body, _) = complete(&p, &call(&c, model, Some("us-east5")), &weather(false)).await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let tc = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(tc["id"], "toolu_vrtx_1");
    assert_eq!(tc["function"]["name"], "get_weather");
    assert_eq!(serde_json::from_str::<Value>(tc["function"]["arguments"].as_str().unwrap()).unwrap(), json!({"city": "Paris"}));
    // Sent as Anthropic tools, with the Vertex version and no model.
    let sent = &f.server.calls()[0];
    assert_eq!(sent.body["tools"][0]["name"], "get_weather");
    assert_eq!(sent.body["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");
    assert_eq!(sent.body["anthropic_version"], "vertex-2023-10-16");

    // Streamed: a tool-call start chunk, then argument fragments.
    let (chunks, usage, err) = collect(&p, &call(&c, model, Some("us-east5")), &weather(true)).await;
    assert_eq!(err, None);
    assert!(usage.is_some());
    let finish = chunks.iter().find_map(|(c, _)| c.pointer("/choices/0/finish_reason").and_then(Value::as_str).map(str::to_owned));
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert!(chunks.iter().any(|(c, _)| c.pointer("/choices/0/delta/tool_calls/0/id") == Some(&json!("toolu_vrtx_1"))));
    let args: String = chunks.iter().filter_map(|(c, _)| c.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str)).collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
    assert!(f.server.calls()[1].path.ends_with(":streamRawPredict"));

    // The result goes back as a tool_result for that tool_use; the fake answers in text.
    let mut follow = weather(false);
    let msgs = follow.body.map_mut().unwrap().get_mut("messages").unwrap().as_array_mut().unwrap();
    msgs.push(body["choices"][0]["message"].clone());
    msgs.push(json!({"role": "tool", "tool_call_id": "toolu_vrtx_1", "content": "sunny, 21C"}));
    let (answer, _) = complete(&p, &call(&c, model, Some("us-east5")), &follow).await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Tool said: sunny, 21C");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let sent = &f.server.calls()[2].body;
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], "toolu_vrtx_1");

    // A tool_result for a call that was never made is refused, as the real API does.
    let mut orphan = weather(false);
    orphan.body.map_mut().unwrap().get_mut("messages").unwrap().as_array_mut().unwrap()
        .push(json!({"role": "tool", "tool_call_id": "toolu_never", "content": "x"}));
    assert!(matches!(complete(&p, &call(&c, model, Some("us-east5")), &orphan).await, Err(ProviderError::BadRequest { .. })));
}

/// The fake's token endpoint refuses assertions a real one would.
#[tokio::test]
async fn the_token_endpoint_is_strict() {
    let (f, _p) = start().await;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(PEM.as_bytes()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let scope = "https://www.googleapis.com/auth/cloud-platform";
    let post = |claims: Value, grant: &'static str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("kid-1".into());
        let jwt = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let url = f.token_url();
        async move {
            let body = format!("grant_type={}&assertion={jwt}", grant.replace(':', "%3A"));
            let r = reqwest::Client::new().post(url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let good = json!({"iss": EMAIL, "scope": scope, "aud": f.token_url(), "iat": now, "exp": now + 3600});
    assert_eq!(post(good.clone(), grant).await.0, 200);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("https://oauth2.googleapis.com/token");
    assert!(post(wrong_aud, grant).await.1.contains("audience"));
    let mut too_long = good.clone();
    too_long["exp"] = json!(now + 7200);
    assert_eq!(post(too_long, grant).await.0, 400);
    let mut expired = good.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    assert_eq!(post(expired, grant).await.0, 400);
    let mut no_scope = good.clone();
    no_scope["scope"] = json!("https://www.googleapis.com/auth/userinfo.email");
    assert!(post(no_scope, grant).await.1.contains("invalid_scope"));
    let (status, text) = post(good, "client_credentials").await;
    assert_eq!(status, 400);
    assert!(text.contains("unsupported_grant_type"));
    assert_eq!(f.auth.tokens_issued(), 1);
}
