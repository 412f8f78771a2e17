//! `/metrics` end to end: numbers that need the real server (a failing database, the health
//! board after a real 429).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::Fault;
use serde_json::json;

async fn metrics(g: &Gateway) -> String {
    g.http.get(g.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

fn chat() -> serde_json::Value {
    json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "count me"}]})
}

#[tokio::test]
async fn a_database_failure_on_the_request_path_is_a_store_db_error() {
    let (_fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-metrics-0001").await;
    assert!(metrics(&g).await.contains("keyway_db_errors_total{source=\"store\"} 0"));
    // The database goes away; the key was never used, so its lookup must reach the store.
    g.state.store.close().await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat())).await;
    assert_error(s, &v, 500);
    let text = metrics(&g).await;
    assert!(text.contains("keyway_db_errors_total{source=\"store\"} 1"), "{text}");
}

#[tokio::test]
async fn cooldown_metrics_follow_the_health_board() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-metrics-0002").await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-metrics-one-01", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-metrics-two-02", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-metrics-one-01", Fault::RateLimit { retry_after_secs: 60 });
    for _ in 0..2 {
        let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat())).await;
        assert_eq!(s, 200, "{v}");
    }
    let text = metrics(&g).await;
    // One cooldown started (the second request skipped the cooling key), one fallback between the two ids.
    assert!(text.contains(&format!("keyway_cooldowns_total{{provider=\"openai\",credential=\"{k1}\",reason=\"rate_limited\"}} 1")), "{text}");
    assert!(
        text.contains(&format!("keyway_fallbacks_total{{from_provider=\"openai\",from_credential=\"{k1}\",to_provider=\"openai\",to_credential=\"{k2}\"}} 1")),
        "{text}"
    );
    assert!(text.contains("keyway_credentials_cooling{provider=\"openai\"} 1"), "{text}");
    // Replacing the key resets its health: the gauge reads the board, so it drops at once.
    let (s, v) = g.mgmt("PATCH", &format!("/api/v1/byok/{k1}"), Some(json!({"key": "sk-byok-metrics-new-03"}))).await;
    assert_eq!(s, 200, "{v}");
    let text = metrics(&g).await;
    assert!(text.contains("keyway_credentials_cooling{provider=\"openai\"} 0"), "{text}");
    assert!(!text.contains("sk-byok-metrics"), "no secret in /metrics");
}
