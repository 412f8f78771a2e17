//! `[upstream]` size caps: an answer past `max_answer_bytes`, or a stream event past
//! `max_event_bytes`, fails its attempt with a clear 502 and is not read further (memory stays
//! bounded), while answers under the caps pass whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use futures::StreamExt as _;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const SYSTEM: &str = "sk-system-operator-key";

fn chat(content: &str, stream: bool) -> serde_json::Value {
    json!({"model": "openai/gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

async fn capped(fake_url: String) -> (Gateway, String) {
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(fake_url.clone()) });
        c.system_credentials.push(system_key("openai", SYSTEM));
        c.upstream.max_answer_bytes = 64 * 1024;
        c.upstream.max_event_bytes = 16 * 1024;
    })
    .await;
    let (key, _) = g.inference_key().await;
    (g, key)
}

#[tokio::test]
async fn answers_and_events_over_the_caps_are_a_502_and_smaller_ones_pass() {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let (g, key) = capped(format!("{}/v1", fake.url())).await;
    // Under the caps: a 10 KiB echo, whole and streamed.
    let small = "s".repeat(10 * 1024);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(&small, false))).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains(&small));
    let (s, _, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(&small, true))).await;
    assert_eq!(s, 200);
    // Over: the fake echoes a 200 KiB prompt (past the 64 KiB answer cap)...
    let big = "b".repeat(200 * 1024);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(&big, false))).await;
    assert_error(s, &v, 502);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("max_answer_bytes"), "{msg}");
    // ... and streams it in four ~50 KiB events (past the 16 KiB event cap).
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(&big, true))).await;
    assert_error(s, &v, 502);
    assert!(v["error"]["message"].as_str().unwrap().contains("longer than 16384 bytes"), "{v}");
    // The OpenRouter base speaks its own shape for the same failure.
    let (s, v, _) = g.req("POST", "/api/v1/chat/completions", Some(&key), Some(chat(&big, false))).await;
    assert_eq!((s, v["error"]["code"].as_u64()), (502, Some(502)), "{v}");
}

/// An upstream that answers 200 with an endless chunked body (1 MiB a chunk, no
/// `Content-Length`), counting the chunks it was asked for.
async fn endless_upstream(pulled: Arc<AtomicUsize>, content_length: Option<u64>) -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let pulled = pulled.clone();
            async move {
                let chunk = bytes::Bytes::from(vec![b' '; 1024 * 1024]);
                let body = futures::stream::repeat_with(move || {
                    pulled.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(chunk.clone())
                })
                .take(300);
                let mut resp = axum::response::Response::new(axum::body::Body::from_stream(body));
                resp.headers_mut().insert("content-type", "application/json".parse().unwrap());
                if let Some(n) = content_length {
                    resp.headers_mut().insert("content-length", n.to_string().parse().unwrap());
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn a_300_mib_answer_is_refused_after_reading_about_the_cap() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let (g, key) = capped(endless_upstream(pulled.clone(), None).await).await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("hi", false))).await;
    assert_error(s, &v, 502);
    // 64 KiB cap, 1 MiB chunks: the first chunk is already over; a few more may sit in buffers.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let n = pulled.load(Ordering::Relaxed);
    assert!(n < 10, "the gateway kept reading a refused answer: {n} MiB pulled");
}

#[tokio::test]
async fn a_declared_300_mib_answer_is_refused_before_reading() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let (g, key) = capped(endless_upstream(pulled.clone(), Some(300 * 1024 * 1024)).await).await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("hi", false))).await;
    assert_error(s, &v, 502);
    assert!(v["error"]["message"].as_str().unwrap().contains("max_answer_bytes"), "{v}");
}
