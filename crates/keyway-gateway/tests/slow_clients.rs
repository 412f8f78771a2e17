//! Slow and silent clients (`[server]`): hundreds of connections that send nothing, half a
//! request head, or a head and a trickle of body don't keep a normal client waiting, and are
//! closed once their deadline passes; past `max_connections` a new connection is answered 503
//! while `/health` still answers 200.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SYSTEM: &str = "sk-system-operator-key";

async fn gateway(tweak: impl Fn(&mut keyway_gateway::Config)) -> (keyway_fakes::FakeServer, Gateway, String) {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", SYSTEM));
        tweak(c);
    })
    .await;
    let (key, _) = g.inference_key().await;
    (fake, g, key)
}

fn chat() -> serde_json::Value {
    json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

/// Reads until the peer closes (Ok with what it sent) or `within` passes (Err).
async fn closed_within(s: &mut TcpStream, within: Duration) -> Result<String, ()> {
    let mut got = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut got)).await {
        Ok(_) => Ok(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => Err(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_sent_and_slow_body_connections_are_closed_and_a_normal_client_is_served_at_once() {
    let (_fake, g, key) = gateway(|c| {
        c.server.header_read_timeout_ms = 600;
        c.server.idle_timeout_ms = 900;
        c.server.body_read_timeout_ms = 600;
    })
    .await;
    let (mut silent, mut half, mut slow_body) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..200 {
        silent.push(TcpStream::connect(g.addr).await.unwrap());
    }
    for _ in 0..100 {
        let mut s = TcpStream::connect(g.addr).await.unwrap();
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ").await.unwrap();
        half.push(s);
    }
    for _ in 0..100 {
        let mut s = TcpStream::connect(g.addr).await.unwrap();
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\":");
        s.write_all(head.as_bytes()).await.unwrap();
        slow_body.push(s);
    }
    // 400 connections hold nothing a normal client needs.
    let started = Instant::now();
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&chat()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(500), "a normal client waited {:?}", started.elapsed());

    // Each kind is closed once its deadline passes (with slack for a loaded machine).
    let within = Duration::from_secs(5);
    for s in &mut silent {
        closed_within(s, within).await.expect("a silent connection was still open");
    }
    for s in &mut half {
        closed_within(s, within).await.expect("a half-sent head was still open");
    }
    for s in &mut slow_body {
        let answer = closed_within(s, within).await.expect("a slow body was still open");
        assert!(answer.starts_with("HTTP/1.1 408"), "a slow body got {answer:?}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    // And a keep-alive connection idle past idle_timeout_ms is closed too.
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    closed_within(&mut s, within).await.expect("an idle keep-alive connection was still open");
    assert!(idle_from.elapsed() >= Duration::from_millis(800), "closed before the idle timeout: {:?}", idle_from.elapsed());

    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&chat()).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    let fake = keyway_fakes::openai::start(FakeOptions { chunk_delay: Duration::from_millis(200), ..FakeOptions::default() }).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", SYSTEM));
        c.server.header_read_timeout_ms = 300;
        c.server.idle_timeout_ms = 300;
    })
    .await;
    let (key, _) = g.inference_key().await;
    // A stream that lasts well past both timeouts (a chunk per word, 200 ms apart).
    let body = json!({"model": "openai/gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "one two three four five six"}]});
    let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "the stream was cut: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_get_503_and_health_still_answers() {
    let (_fake, g, key) = gateway(|c| {
        c.server.max_connections = 20;
        c.server.idle_timeout_ms = 60_000;
    })
    .await;
    // 21 silent connections (and reqwest's pooled one from creating the key) fill the 20 slots
    // and take up to 2 of the 4 shed slots; fresh clients below get the others.
    let mut held = Vec::new();
    for _ in 0..21 {
        held.push(TcpStream::connect(g.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let health = fresh().get(g.url("/health")).timeout(Duration::from_secs(3)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let r = fresh().post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&chat()).timeout(Duration::from_secs(3)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    // The OpenRouter base answers in its own shape (an integer code).
    let r = fresh().get(g.url("/api/v1/models")).timeout(Duration::from_secs(3)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 503, "{v}");
    // Room again once the held connections go.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = fresh().post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&chat()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = fresh().get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("keyway_connections_shed_total ") && !l.ends_with(" 0")), "{metrics}");
}
