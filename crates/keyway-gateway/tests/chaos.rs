//! Chaos against the fakes (loopback, bounded): upstream 429 storms, 500s, black-holed answers,
//! streams cut or stalled mid-way, broken JSON, plus silent client connections, under 300
//! requests 40 at a time. Every client gets an answer or a clean error in the API's shape, the
//! gateway keeps answering other traffic, memory stays bounded, and every request leaves
//! exactly one generation row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use futures::StreamExt;
use keyway_fakes::server::{Fault, FakeOptions};
use serde_json::json;
use std::time::{Duration, Instant};

const REQUESTS: usize = 300;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_upstream_faults_every_client_gets_an_answer_and_every_request_one_row() {
    let fake = keyway_fakes::openai::start(FakeOptions { chunk_delay: Duration::from_millis(5), ..FakeOptions::default() }).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", "sk-system-chaos-0000"));
        // Black holes and stalls fail in half a second, not two minutes.
        c.timeouts.first_byte_ms = 500;
        c.timeouts.idle_ms = 500;
        c.server.idle_timeout_ms = 2_000;
    })
    .await;
    for k in ["sk-byok-chaos-one-0000", "sk-byok-chaos-two-0000"] {
        g.add_byok(json!({"provider": "openai", "key": k})).await;
    }
    let (key, _) = g.inference_key().await;
    // Two of every three upstream calls meet a fault, in a fixed rotation.
    let faults = [
        Fault::RateLimit { retry_after_secs: 1 },
        Fault::ServerError,
        Fault::SlowFirstByte(Duration::from_secs(5)),
        Fault::CutStream,
        Fault::StallMidStream(Duration::from_secs(5)),
        Fault::InvalidJson,
        Fault::EndStreamEarly,
    ];
    for i in 0..REQUESTS * 3 {
        if i % 3 != 2 {
            fake.fail_next(faults[i % faults.len()].clone());
        }
    }
    let silent: Vec<_> = futures::future::join_all((0..50).map(|_| tokio::net::TcpStream::connect(g.addr))).await;
    let rss_before = rss_kib();

    let started = Instant::now();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let url = g.url("/v1/chat/completions");
    let outcomes: Vec<(u16, bool)> = futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let stream = i % 2 == 0;
                let body = json!({"model": "openai/gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": format!("chaos {i} one two three")}]});
                let r = http.post(&url).bearer_auth(&key).json(&body).send().await.expect("no answer at all");
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                // An answer (whole) or a clean error in the API's shape.
                let clean = match (status, stream) {
                    (200, true) => text.trim_end().ends_with("data: [DONE]") || text.contains("\"error\""),
                    (200, false) => serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["choices"][0]["message"].is_object()),
                    _ => serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["error"]["message"].is_string()),
                };
                (status, clean)
            }
        })
        .buffer_unordered(40)
        .collect()
        .await;
    let took = started.elapsed();
    // Other traffic is still answered at once.
    let t = Instant::now();
    assert_eq!(g.http.get(g.url("/health")).send().await.unwrap().status(), 200);
    assert!(t.elapsed() < Duration::from_millis(500));

    let unclean: Vec<_> = outcomes.iter().filter(|(_, clean)| !clean).collect();
    assert!(unclean.is_empty(), "{} answers were neither whole nor a clean error: {unclean:?}", unclean.len());
    let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let mut by_status = std::collections::BTreeMap::new();
    for (s, _) in &outcomes {
        *by_status.entry(*s).or_insert(0) += 1;
    }
    assert!(outcomes.iter().all(|(s, _)| [200, 429, 502, 503, 504].contains(s)), "{by_status:?}");
    assert!(ok > REQUESTS / 2, "fallback should serve most requests: {by_status:?}");

    // Every request, served or not, leaves exactly one generation row.
    assert!(g.state.usage.close(Duration::from_secs(10)).await);
    let ws = g.state.store.get_workspace("default").await.unwrap().id;
    let rows = g.state.store.count_generations(&ws).await.unwrap();
    assert_eq!(rows as usize, REQUESTS, "generation rows for {REQUESTS} requests; statuses {by_status:?}");
    assert_eq!(g.state.usage.dropped(), 0);

    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 256, "memory grew by {grown_mib} MiB");
    drop(silent);
    eprintln!("chaos: {REQUESTS} requests in {took:?}, statuses {by_status:?}, rows {rows}, rss +{grown_mib} MiB");
}
