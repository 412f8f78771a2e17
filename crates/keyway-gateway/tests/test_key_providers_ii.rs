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
    let base = format!("{}/{{region}}", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("amazon-bedrock".into(), ProviderSettings { base_url: Some(base.clone()) });
    })
    .await;
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
