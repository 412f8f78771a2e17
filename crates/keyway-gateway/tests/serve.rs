//! The accept loop (`keyway_gateway::serve`): request heads up to 8 KiB and large bodies are
//! served, a bigger head is refused with 431, HTTP/2 with prior knowledge is still spoken, and
//! shutdown lets an in-flight stream finish while refusing new connections, and cuts one that
//! outlives the grace period (its usage still recorded).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use futures::StreamExt;
use keyway_fakes::server::FakeOptions;
use serde_json::json;
use std::time::Duration;

const SYSTEM: &str = "sk-system-operator-key";

fn chat(content: &str, stream: bool) -> serde_json::Value {
    json!({"model": "openai/gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

/// A gateway served by the real accept loop (`serve_with_grace`) on an ephemeral port, with
/// `fake` as its OpenAI upstream; stop it by sending on the returned sender.
async fn serving(
    fake: &keyway_fakes::FakeServer,
    grace: Option<Duration>,
) -> (std::net::SocketAddr, keyway_gateway::SharedState, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(format!("{}/v1", fake.url())) });
    cfg.system_credentials.push(system_key("openai", SYSTEM));
    let (state, _) = keyway_gateway::AppState::build(cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keyway_gateway::serve_with_grace(listener, state.clone(), async move {
        let _ = stop_rx.await;
    }, grace));
    (addr, state, stop_tx, server, dir)
}

#[tokio::test]
async fn heads_up_to_8k_and_large_bodies_are_served_and_a_bigger_head_is_431() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), SYSTEM).await;
    let send = |extra: usize, content: String| {
        let r = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).header("x-padding", "p".repeat(extra)).json(&chat(&content, false));
        async move { r.send().await.unwrap() }
    };
    // A ~7 KiB head (the padding header plus the request line and the other headers).
    let r = send(7 * 1024, "hello".into()).await;
    assert_eq!(r.status(), 200);
    // A 1 MiB prompt: read in 8 KiB steps, forwarded whole.
    let big = "x".repeat(1024 * 1024);
    let r = send(0, big.clone()).await;
    assert_eq!(r.status(), 200);
    let sent = fake.calls().last().unwrap().body.clone();
    assert_eq!(sent["messages"][0]["content"].as_str().map(str::len), Some(big.len()));
    // A 12 KiB head is refused before routing.
    let r = send(12 * 1024, "hello".into()).await;
    assert_eq!(r.status(), 431);
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let (_fake, g, key) = openai_gateway(FakeOptions::default(), SYSTEM).await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&chat("hi", false)).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hi");
}

#[tokio::test]
async fn shutdown_lets_an_open_stream_finish_and_accepts_nothing_new() {
    let fake = keyway_fakes::openai::start(FakeOptions { chunk_delay: Duration::from_millis(150), ..FakeOptions::default() }).await.unwrap();
    let (addr, _state, stop_tx, server, _dir) = serving(&fake, None).await;

    let http = reqwest::Client::new();
    let v: serde_json::Value = http.post(format!("http://{addr}/api/v1/keys")).bearer_auth(MGMT).json(&json!({"name": "t"})).send().await.unwrap().json().await.unwrap();
    let key = v["key"].as_str().unwrap().to_owned();
    let resp = http.post(format!("http://{addr}/v1/chat/completions")).bearer_auth(&key).json(&chat("one two three four", true)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");

    stop_tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = reqwest::Client::new().get(format!("http://{addr}/health")).timeout(Duration::from_secs(2)).send().await;
    assert!(refused.is_err(), "a new connection after shutdown was served: {refused:?}");

    let mut rest = first.to_vec();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(rest).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "the stream was cut: {text}");
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve returns once the stream ended").unwrap().unwrap();
}

#[tokio::test]
async fn a_stream_longer_than_the_grace_period_is_cut_and_still_recorded() {
    let fake = keyway_fakes::openai::start(FakeOptions { chunk_delay: Duration::from_millis(200), chunks: 20, ..FakeOptions::default() }).await.unwrap();
    let (addr, state, stop_tx, server, _dir) = serving(&fake, Some(Duration::from_millis(400))).await;

    let http = reqwest::Client::new();
    let v: serde_json::Value = http.post(format!("http://{addr}/api/v1/keys")).bearer_auth(MGMT).json(&json!({"name": "t"})).send().await.unwrap().json().await.unwrap();
    let key = v["key"].as_str().unwrap().to_owned();
    // Twenty chunks 200 ms apart: four seconds, ten times the grace period.
    let resp = http.post(format!("http://{addr}/v1/chat/completions")).bearer_auth(&key).json(&chat("a b c d e f g h i j k l m n o p q r s t", true)).send().await.unwrap();
    let id = resp.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    let stopped_at = std::time::Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server).await.expect("serve outlived its grace period").unwrap().unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(2), "{:?}", stopped_at.elapsed());
    // The client sees the stream end early; the gateway recorded what it served.
    while let Some(Ok(_)) = body.next().await {}
    assert!(state.usage.close(Duration::from_secs(5)).await);
    let row = state.store.get_generation(None, &id).await.expect("the cut stream left no generation row");
    assert!(row.streamed);
}

/// A client that hangs up cancels its request (the handler is polled by the connection task and
/// dropped with it): the key's one concurrency slot is free again at once, not when the slow
/// upstream answers. Guards any change that moves handlers off the connection task.
#[tokio::test]
async fn a_client_that_hangs_up_cancels_its_request_and_frees_its_slot() {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let (addr, _state, _stop_tx, _server, _dir) = serving(&fake, None).await;

    let http = reqwest::Client::new();
    let v: serde_json::Value = http
        .post(format!("http://{addr}/api/v1/keys"))
        .bearer_auth(MGMT)
        .json(&json!({"name": "one at a time", "limits": {"max_concurrent": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = v["key"].as_str().unwrap().to_owned();
    fake.fail_next(keyway_fakes::server::Fault::SlowFirstByte(Duration::from_secs(5)));
    let gave_up = http
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat("slow", false))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    // The gateway notices the closed connection on its next read; give it a moment.
    let mut status = 0;
    for _ in 0..20 {
        let resp = http.post(format!("http://{addr}/v1/chat/completions")).bearer_auth(&key).json(&chat("fast", false)).send().await.unwrap();
        status = resp.status().as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{:?}", resp.text().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the abandoned request still held the key's only slot");
}
