//! Throughput with usage recording on vs off, same process, same fake upstream, interleaved
//! rounds so that a noisy machine affects both alike.
//!
//! `cargo run --release -p keyway-gateway --example usage_overhead -- [seconds_per_round] [rounds] [concurrency]`
//!
//! "On" is the gateway as `keyway serve` builds it (generation records batched into SQLite);
//! "off" swaps in `UsageRecorder::disabled()`. Both charge the in-memory ledger and check
//! limits (a key with generous limits), so the difference is the cost of recording itself.

use keyway_gateway::config::{ProviderSettings, SystemCredentialConfig};
use keyway_gateway::usage::UsageRecorder;
use keyway_gateway::{AppState, Config, SharedState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

const MGMT: &str = "kw-mgmt-bench-usage-overhead-0123456789";

async fn gateway(upstream: &str, record: bool, dir: &std::path::Path) -> Result<(String, SharedState), Error> {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        bootstrap_management_key: Some(MGMT.into()),
        log_format: "text".into(),
        ..Config::default()
    };
    cfg.providers.insert("openai".into(), ProviderSettings { base_url: Some(format!("{upstream}/v1")) });
    cfg.system_credentials.push(SystemCredentialConfig { provider: "openai".into(), key: "sk-bench-system".into(), name: None, zdr: false });
    let (state, _) = AppState::build(cfg).await?;
    let state = if record {
        state
    } else {
        let mut s = Arc::try_unwrap(state).map_err(|_| "state is shared")?;
        s.usage = UsageRecorder::disabled();
        Arc::new(s)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let st = state.clone();
    tokio::spawn(async move {
        let _ = keyway_gateway::serve(listener, st, std::future::pending()).await;
    });
    Ok((url, state))
}

async fn key(http: &reqwest::Client, url: &str) -> Result<String, Error> {
    let body = serde_json::json!({"name": "bench", "limits": {"requests_per_minute": 100_000_000u64, "max_concurrent": 10_000}});
    let v: serde_json::Value = http.post(format!("{url}/api/v1/keys")).bearer_auth(MGMT).json(&body).send().await?.json().await?;
    Ok(v["key"].as_str().ok_or("no key in the answer")?.to_owned())
}

/// Closed loop: `concurrency` workers send back to back for `secs`; returns requests per second.
async fn round(http: &reqwest::Client, url: &str, key: &str, secs: u64, concurrency: usize) -> Result<f64, Error> {
    let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}"#.to_vec();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let target = format!("{url}/v1/chat/completions");
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, target, key, body, stop, done, failed) = (http.clone(), target.clone(), key.to_owned(), body.clone(), stop.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = match http.post(&target).bearer_auth(&key).header("content-type", "application/json").body(body.clone()).send().await {
                        Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok { done.fetch_add(1, Ordering::Relaxed) } else { failed.fetch_add(1, Ordering::Relaxed) };
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    for w in workers {
        let _ = w.await;
    }
    if failed.load(Ordering::Relaxed) > 0 {
        return Err(format!("{} requests failed", failed.load(Ordering::Relaxed)).into());
    }
    Ok(n as f64 / elapsed)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let secs = args.first().copied().unwrap_or(5);
    let rounds = args.get(1).copied().unwrap_or(3);
    let concurrency = args.get(2).copied().unwrap_or(32) as usize;
    let fake = keyway_fakes::openai::start(keyway_fakes::server::FakeOptions { record: false, ..Default::default() }).await?;
    let (dir_on, dir_off) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (on_url, on_state) = gateway(&fake.url(), true, dir_on.path()).await?;
    let (off_url, _) = gateway(&fake.url(), false, dir_off.path()).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let (on_key, off_key) = (key(&http, &on_url).await?, key(&http, &off_url).await?);
    // Warm-up: connections, caches.
    round(&http, &on_url, &on_key, 1, concurrency).await?;
    round(&http, &off_url, &off_key, 1, concurrency).await?;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let a = round(&http, &on_url, &on_key, secs, concurrency).await?;
        let b = round(&http, &off_url, &off_key, secs, concurrency).await?;
        println!("round {}: usage on {a:.0} req/s, off {b:.0} req/s", r + 1);
        on.push(a);
        off.push(b);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (m_on, m_off) = (mean(&on), mean(&off));
    println!(
        "usage recording on: {m_on:.0} req/s, off: {m_off:.0} req/s, difference {:.1}% ({} cores, concurrency {concurrency}, {rounds} x {secs} s)",
        (m_off - m_on) / m_off * 100.0,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("rows recorded: {}, dropped: {}", on_state.usage.recorded(), on_state.usage.dropped());
    Ok(())
}
