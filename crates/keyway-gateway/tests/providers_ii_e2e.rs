//! Vertex AI (service-account OAuth, Gemini and Claude models) and Google AI Studio through the
//! real gateway against fakes that check each provider's real authentication: stored BYOK keys,
//! request-scoped keys in Vercel's shape (body and `x-keyway-byok` header), and the `token_uri`
//! allow-list on every way in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use base64::Engine;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::vertex::VertexFake;
use keyway_fakes::FakeServer;
use keyway_gateway::config::ProviderSettings;
use serde_json::{json, Value};

const PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pem");
const PUBLIC_PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pub.pem");
const EMAIL: &str = "keyway-e2e@proj-e2e.iam.gserviceaccount.com";
const PROJECT: &str = "proj-e2e";
const AI_KEY: &str = "AIza-e2e-test-key-00000001";
const METADATA: &str = "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token";

struct Setup {
    vertex: VertexFake,
    /// A second token endpoint, on a port the allow-list does not name: nothing may reach it.
    off_list: VertexFake,
    gemini: FakeServer,
    g: Gateway,
    key: String,
}

async fn setup() -> Setup {
    let vertex = keyway_fakes::vertex::start(FakeOptions::default()).await.unwrap();
    vertex.auth.register(EMAIL, PUBLIC_PEM, None, PROJECT);
    let off_list = keyway_fakes::vertex::start(FakeOptions::default()).await.unwrap();
    off_list.auth.register(EMAIL, PUBLIC_PEM, None, PROJECT);
    let gemini = keyway_fakes::gemini::start(FakeOptions { keys: [AI_KEY.to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
    let (vt, gu) = (vertex.base_template(), gemini.url());
    // Exactly the fake's host and port, so that the other fake's port is off the list.
    let allowed = vertex.url().trim_start_matches("http://").to_owned();
    let g = Gateway::start(|c| {
        c.providers.insert("google-vertex".into(), ProviderSettings { base_url: Some(vt.clone()) });
        c.providers.insert("google-ai-studio".into(), ProviderSettings { base_url: Some(gu.clone()) });
        c.security.allowed_upstream_hosts.push(allowed.clone());
    })
    .await;
    let (key, _) = g.inference_key().await;
    Setup { vertex, off_list, gemini, g, key }
}

fn service_account(token_uri: &str, location: &str) -> Value {
    json!({"type": "service_account", "project_id": PROJECT, "private_key_id": "kid-e2e", "private_key": PEM,
           "client_email": EMAIL, "token_uri": token_uri, "location": location})
}

fn vercel(token_uri: &str, location: &str) -> Value {
    json!({"project": PROJECT, "location": location, "googleCredentials": {"privateKey": PEM, "clientEmail": EMAIL, "tokenUri": token_uri}})
}

fn chat(model: &str, only: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20, "stream": stream,
           "provider": {"only": [only]}})
}

/// The PEM's base64 body lines, which must appear in no response and no log line.
fn pem_lines() -> Vec<&'static str> {
    PEM.lines().filter(|l| !l.starts_with("-----") && l.len() > 40).collect()
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("PRIVATE KEY"), "a private key leaked: {text}");
    for l in pem_lines() {
        assert!(!text.contains(l), "a private key line leaked");
    }
}

/// Streams a chat request; returns (status, headers, content text, whether it ended with [DONE]).
async fn stream(g: &Gateway, key: &str, body: Value, extra: Option<(&str, String)>) -> (u16, reqwest::header::HeaderMap, String, bool) {
    let mut r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(key).json(&body);
    if let Some((k, v)) = extra {
        r = r.header(k, v);
    }
    let resp = r.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let mut content = String::new();
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if let Ok(v) = serde_json::from_str::<Value>(data) {
            if let Some(c) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                content.push_str(c);
            }
        }
    }
    (status, headers, content, text.trim_end().ends_with("data: [DONE]"))
}

async fn post_with_header(g: &Gateway, key: &str, body: &Value, header: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(key).header("x-keyway-byok", header).json(body).send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

#[tokio::test]
async fn vertex_gemini_and_claude_chat_and_stream_with_a_stored_service_account() {
    let s = setup().await;
    let id = s.g.add_byok(json!({"provider": "google-vertex", "key": service_account(&s.vertex.token_url(), "us-central1")})).await;

    let (st, v, h) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(chat("google/gemini-2.5-flash", "google-vertex", false))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!((h["x-keyway-provider"].to_str().unwrap(), h["x-keyway-byok"].to_str().unwrap()), ("google-vertex", "true"));
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), id);
    let calls = s.vertex.server.calls();
    assert_eq!(calls[0].path, "/us-central1/v1/projects/proj-e2e/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent");
    assert!(calls[0].key.starts_with("ya29.fake-"), "the fake's issued token, not the key");

    let (st, h, text, done) = stream(&s.g, &s.key, chat("google/gemini-2.5-flash", "google-vertex", true), None).await;
    assert_eq!((st, text.as_str(), done), (200, "Echo: hello there", true));
    assert_eq!(h["x-keyway-provider"].to_str().unwrap(), "google-vertex");
    assert!(s.vertex.server.calls()[1].path.ends_with("/models/gemini-2.5-flash:streamGenerateContent?alt=sse"));

    // Claude on Vertex, same credential: rawPredict / streamRawPredict.
    let (st, v, h) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(chat("anthropic/claude-sonnet-4.5", "google-vertex", false))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(h["x-keyway-provider"].to_str().unwrap(), "google-vertex");
    assert!(s.vertex.server.calls()[2].path.ends_with("/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"));
    let (st, _, text, done) = stream(&s.g, &s.key, chat("anthropic/claude-sonnet-4.5", "google-vertex", true), None).await;
    assert_eq!((st, text.as_str(), done), (200, "Echo: hello there", true));
    assert!(s.vertex.server.calls()[3].path.ends_with(":streamRawPredict"));

    // One token served all four requests.
    assert_eq!(s.vertex.auth.token_requests(), 1);
    assert_no_secret(&logs());
}

#[tokio::test]
async fn ai_studio_chat_stream_and_embeddings_with_a_stored_key() {
    let s = setup().await;
    let id = s.g.add_byok(json!({"provider": "google-ai-studio", "key": AI_KEY})).await;
    let (st, v, h) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(chat("google/gemini-2.5-flash", "google-ai-studio", false))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!((h["x-keyway-provider"].to_str().unwrap(), h["x-keyway-credential"].to_str().unwrap()), ("google-ai-studio", id.as_str()));
    let calls = s.gemini.calls();
    assert_eq!(calls[0].key, AI_KEY);
    assert!(calls[0].path.ends_with("/models/gemini-2.5-flash:generateContent"), "{}", calls[0].path);
    assert!(calls[0].headers.iter().any(|(k, v)| k == "x-goog-api-key" && v == AI_KEY));

    let (st, _, text, done) = stream(&s.g, &s.key, chat("google/gemini-2.5-flash", "google-ai-studio", true), None).await;
    assert_eq!((st, text.as_str(), done), (200, "Echo: hello there", true));
    assert!(s.gemini.calls()[1].path.ends_with(":streamGenerateContent?alt=sse"));

    let (st, v, _) = s.g.req("POST", "/v1/embeddings", Some(&s.key), Some(json!({"model": "google/gemini-embedding-001", "input": ["a", "b"]}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(v["data"][0]["embedding"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(s.gemini.calls()[2].path.contains("gemini-embedding-001"), "{}", s.gemini.calls()[2].path);

    // A wrong stored key is the upstream's auth failure, not a 200.
    let g2 = setup().await;
    g2.g.add_byok(json!({"provider": "google-ai-studio", "key": "AIza-e2e-wrong-key-000002"})).await;
    let (st, v, _) = g2.g.req("POST", "/v1/chat/completions", Some(&g2.key), Some(chat("google/gemini-2.5-flash", "google-ai-studio", false))).await;
    assert_ne!(st, 200, "{v}");
    assert!(!v.to_string().contains("AIza-e2e-wrong-key-000002"));
}

#[tokio::test]
async fn request_scoped_vertex_keys_in_vercels_shape_via_body_and_header() {
    let s = setup().await;
    // Body: providerOptions.gateway.byok.vertex, Vercel's {project, location, googleCredentials}.
    let mut body = json!({"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hello there"}],
                          "providerOptions": {"gateway": {"only": ["vertex"], "byok": {"vertex": [vercel(&s.vertex.token_url(), "europe-west4")]}}}});
    let (st, v, h) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(body.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!((h["x-keyway-provider"].to_str().unwrap(), h["x-keyway-byok"].to_str().unwrap()), ("google-vertex", "true"));
    assert_eq!(s.vertex.server.calls()[0].path, "/europe-west4/v1/projects/proj-e2e/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent");
    assert_eq!(s.vertex.auth.token_requests(), 1, "the JWT exchange happened at the caller's token_uri");

    // Streamed, same request-scoped key.
    body["stream"] = json!(true);
    let (st, _, text, done) = stream(&s.g, &s.key, body, None).await;
    assert_eq!((st, text.as_str(), done), (200, "Echo: hello there", true));

    // Header: base64 of the same object, here without a location (-> global).
    let header = b64(&json!({"vertex": [vercel(&s.vertex.token_url(), "global")]}));
    let plain = json!({"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hello there"}], "provider": {"only": ["google-vertex"]}});
    let (st, v, h) = post_with_header(&s.g, &s.key, &plain, &header).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(h["x-keyway-byok"].to_str().unwrap(), "true");
    assert!(s.vertex.server.calls().last().unwrap().path.starts_with("/global/v1/projects/proj-e2e/locations/global/"));
    // A streamed request with the header.
    let mut streamed = plain.clone();
    streamed["stream"] = json!(true);
    let (st, _, text, _) = stream(&s.g, &s.key, streamed, Some(("x-keyway-byok", header))).await;
    assert_eq!((st, text.as_str()), (200, "Echo: hello there"));

    // Used, never stored.
    let (_, listed) = s.g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(listed["total_count"], 0, "{listed}");
    assert_no_secret(&logs());
}

#[tokio::test]
async fn a_token_uri_off_the_allow_list_is_refused_everywhere() {
    let s = setup().await;
    let off = s.off_list.token_url();
    for bad in [off.as_str(), METADATA] {
        // POST /api/v1/byok, both shapes.
        for key in [service_account(bad, "us-central1"), vercel(bad, "us-central1")] {
            let (st, v) = s.g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "google-vertex", "key": key}))).await;
            assert_error(st, &v, 422);
            assert!(v["error"]["message"].as_str().unwrap().contains("token_uri"), "{v}");
            assert_no_secret(&v.to_string());
            // Test key of an unsaved credential takes the same check.
            let (st, v) = s.g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "google-vertex", "key": key}))).await;
            assert_error(st, &v, 422);
        }
    }
    let (_, listed) = s.g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(listed["total_count"], 0, "{listed}");

    // PATCH: a stored, working key can't be pointed elsewhere, and stays as it was.
    let id = s.g.add_byok(json!({"provider": "google-vertex", "key": service_account(&s.vertex.token_url(), "us-central1")})).await;
    for key in [service_account(&off, "us-central1"), vercel(&off, "us-central1"), service_account(METADATA, "us-central1")] {
        let (st, v) = s.g.mgmt("PATCH", &format!("/api/v1/byok/{id}"), Some(json!({"key": key}))).await;
        assert_error(st, &v, 422);
        assert!(v["error"]["message"].as_str().unwrap().contains("token_uri"), "{v}");
    }
    let (st, v, h) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(chat("google/gemini-2.5-flash", "google-vertex", false))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(h["x-keyway-credential"].to_str().unwrap(), id);

    // Request-scoped, body and header, both shapes.
    for key in [vercel(&off, "us-central1"), service_account(&off, "us-central1"), vercel(METADATA, "global")] {
        let body = json!({"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}],
                          "providerOptions": {"gateway": {"byok": {"vertex": [key.clone()]}}}});
        let (st, v, _) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(body)).await;
        assert_error(st, &v, 422);
        assert!(v["error"]["message"].as_str().unwrap().contains("token_uri"), "{v}");
        assert_no_secret(&v.to_string());
        let plain = json!({"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]});
        let (st, v, _) = post_with_header(&s.g, &s.key, &plain, &b64(&json!({"vertex": [key]}))).await;
        assert_error(st, &v, 422);
        assert!(v["error"]["message"].as_str().unwrap().contains("token_uri"), "{v}");
    }

    // Nothing ever reached the off-list endpoint; the allowed one served the one good request.
    assert_eq!(s.off_list.auth.token_requests(), 0);
    assert!(s.off_list.server.calls().is_empty());
    assert_eq!(s.vertex.auth.token_requests(), 1);
}

#[tokio::test]
async fn bedrock_chat_and_stream_with_region_choice_through_the_gateway() {
    const AKID: &str = "AKIAE2ETESTKEY000001";
    const AKID_EU: &str = "AKIAE2ETESTKEY0000EU";
    let fake = keyway_fakes::bedrock::start(
        FakeOptions::default(),
        keyway_fakes::bedrock::BedrockConfig::default().with_key(AKID, "e2e-global-secret").with_key(AKID_EU, "e2e-eu-secret"),
    )
    .await
    .unwrap();
    let g = Gateway::for_bedrock(&fake).await;
    let (key, _) = g.inference_key().await;
    let id = g
        .add_byok(json!({"provider": "amazon-bedrock", "key": [
            {"region": "global", "accessKeyId": AKID, "secretAccessKey": "e2e-global-secret"},
            {"region": "eu-west-1", "accessKeyId": AKID_EU, "secretAccessKey": "e2e-eu-secret"}]}))
        .await;
    let ask = |region: Option<&str>, stream: bool| {
        let mut b = json!({"model": "amazon/nova-micro-v1", "messages": [{"role": "user", "content": "hello there"}], "stream": stream});
        if let Some(r) = region {
            b["providerOptions"] = json!({"bedrock": {"region": r}});
        }
        b
    };
    // The catalog's default region (us-east-1), served by the `global` key set.
    let (st, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(ask(None, false))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!((h["x-keyway-provider"].to_str().unwrap(), h["x-keyway-credential"].to_str().unwrap()), ("amazon-bedrock", id.as_str()));
    assert_eq!(fake.calls()[0].path, "/us-east-1/model/amazon.nova-micro-v1%3A0/converse");
    assert_eq!(fake.calls()[0].key, AKID);
    // providerOptions.bedrock.region picks that region's key set; streamed over event-stream frames.
    let (st, _, text, done) = stream(&g, &key, ask(Some("eu-west-1"), true), None).await;
    assert_eq!((st, text.as_str(), done), (200, "Echo: hello there", true));
    assert_eq!(fake.calls()[1].path, "/eu-west-1/model/amazon.nova-micro-v1%3A0/converse-stream");
    assert_eq!(fake.calls()[1].key, AKID_EU);
    // Another region falls back to the global set.
    let (st, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(ask(Some("ap-south-1"), false))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((fake.calls()[2].path.as_str(), fake.calls()[2].key.as_str()), ("/ap-south-1/model/amazon.nova-micro-v1%3A0/converse", AKID));
    let l = logs();
    assert!(!l.contains("e2e-global-secret") && !l.contains("e2e-eu-secret"));
}

/// OpenRouter's, FastRouter's and Vercel's Bedrock shape `{accessKeyId, secretAccessKey, region}`:
/// the region is where the key's requests go (the fake checks the SigV4 scope), for chat and for
/// Test key; a request naming another region can't use it.
#[tokio::test]
async fn a_stored_bedrock_key_is_used_in_its_own_region() {
    const AKID: &str = "AKIAWESTKEY000000001";
    const SECRET: &str = "west-secret-value-123";
    let fake = keyway_fakes::bedrock::start(FakeOptions::default(), keyway_fakes::bedrock::BedrockConfig::default().with_key(AKID, SECRET))
        .await
        .unwrap();
    let g = Gateway::for_bedrock(&fake).await;
    let (key, _) = g.inference_key().await;
    let id = g.add_byok(json!({"provider": "AWS Bedrock", "key": {"accessKeyId": AKID, "secretAccessKey": SECRET, "region": "us-west-2"}})).await;
    let chat = |region: Option<&str>| {
        let mut b = json!({"model": "anthropic/claude-sonnet-4.5", "messages": [{"role": "user", "content": "hello there"}]});
        if let Some(r) = region {
            b["providerOptions"] = json!({"bedrock": {"region": r}});
        }
        b
    };
    for path in ["/v1/chat/completions", "/api/v1/chat/completions"] {
        let (st, v, h) = g.req("POST", path, Some(&key), Some(chat(None))).await;
        assert_eq!(st, 200, "{path}: {v}");
        assert_eq!(h["x-keyway-credential"].to_str().unwrap(), id.as_str(), "the BYOK key paid, not a system key");
    }
    let calls = fake.calls();
    assert!(calls.iter().all(|c| c.path.starts_with("/us-west-2/model/anthropic.claude-sonnet-4-5") && c.key == AKID), "{calls:?}");

    // Test key signs for the credential's region too.
    let (st, t) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((st, t["ok"].as_bool()), (200, Some(true)), "{t}");
    assert!(fake.calls().last().unwrap().path.starts_with("/us-west-2/"));

    // A request that names another region: this key has no set there, and no system key exists.
    let (st, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some("eu-west-1")))).await;
    assert!(st == 404 || st == 503 || st == 400, "{st} {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("region"), "{v}");
    assert!(!v.to_string().contains(SECRET));
}

/// `POST /api/v1/byok` with `"test": true`: Test key first; a key that fails is not stored (422
/// with the test result), one that passes is stored with the result beside it.
#[tokio::test]
async fn create_with_test_stores_only_a_key_that_passes() {
    const AKID: &str = "AKIATESTFIRST0000001";
    const SECRET: &str = "the-right-secret-456";
    let fake = keyway_fakes::bedrock::start(FakeOptions::default(), keyway_fakes::bedrock::BedrockConfig::default().with_key(AKID, SECRET))
        .await
        .unwrap();
    let g = Gateway::for_bedrock(&fake).await;
    let bad = json!({"provider": "amazon-bedrock", "name": "wrong", "test": true,
                     "key": {"accessKeyId": AKID, "secretAccessKey": "not-the-secret-789", "region": "us-west-2"}});
    for path in ["/api/v1/byok"] {
        let (st, v) = g.mgmt("POST", path, Some(bad.clone())).await;
        assert_eq!(st, 422, "{v}");
        assert_eq!(v["error"]["code"], 422, "{v}");
        assert_eq!(v["error"]["metadata"]["test"]["ok"], false, "{v}");
        assert!(v["error"]["metadata"]["test"]["status"].as_u64().is_some_and(|s| s == 403 || s == 401), "{v}");
        assert!(!v.to_string().contains("not-the-secret-789"));
    }
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 0, "nothing stored: {list}");

    let mut good = bad.clone();
    good["key"]["secretAccessKey"] = json!(SECRET);
    good["name"] = json!("right");
    let (st, v) = g.mgmt("POST", "/api/v1/byok", Some(good)).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["test"]["ok"], true, "{v}");
    assert_eq!(v["data"]["provider"], "amazon-bedrock");
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 1);
    // Without `test`, nothing is sent upstream at creation.
    let before = fake.calls().len();
    let (st, _) = g.mgmt("POST", "/api/v1/byok", Some(json!({"provider": "amazon-bedrock", "key": {"accessKeyId": AKID, "secretAccessKey": "unchecked-secret-000", "region": "us-west-2"}}))).await;
    assert_eq!(st, 201);
    assert_eq!(fake.calls().len(), before);
}
