//! Per-key limits over real HTTP: requests and tokens per minute, concurrency (also held by a
//! stream until it ends), spend budgets. 429s carry `Retry-After` and `x-ratelimit-*` headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::Fault;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn chat(max_tokens: Option<u64>) -> Value {
    let mut v = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]});
    if let Some(m) = max_tokens {
        v["max_tokens"] = json!(m);
    }
    v
}

async fn setup() -> (keyway_fakes::FakeServer, Gateway) {
    let fake = keyway_fakes::openai::start(FakeOptions { record: false, ..FakeOptions::default() }).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", "sk-system-operator-key"));
    })
    .await;
    (fake, g)
}

async fn key_with(g: &Gateway, limits: Value) -> String {
    let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "limited", "limits": limits}))).await;
    assert_eq!(s, 201, "{v}");
    v["key"].as_str().unwrap().to_owned()
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("missing header {name}: {h:?}"))
}

/// Fires `n` requests at once (each on its own connection) and returns their statuses and headers.
async fn burst(g: &Gateway, key: &str, n: usize, body: Value) -> Vec<(u16, Value, reqwest::header::HeaderMap)> {
    let url = g.url("/v1/chat/completions");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (url, key, body, barrier) = (url.clone(), key.to_owned(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                barrier.wait().await;
                let r = client.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                (status, v, headers)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_per_minute_exact_under_200_concurrent_requests() {
    let (_fake, g) = setup().await;
    let key = key_with(&g, json!({"requests_per_minute": 50})).await;
    let t0 = Instant::now();
    let results = burst(&g, &key, 200, chat(None)).await;
    let elapsed = t0.elapsed();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok + limited.len(), 200, "only 200s and 429s: {:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    // The burst is 50; one more cell refills every 1.2 s while the burst is under way.
    let refills = (elapsed.as_millis() / 1200) as usize;
    assert!(ok >= 50 && ok <= 50 + refills, "admitted {ok} in {elapsed:?}: over-admission beyond the burst");

    let (_, body, h) = limited[0];
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(header(h, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(header(h, "x-ratelimit-limit-requests"), "50");
    assert_eq!(header(h, "x-ratelimit-remaining-requests"), "0");
    assert!(header(h, "x-ratelimit-reset-requests").ends_with('s'));

    // Admitted answers say what is left.
    let served = results.iter().find(|r| r.0 == 200).unwrap();
    assert_eq!(header(&served.2, "x-ratelimit-limit-requests"), "50");
    assert!(header(&served.2, "x-ratelimit-remaining-requests").parse::<u64>().unwrap() < 50);

    // The OpenRouter base renders the same refusal with an integer code.
    let (s, v, h) = g.req("POST", "/api/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(header(&h, "x-ratelimit-limit-requests"), "50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_concurrent_exact_under_200_concurrent_requests() {
    let (fake, g) = setup().await;
    let key = key_with(&g, json!({"max_concurrent": 5})).await;
    fake.set_fault(Fault::SlowFirstByte(Duration::from_millis(1500)));
    let results = burst(&g, &key, 200, chat(None)).await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let limited = results.iter().filter(|r| r.0 == 429).count();
    assert_eq!((ok, limited), (5, 195), "exactly max_concurrent slow requests run at once");
    fake.clear_faults();
    // Every slot came back.
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_ends() {
    let (fake, g) = setup().await;
    fake.set_options(|o| o.chunk_delay = Duration::from_millis(150));
    let key = key_with(&g, json!({"max_concurrent": 1})).await;
    let mut body = chat(None);
    body["stream"] = json!(true);
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 429, "the open stream holds the only slot: {v}");
    let text = resp.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    // The slot is released when the stream's body is dropped, just after its last frame.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tokens_per_minute_reserve_max_tokens() {
    let (_fake, g) = setup().await;
    let key = key_with(&g, json!({"tokens_per_minute": 200})).await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(150)))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(header(&h, "x-ratelimit-limit-tokens"), "200");
    // The answer used far fewer tokens than reserved; the difference is given back, so a second
    // request of the same size still fits only if the reservation was corrected.
    let used = v["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used < 50, "{v}");
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(150)))).await;
    assert_eq!(s, 200, "reservation corrected to real usage: {v}");
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(190)))).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(header(&h, "x-ratelimit-limit-tokens"), "200");
    assert_eq!(header(&h, "x-ratelimit-remaining-tokens"), "0");
    assert!(header(&h, "retry-after").parse::<u64>().unwrap() >= 1);
    assert!(v["error"]["message"].as_str().unwrap().contains("tokens per minute"));
}

#[tokio::test]
async fn daily_budget_refuses_once_spent() {
    let (_fake, g) = setup().await;
    let key = key_with(&g, json!({"budget_daily_micros": 1})).await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("daily budget"), "{v}");
    let wait: u64 = header(&h, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&wait), "retry after the UTC day ends: {wait}");
    // Keys without limits are untouched.
    let (free, _) = g.inference_key().await;
    let (s, _, h) = g.req("POST", "/v1/chat/completions", Some(&free), Some(chat(None))).await;
    assert_eq!(s, 200);
    assert!(h.get("x-ratelimit-limit-requests").is_none());
}

#[tokio::test]
async fn changed_limits_apply_after_the_key_cache_refreshes() {
    let (_fake, g) = setup().await;
    let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "k", "limits": {"requests_per_minute": 1}}))).await;
    assert_eq!(s, 201);
    let (key, hash) = (v["key"].as_str().unwrap().to_owned(), v["data"]["hash"].as_str().unwrap().to_owned());
    assert_eq!(g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await.0, 200);
    assert_eq!(g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await.0, 429);
    let (s, v) = g.mgmt("PATCH", &format!("/api/v1/keys/{hash}"), Some(json!({"limits": {"requests_per_minute": 100}}))).await;
    assert_eq!(s, 200, "{v}");
    // PATCH invalidates this node's key cache, so the new limit (a fresh window) applies at once.
    assert_eq!(g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await.0, 200);
}
