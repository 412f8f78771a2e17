//! The real binary: a clean stop (SIGTERM) loses no usage row, and a low open-files limit
//! (`ulimit -n 256`) with hundreds of silent sockets still leaves `/health` answering.
#![allow(clippy::unwrap_used, clippy::panic, clippy::zombie_processes)]

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const MGMT: &str = "kw-mgmt-shutdown-test-0123456789abcdef";

/// `keyway serve` (through `sh -c` when `shell_prefix` is given, e.g. a `ulimit`).
async fn start(data: &Path, fake: &str, log: &Path, shell_prefix: Option<&str>) -> Server {
    let port = free_port();
    let mut cmd = match shell_prefix {
        Some(p) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{p}; exec \"$0\" serve")).arg(BIN);
            c
        }
        None => {
            let mut c = Command::new(BIN);
            c.arg("serve");
            c
        }
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("KEYWAY_LOG", "info")
        .env("KEYWAY_DATA_DIR", data)
        .env("KEYWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT)
        .env("KEYWAY_PROVIDERS__OPENAI__BASE_URL", format!("{fake}/v1"))
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap());
    let child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{url}/health")).await.is_ok_and(|r| r.status().is_success()) {
            return Server::new(child, url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keyway serve did not come up: {}", std::fs::read_to_string(log).unwrap_or_default());
}

fn sigterm(child: &Child) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_a_burst_of_400_loses_no_generation_row() {
    let fake = keyway_fakes::openai::start(keyway_fakes::server::FakeOptions { chunk_delay: Duration::from_millis(40), ..Default::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let mut server = start(&data, &fake.url(), &log, None).await;
    let http = reqwest::Client::new();
    let key: Value = http.post(format!("{}/api/v1/keys", server.url)).bearer_auth(MGMT).json(&json!({"name": "burst"})).send().await.unwrap().json().await.unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let byok = http.post(format!("{}/api/v1/byok", server.url)).bearer_auth(MGMT).json(&json!({"provider": "openai", "key": "sk-shutdown-test-0000AbCd"})).send().await.unwrap();
    assert_eq!(byok.status(), 201);

    // 400 at once, half streamed (each stream runs ~200 ms), then SIGTERM while they run.
    let url = format!("{}/v1/chat/completions", server.url);
    let mut tasks = Vec::new();
    for i in 0..400 {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": "openai/gpt-4o-mini", "stream": i % 2 == 0, "messages": [{"role": "user", "content": format!("burst {i}")}]});
            let r = http.post(url).bearer_auth(key).json(&body).send().await.ok()?;
            let id = r.headers().get("x-keyway-generation-id")?.to_str().ok()?.to_owned();
            let ok = r.status() == 200;
            let text = r.text().await.ok()?;
            // Answered: a 200 whose body arrived whole.
            (ok && (i % 2 == 1 || text.trim_end().ends_with("data: [DONE]"))).then_some(id)
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    sigterm(&server.child);
    let mut answered = Vec::new();
    for t in tasks {
        if let Some(id) = t.await.unwrap() {
            answered.push(id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(answered.len() >= 100, "too few requests were in flight to test anything: {}", answered.len());

    // Restart on the same data: every answered request's generation is there.
    let server = start(&data, &fake.url(), &log, None).await;
    let mut lost = Vec::new();
    for id in &answered {
        let r = http.get(format!("{}/api/v1/generation?id={id}", server.url)).bearer_auth(MGMT).send().await.unwrap();
        if r.status() != 200 {
            lost.push(id.clone());
        }
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(lost.is_empty(), "{} of {} answered generations lost: {lost:?}\n{logged}", lost.len(), answered.len());
    assert!(logged.contains("usage writer stopped"), "{logged}");
    eprintln!("answered before SIGTERM finished: {}, lost: 0", answered.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_ulimit_256_three_hundred_silent_sockets_leave_health_answering() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = start(&dir.path().join("data"), &fake.url(), &log, Some("ulimit -n 256")).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = tokio::net::TcpStream::connect(&addr).await {
            silent.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // /health answers within a couple of seconds (a shed slot frees every 2 s at the latest).
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(5) {
        if fresh.get(format!("{}/health", server.url)).timeout(Duration::from_secs(1)).send().await.is_ok_and(|r| r.status() == 200) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(ok, "/health did not answer under ulimit -n 256 with 300 silent sockets\n{logged}");
    assert!(logged.contains("max_connections lowered"), "{logged}");
    drop(silent);
}
