//! "Test key" for Bedrock (SigV4), Vertex (service-account OAuth) and AI Studio, through the
//! real server against fakes that check each provider's real authentication.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_gateway::config::ProviderSettings;
use serde_json::json;

const PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pem");
const PUBLIC_PEM: &str = include_str!("../../keyway-core/testdata/test-rsa-key.pub.pem");

#[tokio::test]
async fn test_key_bedrock_iam_signs_and_a_wrong_secret_fails() {
    let fake = keyway_fakes::bedrock::start(FakeOptions::default(), keyway_fakes::bedrock::BedrockConfig::default().with_key("AKIATESTKEY000000001", "right-secret"))
        .await
        .unwrap();
    let g = Gateway::for_bedrock(&fake).await;
    let ok = json!({"provider": "amazon-bedrock", "key": {"accessKeyId": "AKIATESTKEY000000001", "secretAccessKey": "right-secret", "region": "us-east-1"}});
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(ok)).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    assert!(v["request"].as_str().unwrap().contains("AWS4-HMAC-SHA256 ***"), "{v}");
    let bad = json!({"provider": "amazon-bedrock", "key": {"accessKeyId": "AKIATESTKEY000000001", "secretAccessKey": "wrong-secret", "region": "us-east-1"}});
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(bad)).await;
    assert_eq!(s, 200);
    assert_eq!((v["ok"].as_bool(), v["status"].as_u64()), (Some(false), Some(403)), "{v}");
    assert!(!v.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn test_key_vertex_service_account_and_gemini_api_key() {
    let vertex = keyway_fakes::vertex::start(FakeOptions::default()).await.unwrap();
    vertex.auth.register("sa@proj-9.iam.gserviceaccount.com", PUBLIC_PEM, Some("kid-9"), "proj-9");
    let gemini = keyway_fakes::gemini::start(FakeOptions { keys: ["AIza-test-key-0000001".to_owned()].into(), ..FakeOptions::default() }).await.unwrap();
    let (vt, gu) = (vertex.base_template(), gemini.url());
    let g = Gateway::start(|c| {
        c.providers.insert("google-vertex".into(), ProviderSettings { base_url: Some(vt.clone()) });
        c.providers.insert("google-ai-studio".into(), ProviderSettings { base_url: Some(gu.clone()) });
        c.security.allowed_upstream_hosts.push("127.0.0.1".into());
    })
    .await;
    let sa = json!({"type": "service_account", "project_id": "proj-9", "private_key_id": "kid-9", "private_key": PEM,
                    "client_email": "sa@proj-9.iam.gserviceaccount.com", "token_uri": vertex.token_url(), "location": "us-central1"});
    let id = g.add_byok(json!({"provider": "google-vertex", "key": sa})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    assert!(!v.to_string().contains("BEGIN PRIVATE KEY"));
    let (_, listed) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert_eq!(listed["data"]["label"], "sa@proj-9.iam.gserviceaccount.com");

    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "google-ai-studio", "key": "AIza-test-key-0000001"}))).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    let (_, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "google-ai-studio", "key": "AIza-wrong-key-000002"}))).await;
    assert_eq!(v["ok"], false, "{v}");
}

#[tokio::test]
async fn test_key_bedrock_api_key_bearer_good_and_bad() {
    const API_KEY: &str = "ABSKQmVkcm9ja0FQSUtleS1nYXRld2F5LXRlc3Q=";
    let fake = keyway_fakes::bedrock::start(FakeOptions { keys: [API_KEY.to_owned()].into(), ..FakeOptions::default() }, keyway_fakes::bedrock::BedrockConfig::default())
        .await
        .unwrap();
    let g = Gateway::for_bedrock(&fake).await;
    // Unsaved, as `{apiKey, region}`.
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "amazon-bedrock", "key": {"apiKey": API_KEY, "region": "us-west-2"}}))).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    let request = v["request"].as_str().unwrap();
    // Masked like every API key: a short prefix and the last four characters.
    assert!(request.contains("authorization: Bearer ABSK...c3Q='"), "{request}");
    assert!(request.contains("/us-west-2/model/"), "{request}");
    assert!(!v.to_string().contains(API_KEY));
    assert_eq!(fake.calls()[0].key, API_KEY);
    assert!(fake.calls()[0].headers.iter().any(|(k, v)| k == "authorization" && v == &format!("Bearer {API_KEY}")));

    // Stored, as a bare string (region from the default).
    let id = g.add_byok(json!({"provider": "amazon-bedrock", "key": API_KEY})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");

    // A wrong key: the fake's 403 AccessDeniedException, the key nowhere in the answer.
    let bad = "ABSKbm90LXRoZS1yaWdodC1iZWRyb2NrLWtleQ==";
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "amazon-bedrock", "key": {"apiKey": bad, "region": "us-east-1"}}))).await;
    assert_eq!(s, 200);
    assert_eq!((v["ok"].as_bool(), v["status"].as_u64()), (Some(false), Some(403)), "{v}");
    assert!(v.to_string().contains("API Key is valid"), "{v}");
    assert!(!v.to_string().contains(bad));
    let id = g.add_byok(json!({"provider": "amazon-bedrock", "key": bad})).await;
    let (_, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((v["ok"].as_bool(), v["status"].as_u64()), (Some(false), Some(403)), "{v}");
    assert!(!logs().contains(bad) && !logs().contains(API_KEY));
}

#[tokio::test]
async fn test_key_vertex_wrong_key_and_unsaved() {
    let vertex = keyway_fakes::vertex::start(FakeOptions::default()).await.unwrap();
    // The account's live key is `kid-live`; a service-account file naming another key id is a
    // deleted or rotated key, and Google refuses its assertion.
    vertex.auth.register("sa@proj-9.iam.gserviceaccount.com", PUBLIC_PEM, Some("kid-live"), "proj-9");
    let vt = vertex.base_template();
    let g = Gateway::start(|c| {
        c.providers.insert("google-vertex".into(), ProviderSettings { base_url: Some(vt.clone()) });
        c.security.allowed_upstream_hosts.push("127.0.0.1".into());
    })
    .await;
    let sa = |kid: &str| {
        json!({"type": "service_account", "project_id": "proj-9", "private_key_id": kid, "private_key": PEM,
               "client_email": "sa@proj-9.iam.gserviceaccount.com", "token_uri": vertex.token_url(), "location": "us-central1"})
    };
    let pem_line = PEM.lines().find(|l| !l.starts_with("-----") && l.len() > 40).unwrap();
    let clean = |v: &serde_json::Value| {
        let t = v.to_string();
        assert!(!t.contains("PRIVATE KEY") && !t.contains(pem_line), "a private key leaked: {t}");
    };

    // Stored, wrong key: ok false with the token endpoint's own status and answer.
    let id = g.add_byok(json!({"provider": "google-vertex", "key": sa("kid-rotated")})).await;
    let (s, v) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!(s, 200);
    assert_eq!((v["ok"].as_bool(), v["status"].as_u64(), v["error_class"].as_str()), (Some(false), Some(400), Some("auth")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("Invalid JWT Signature"), "{v}");
    assert_eq!(v["response"]["error"], "invalid_grant", "{v}");
    clean(&v);
    assert_eq!(vertex.auth.tokens_issued(), 0);
    assert!(vertex.server.calls().is_empty(), "no model call without a token");

    // Unsaved: the same refusal, then the right key passes (service-account and Vercel shapes).
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "google-vertex", "key": sa("kid-rotated")}))).await;
    assert_eq!((s, v["ok"].as_bool(), v["status"].as_u64()), (200, Some(false), Some(400)), "{v}");
    clean(&v);
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "google-vertex", "key": sa("kid-live")}))).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    assert!(v["request"].as_str().unwrap().contains(&vertex.token_url()), "{v}");
    clean(&v);
    let vercel = json!({"project": "proj-9", "location": "europe-west4",
                        "googleCredentials": {"privateKey": PEM, "clientEmail": "sa@proj-9.iam.gserviceaccount.com", "privateKeyId": "kid-live", "tokenUri": vertex.token_url()}});
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(json!({"provider": "google-vertex", "key": vercel}))).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    assert!(vertex.server.calls().last().unwrap().path.starts_with("/europe-west4/v1/projects/proj-9/locations/europe-west4/"));
    // Claude on Vertex through Test key's `model` / `region` override.
    let body = json!({"provider": "google-vertex", "key": sa("kid-live"), "model": "claude-haiku-4-5@20251001", "region": "us-east5"});
    let (s, v) = g.mgmt("POST", "/api/v1/byok/test", Some(body)).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    assert!(vertex.server.calls().last().unwrap().path.ends_with("/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict"));
    // Nothing unsaved was stored.
    let (_, listed) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(listed["total_count"], 1, "{listed}");
    assert!(!logs().contains(pem_line));
}
