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
    setup_with(|_| {}).await
}

async fn setup_with(tweak: impl Fn(&mut keyway_gateway::Config)) -> (keyway_fakes::FakeServer, Gateway) {
    let fake = keyway_fakes::openai::start(FakeOptions { record: false, ..FakeOptions::default() }).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        c.system_credentials.push(system_key("openai", "sk-system-operator-key"));
        tweak(c);
    })
    .await;
    (fake, g)
}

fn limits(v: Value) -> keyway_store::Limits {
    serde_json::from_value(v).unwrap()
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
    burst_keys(g, &[key.to_owned()], n, body).await
}

/// [`burst`] spread over several keys (request `i` uses key `i % keys.len()`).
async fn burst_keys(g: &Gateway, keys: &[String], n: usize, body: Value) -> Vec<(u16, Value, reqwest::header::HeaderMap)> {
    let url = g.url("/v1/chat/completions");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, key, body, barrier) = (url.clone(), keys[i % keys.len()].clone(), body.clone(), barrier.clone());
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
    let (_, body, h) = results.iter().find(|r| r.0 == 429).unwrap();
    assert_eq!(header(h, "retry-after"), "1");
    assert_eq!(header(h, "x-ratelimit-limit-concurrent"), "5");
    assert_eq!(header(h, "x-ratelimit-remaining-concurrent"), "0");
    assert!(body["error"]["message"].as_str().unwrap().contains("this key allows 5 concurrent"), "{body}");
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
    assert_eq!(header(&h, "x-ratelimit-limit-budget-micros"), "1");
    assert_eq!(header(&h, "x-ratelimit-remaining-budget-micros"), "0");
    assert!(header(&h, "x-ratelimit-reset-budget").ends_with('s'));
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

/// What a chat request may count toward a budget before it runs, as the gateway estimates it:
/// the prompt at 4 characters a token plus `max_tokens`, at gpt-4o-mini's $0.15 / $0.60 per Mtok.
fn mini_estimate(body: &Value) -> u64 {
    let (p, o) = keyway_gateway::estimate::demand_of(body.as_object().unwrap());
    let prices = keyway_core::pricing::Prices { input_per_mtok_micros: 150_000, output_per_mtok_micros: 600_000, cached_input_per_mtok_micros: Some(75_000), per_request_micros: 0 };
    keyway_core::pricing::estimate_micros(&prices, p, o)
}

#[tokio::test]
async fn monthly_budget_refuses_with_headers_until_the_month_ends() {
    let (_fake, g) = setup().await;
    let key = key_with(&g, json!({"budget_monthly_micros": 1})).await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("key's monthly budget"), "{v}");
    let wait: u64 = header(&h, "retry-after").parse().unwrap();
    let now = chrono::Utc::now();
    let next_month = keyway_core::pricing::Month::of(now.timestamp_millis()).next().start_ms();
    let until = (next_month - now.timestamp_millis()) / 1000;
    assert!(wait >= 1 && (wait as i64 - until).abs() <= 2, "retry after the UTC month ends: {wait} vs {until}");
    assert_eq!(header(&h, "x-ratelimit-limit-budget-micros"), "1");
    assert_eq!(header(&h, "x-ratelimit-remaining-budget-micros"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_per_minute_exact_under_200_concurrent_requests() {
    let (fake, g) = setup().await;
    let key = key_with(&g, json!({"tokens_per_minute": 1000})).await;
    let body = chat(Some(90));
    let (p, o) = keyway_gateway::estimate::demand_of(body.as_object().unwrap());
    let per_request = p + o;
    // Slow answers: every request is in flight (its reservation not yet corrected) at once.
    fake.set_fault(Fault::SlowFirstByte(Duration::from_millis(2000)));
    let results = burst(&g, &key, 200, body).await;
    fake.clear_faults();
    let ok = results.iter().filter(|r| r.0 == 200).count() as u64;
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok + limited.len() as u64, 200);
    // 1,000 tokens refill at 1 per 60 ms; the burst lasts well under one request's worth.
    assert_eq!(ok, 1000 / per_request, "{per_request} tokens reserved per request");
    let (_, v, h) = limited[0];
    assert!(v["error"]["message"].as_str().unwrap().contains("1000 tokens per minute for this key"), "{v}");
    assert_eq!(header(h, "x-ratelimit-limit-tokens"), "1000");
    assert_eq!(header(h, "x-ratelimit-remaining-tokens"), "0");
    assert!(header(h, "retry-after").parse::<u64>().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_overshoot_a_budget_by_at_most_one_estimate() {
    let (fake, g) = setup().await;
    let body = chat(Some(1000));
    let estimate = mini_estimate(&body);
    assert!(estimate > 500, "{estimate}");
    // Admitted while spent + held < budget: the budget's worth of estimates, plus the one that crosses it.
    let budget = 3 * estimate + estimate / 2;
    let key = key_with(&g, json!({"budget_daily_micros": budget})).await;
    fake.set_fault(Fault::SlowFirstByte(Duration::from_millis(2000)));
    let results = burst(&g, &key, 200, body.clone()).await;
    fake.clear_faults();
    let ok = results.iter().filter(|r| r.0 == 200).count() as u64;
    assert_eq!(ok, budget.div_ceil(estimate), "without reservations all 200 would pass the same check");
    let (_, v, h) = results.iter().find(|r| r.0 == 429).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("daily budget"), "{v}");
    assert_eq!(header(h, "x-ratelimit-limit-budget-micros"), budget.to_string());
    // The holds came back when the requests ended: what they really cost is far below the budget.
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workspace_requests_per_minute_exact_across_keys_under_200_concurrent_requests() {
    let (_fake, g) = setup_with(|c| c.limits.workspace_default = Some(limits(json!({"requests_per_minute": 40})))).await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(g.inference_key().await.0);
    }
    let t0 = Instant::now();
    let results = burst_keys(&g, &keys, 200, chat(None)).await;
    let elapsed = t0.elapsed();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok + limited.len(), 200);
    let refills = (elapsed.as_millis() / 1500) as usize;
    assert!(ok >= 40 && ok <= 40 + refills, "admitted {ok} in {elapsed:?}: the workspace's 40 are shared by its keys");
    let (_, v, h) = limited[0];
    assert!(v["error"]["message"].as_str().unwrap().contains("40 requests per minute for this workspace"), "{v}");
    assert!(header(h, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(header(h, "x-ratelimit-limit-requests"), "40");
    assert_eq!(header(h, "x-ratelimit-remaining-requests"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workspace_max_concurrent_exact_under_200_concurrent_requests() {
    let (fake, g) = setup_with(|c| c.limits.workspace_default = Some(limits(json!({"max_concurrent": 5})))).await;
    let keys = vec![g.inference_key().await.0, key_with(&g, json!({"max_concurrent": 100})).await];
    fake.set_fault(Fault::SlowFirstByte(Duration::from_millis(1500)));
    let results = burst_keys(&g, &keys, 200, chat(None)).await;
    fake.clear_faults();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(ok, 5, "the workspace's 5 slots are shared by its keys");
    let (_, v, h) = results.iter().find(|r| r.0 == 429).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("this workspace allows 5 concurrent"), "{v}");
    assert_eq!(header(h, "retry-after"), "1");
    assert_eq!(header(h, "x-ratelimit-limit-concurrent"), "5");
    // Every slot came back, for both keys.
    for k in &keys {
        let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(k), Some(chat(None))).await;
        assert_eq!(s, 200, "{v}");
    }
}

#[tokio::test]
async fn key_and_workspace_limits_both_apply_and_a_workspace_is_named_by_slug() {
    let (_fake, g) = setup_with(|c| {
        c.limits.workspaces.insert("default".into(), limits(json!({"requests_per_minute": 5, "tokens_per_minute": 100_000})));
        c.limits.workspace_default = Some(limits(json!({"requests_per_minute": 1})));
    })
    .await;
    let a = key_with(&g, json!({"requests_per_minute": 2})).await;
    let b = g.inference_key().await.0;
    let (s, _, h) = g.req("POST", "/v1/chat/completions", Some(&a), Some(chat(None))).await;
    assert_eq!(s, 200);
    // The headers show the tighter of the key's (2) and the workspace's (5) request limits.
    assert_eq!(header(&h, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), "1");
    assert_eq!(header(&h, "x-ratelimit-limit-tokens"), "100000");
    assert_eq!(g.req("POST", "/v1/chat/completions", Some(&a), Some(chat(None))).await.0, 200);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&a), Some(chat(None))).await;
    assert_eq!(s, 429);
    assert!(v["error"]["message"].as_str().unwrap().contains("for this key"), "{v}");
    // A key's refusal takes nothing from the workspace: 3 of its 5 are left for key b.
    for _ in 0..3 {
        let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&b), Some(chat(None))).await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&b), Some(chat(None))).await;
    assert_eq!(s, 429);
    assert!(v["error"]["message"].as_str().unwrap().contains("5 requests per minute for this workspace"), "{v}");
    assert_eq!(header(&h, "x-ratelimit-limit-requests"), "5");

    // Another workspace gets `workspace_default` (1 per minute), not the default workspace's entry.
    let (s, ws) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Other"}))).await;
    assert_eq!(s, 201, "{ws}");
    let (s, other) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "o", "workspace_id": ws["data"]["id"]}))).await;
    assert_eq!(s, 201, "{other}");
    let other = other["key"].as_str().unwrap();
    assert_eq!(g.req("POST", "/v1/chat/completions", Some(other), Some(chat(None))).await.0, 200);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(other), Some(chat(None))).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 requests per minute for this workspace"), "{v}");
}

#[tokio::test]
async fn workspace_budget_refuses_every_key_of_the_workspace() {
    let (_fake, g) = setup_with(|c| c.limits.workspace_default = Some(limits(json!({"budget_daily_micros": 1})))).await;
    let (a, _) = g.inference_key().await;
    let (b, _) = g.inference_key().await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&a), Some(chat(None))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&b), Some(chat(None))).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("workspace's daily budget"), "{v}");
    assert!((1..=86_400).contains(&header(&h, "retry-after").parse::<u64>().unwrap()));
    assert_eq!(header(&h, "x-ratelimit-limit-budget-micros"), "1");
}

#[tokio::test]
async fn a_workspace_refusal_gives_back_what_the_key_took() {
    let (_fake, g) = setup_with(|c| c.limits.workspace_default = Some(limits(json!({"tokens_per_minute": 100})))).await;
    let key = key_with(&g, json!({"requests_per_minute": 2})).await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(10)))).await;
    assert_eq!(s, 200, "{v}");
    // 100 tokens wanted (the whole workspace minute) while some are used: the workspace refuses...
    let body = chat(Some(93));
    let (p, o) = keyway_gateway::estimate::demand_of(body.as_object().unwrap());
    assert_eq!(p + o, 100);
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("100 tokens per minute for this workspace"), "{v}");
    assert_eq!(header(&h, "x-ratelimit-limit-tokens"), "100");
    // ...and the key's request cell comes back: its second request of the minute still runs.
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(10)))).await;
    assert_eq!(s, 200, "the refused request must not have used the key's cell: {v}");
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), "0");
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(10)))).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("2 requests per minute for this key"), "{v}");
}
