//! Usage, cost and credits over real HTTP: every generation recorded with its cost and fee,
//! the BYOK waiver and fee, fallback to system at full price, 402 when credits run out,
//! streaming usage, the generation and activity endpoints, and a 10,000-request burst.
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

async fn start(system: bool, tweak: impl Fn(&mut keyway_gateway::Config)) -> (keyway_fakes::FakeServer, Gateway) {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), keyway_gateway::config::ProviderSettings { base_url: Some(base.clone()) });
        if system {
            c.system_credentials.push(system_key("openai", "sk-system-operator-key"));
        }
        tweak(c);
    })
    .await;
    (fake, g)
}

/// gpt-4o-mini at $0.15 / $0.60 per Mtok, rounded half up to the micro (computed here by hand).
fn mini_cost(v: &Value) -> i64 {
    let p = v["usage"]["prompt_tokens"].as_i64().unwrap();
    let c = v["usage"]["completion_tokens"].as_i64().unwrap();
    let scaled = p * 150_000 + c * 600_000;
    scaled / 1_000_000 + i64::from(scaled % 1_000_000 >= 500_000)
}

/// The generation as the API shows it, once the usage writer has stored it.
async fn generation(g: &Gateway, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v, _) = g.req("GET", &format!("/api/v1/generation?id={id}"), Some(key), None).await;
        if s == 200 {
            return v["data"].clone();
        }
        assert_eq!(s, 404, "{v}");
        assert!(Instant::now() < deadline, "generation {id} never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key OpenRouter's SDK requires of a generation (nullable ones may be null).
const OPENROUTER_KEYS: &[&str] = &[
    "id", "upstream_id", "total_cost", "cache_discount", "upstream_inference_cost", "created_at", "model", "app_id", "streamed",
    "cancelled", "provider_name", "latency", "moderation_latency", "generation_time", "finish_reason", "tokens_prompt",
    "tokens_completion", "native_tokens_prompt", "native_tokens_completion", "native_tokens_completion_images",
    "native_tokens_reasoning", "native_tokens_cached", "num_media_prompt", "num_input_audio_prompt", "num_media_completion",
    "num_search_results", "origin", "usage", "is_byok", "native_finish_reason", "external_user", "api_type", "router",
    "provider_responses",
];

#[tokio::test]
async fn system_generation_costs_the_catalog_price_and_reads_back_as_openrouter_does() {
    let (_fake, g) = start(true, |_| {}).await;
    let (key, hash) = g.inference_key().await;
    let mut body = chat(None);
    body["user"] = json!("end-user-7");
    let resp = g
        .http
        .post(g.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("HTTP-Referer", "https://app.example")
        .header("X-Title", "Example App")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    let d = generation(&g, &key, id).await;
    for k in OPENROUTER_KEYS {
        assert!(d.get(*k).is_some(), "generation lacks `{k}`: {d}");
    }
    let cost = mini_cost(&v);
    assert!(cost > 0);
    assert_eq!(d["cost_micros"], cost);
    assert_eq!(d["fee_micros"], 0);
    assert_eq!(d["total_cost"].as_f64().unwrap(), cost as f64 / 1e6);
    assert_eq!(d["usage"].as_f64().unwrap(), cost as f64 / 1e6);
    assert_eq!(d["is_byok"], false);
    assert_eq!(d["upstream_inference_cost"], Value::Null);
    assert_eq!(d["credential_id"], "system");
    assert_eq!(d["provider_name"], "OpenAI");
    assert_eq!(d["model"], "openai/gpt-4o-mini");
    assert_eq!(d["streamed"], false);
    assert_eq!(d["tokens_prompt"], v["usage"]["prompt_tokens"]);
    assert_eq!(d["tokens_completion"], v["usage"]["completion_tokens"]);
    assert_eq!(d["native_tokens_cached"], 0);
    assert_eq!(d["finish_reason"], "stop");
    assert_eq!(d["origin"], "https://app.example");
    assert_eq!(d["http_referer"], "https://app.example");
    assert_eq!(d["app_title"], "Example App");
    assert_eq!(d["external_user"], "end-user-7");
    assert_eq!(d["api_key_hash"], hash);
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(d["attempts"][0]["status"], 200);
    assert_eq!(d["provider_responses"][0]["status"], 200);
    assert!(d["created_at"].as_str().unwrap().ends_with('Z'));

    // Management keys read it too; a key of another workspace does not.
    let (s, _, _) = g.req("GET", &format!("/api/v1/generation?id={id}"), Some(MGMT), None).await;
    assert_eq!(s, 200);
    let (s, ws) = g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Other"}))).await;
    assert_eq!(s, 201, "{ws}");
    let (s, other) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "o", "workspace_id": ws["data"]["id"]}))).await;
    assert_eq!(s, 201, "{other}");
    let (s, v, _) = g.req("GET", &format!("/api/v1/generation?id={id}"), other["key"].as_str(), None).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], 404);
    let (s, _, _) = g.req("GET", "/api/v1/generation", Some(&key), None).await;
    assert_eq!(s, 400);

    // The workspace's credits show the usage (credits are off, so the balance goes negative).
    let (s, c, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["data"]["used_this_month_micros"], cost);
    assert_eq!(c["data"]["balance_micros"], -cost);
    assert_eq!(c["data"]["total_credits"].as_f64().unwrap(), 0.0);
    assert_eq!(c["data"]["total_usage"].as_f64().unwrap(), cost as f64 / 1e6);
    assert_eq!(c["data"]["credits_enabled"], false);
}

#[tokio::test]
async fn byok_fee_after_the_waiver_and_fallback_to_system_at_full_price() {
    let (fake, g) = start(true, |c| {
        c.billing.byok_free_requests_per_month = 1;
        c.billing.byok_fee_percent = 5;
    })
    .await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-user-key-0001"})).await;
    let mut charged = 0i64;

    // 1st BYOK request of the month: waived.
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!((s, h["x-keyway-byok"].to_str().unwrap()), (200, "true"), "{v}");
    let d = generation(&g, &key, v["id"].as_str().unwrap()).await;
    assert_eq!((d["cost_micros"].as_i64().unwrap(), d["fee_micros"].as_i64().unwrap()), (mini_cost(&v), 0));
    assert_eq!(d["is_byok"], true);
    assert_eq!(d["total_cost"].as_f64().unwrap(), 0.0);
    assert_eq!(d["upstream_inference_cost"].as_f64().unwrap(), mini_cost(&v) as f64 / 1e6);

    // 2nd: 5% of the catalog cost, rounded half up.
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 200);
    let cost = mini_cost(&v);
    let fee = (cost * 5 + 50) / 100;
    let d = generation(&g, &key, v["id"].as_str().unwrap()).await;
    assert_eq!((d["cost_micros"].as_i64().unwrap(), d["fee_micros"].as_i64().unwrap()), (cost, fee));
    assert_eq!(d["charged_micros"].as_i64().unwrap(), fee);
    charged += fee;

    // The BYOK key is rate limited upstream: the system key serves, at the full price.
    fake.set_fault_for_key("sk-byok-user-key-0001", Fault::RateLimit { retry_after_secs: 30 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!((s, h["x-keyway-credential"].to_str().unwrap()), (200, "system"), "{v}");
    let d = generation(&g, &key, v["id"].as_str().unwrap()).await;
    let cost = mini_cost(&v);
    assert_eq!((d["cost_micros"].as_i64().unwrap(), d["fee_micros"].as_i64().unwrap(), d["is_byok"].as_bool()), (cost, 0, Some(false)));
    assert_eq!(d["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(d["attempts"][0]["status"], 429);
    charged += cost;

    let (_, c, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert_eq!(c["data"]["used_this_month_micros"].as_i64().unwrap(), charged, "{c}");
    assert_eq!(c["data"]["byok_requests_this_month"], 2);

    // Activity agrees: by credential, BYOK cost and fee apart from system cost.
    let (s, a, _) = g.req("GET", "/api/v1/activity?group_by=credential", Some(MGMT), None).await;
    assert_eq!(s, 200, "{a}");
    let rows = a["data"].as_array().unwrap();
    let sum: i64 = rows.iter().map(|r| r["charged_micros"].as_i64().unwrap()).sum();
    assert_eq!(sum, charged);
    let system = rows.iter().find(|r| r["credential_id"] == "system").unwrap();
    assert_eq!(system["requests"], 1);
}

#[tokio::test]
async fn credits_on_refuse_with_402_until_topped_up() {
    let (_fake, g) = start(true, |c| c.billing.credits_enabled = true).await;
    let (key, _) = g.inference_key().await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(10)))).await;
    assert_error(s, &v, 402);
    assert_eq!(v["error"]["type"], "insufficient_quota");
    assert_eq!(v["error"]["code"], "insufficient_quota");
    let (s, v, _) = g.req("POST", "/api/v1/chat/completions", Some(&key), Some(chat(Some(10)))).await;
    assert_eq!((s, v["error"]["code"].as_i64()), (402, Some(402)), "OpenRouter's integer code: {v}");

    // Only an admin management key tops up; inference keys can't.
    let (s, _, _) = g.req("POST", "/api/v1/credits", Some(&key), Some(json!({"amount_micros": 1000}))).await;
    assert_eq!(s, 403);
    let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": 0}))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": 1000, "note": "trial"}))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["data"]["balance_micros"], 1000);
    assert_eq!(v["data"]["total_credits"].as_f64().unwrap(), 0.001);

    // The estimate (max_tokens at the output price) must fit: 100,000 x $0.60/Mtok = 60,000 micros.
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(100_000)))).await;
    assert_error(s, &v, 402);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(10)))).await;
    assert_eq!(s, 200, "{v}");
    let cost = mini_cost(&v);
    let (_, c, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert_eq!(c["data"]["balance_micros"].as_i64().unwrap(), 1000 - cost, "{c}");
    assert_eq!(c["data"]["total_usage"].as_f64().unwrap(), cost as f64 / 1e6);
    assert_eq!(c["data"]["used_this_month_micros"].as_i64().unwrap(), cost);
}

#[tokio::test]
async fn byok_requests_need_a_positive_balance_too() {
    // No system key: every attempt is BYOK and within the waiver, so the estimate is 0.
    let (_fake, g) = start(false, |c| c.billing.credits_enabled = true).await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-user-key-0002"})).await;
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(10)))).await;
    assert_error(s, &v, 402);
    let (s, _) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": 1}))).await;
    assert_eq!(s, 201);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(Some(100_000)))).await;
    assert_eq!(s, 200, "a waived BYOK request costs nothing: {v}");
    let (_, c, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert_eq!(c["data"]["balance_micros"], 1, "{c}");
}

#[tokio::test]
async fn streaming_usage_is_recorded_and_charged() {
    let (_fake, g) = start(true, |_| {}).await;
    let (key, _) = g.inference_key().await;
    let mut body = chat(None);
    body["stream"] = json!(true);
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    let d = generation(&g, &key, &id).await;
    assert_eq!(d["streamed"], true);
    assert_eq!(d["cancelled"], false);
    let (p, c) = (d["tokens_prompt"].as_i64().unwrap(), d["tokens_completion"].as_i64().unwrap());
    assert!(p > 0 && c > 0, "{d}");
    let scaled = p * 150_000 + c * 600_000;
    assert_eq!(d["cost_micros"].as_i64().unwrap(), scaled / 1_000_000 + i64::from(scaled % 1_000_000 >= 500_000));
    assert!(d["ttft_ms"].is_number());
    assert!(d["generation_time"].is_number());
    assert_eq!(d["finish_reason"], "stop");
}

#[tokio::test]
async fn activity_json_and_csv() {
    let (_fake, g) = start(true, |_| {}).await;
    let (key, hash) = g.inference_key().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
        assert_eq!(s, 200);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        generation(&g, &key, id).await;
    }
    // Default: OpenRouter's activity items.
    let (s, a, _) = g.req("GET", "/api/v1/activity", Some(MGMT), None).await;
    assert_eq!(s, 200, "{a}");
    let row = &a["data"][0];
    for k in ["date", "model", "model_permaslug", "endpoint_id", "provider_name", "usage", "byok_usage_inference", "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens"] {
        assert!(row.get(k).is_some(), "activity item lacks `{k}`: {row}");
    }
    assert_eq!(row["requests"], 3);
    assert_eq!(row["provider_name"], "OpenAI");
    let (_, a, _) = g.req("GET", "/api/v1/activity?group_by=key", Some(MGMT), None).await;
    assert_eq!(a["data"][0]["api_key_hash"], hash);
    let (_, a, _) = g.req("GET", "/api/v1/activity?group_by=day", Some(MGMT), None).await;
    assert_eq!(a["data"][0]["date"].as_str().unwrap(), chrono::Utc::now().format("%Y-%m-%d").to_string());
    let (s, _, _) = g.req("GET", "/api/v1/activity?group_by=color", Some(MGMT), None).await;
    assert_eq!(s, 400);
    let (s, _, _) = g.req("GET", "/api/v1/activity?from=2030-01-01&to=2020-01-01", Some(MGMT), None).await;
    assert_eq!(s, 400);
    let (s, _, _) = g.req("GET", "/api/v1/activity", Some(&key), None).await;
    assert_eq!(s, 403, "inference keys don't read activity");

    let resp = g.http.get(g.url("/api/v1/activity?group_by=model&format=csv")).bearer_auth(MGMT).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("date,model,provider,"), "{csv}");
    assert!(lines[1].starts_with(",openai/gpt-4o-mini,,,,3,3,"), "{csv}");
}

/// 10,000 requests through Keyway's HTTP server; every one must become a stored row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_rows_complete_after_a_burst_of_10000_requests() {
    let (_fake, g, key) = openai_gateway(FakeOptions { record: false, ..FakeOptions::default() }, "sk-system-operator-key").await;
    const N: usize = 10_000;
    const CONCURRENCY: usize = 64;
    let t0 = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = g.url("/v1/chat/completions");
    let body = serde_json::to_vec(&chat(None)).unwrap();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, url, key, body, http) = (next.clone(), url.clone(), key.clone(), body.clone(), g.http.clone());
            tokio::spawn(async move {
                let mut ok = 0usize;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < N {
                    let r = http.post(&url).bearer_auth(&key).header("content-type", "application/json").body(body.clone()).send().await.unwrap();
                    if r.status() == 200 {
                        ok += 1;
                    }
                    let _ = r.bytes().await.unwrap();
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for w in workers {
        ok += w.await.unwrap();
    }
    let sent = t0.elapsed();
    assert_eq!(ok, N);
    let ws = g.state.store.list_workspaces().await.unwrap().into_iter().find(|w| w.slug == "default").unwrap().id;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = g.state.store.count_generations(&ws).await.unwrap();
        if n == N as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} of {N} rows after 30 s (dropped: {})", g.state.usage.dropped());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(g.state.usage.dropped(), 0);
    // Every row is complete, not only counted: tokens, cost from those tokens, the credential.
    let rows = g.state.store.list_generations(&ws).await.unwrap();
    assert_eq!(rows.len(), N);
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), N, "one row per request");
    for r in &rows {
        assert_eq!((r.status, r.provider.as_deref(), r.credential_id.as_deref(), r.model.as_deref()), (200, Some("openai"), Some("system"), Some("openai/gpt-4o-mini")), "{r:?}");
        assert!(r.has_usage && r.prompt_tokens > 0 && r.completion_tokens > 0, "{r:?}");
        let scaled = r.prompt_tokens * 150_000 + r.completion_tokens * 600_000;
        assert_eq!(r.cost_micros, scaled / 1_000_000 + i64::from(scaled % 1_000_000 >= 500_000), "{r:?}");
        assert_eq!((r.fee_micros, r.is_byok), (0, false));
        assert_eq!(r.attempts.matches("\"status\":200").count(), 1, "{r:?}");
        assert_eq!(r.requested_model, "openai/gpt-4o-mini");
    }
    let b = g.state.billing.balance(&ws, chrono::Utc::now().timestamp_millis());
    // Every row was charged; the store's sum equals the in-memory ledger after reconciling.
    assert!(g.state.billing.reconcile(&g.state.store).await.unwrap());
    assert_eq!(g.state.billing.balance(&ws, chrono::Utc::now().timestamp_millis()), b);
    eprintln!("10,000 requests in {sent:?}; all rows stored {:?} after the start", t0.elapsed());
}

async fn default_workspace(g: &Gateway) -> String {
    g.state.store.list_workspaces().await.unwrap().into_iter().find(|w| w.slug == "default").unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_cannot_overdraw_credits() {
    let (fake, g) = start(true, |c| c.billing.credits_enabled = true).await;
    let (key, _) = g.inference_key().await;
    let body = chat(Some(1000));
    let (p, o) = keyway_gateway::estimate::demand_of(body.as_object().unwrap());
    // gpt-4o-mini, system traffic: the whole estimate is charged.
    let scaled = p * 150_000 + o * 600_000;
    let estimate = (scaled / 1_000_000 + u64::from(scaled % 1_000_000 >= 500_000)) as i64;
    let top_up = 5 * estimate + estimate / 2;
    let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": top_up}))).await;
    assert_eq!(s, 201, "{v}");
    // Slow answers keep every admitted request in flight while the rest arrive.
    fake.set_fault(Fault::SlowFirstByte(Duration::from_millis(2000)));
    let url = g.url("/v1/chat/completions");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (url, key, body, barrier) = (url.clone(), key.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                barrier.wait().await;
                let r = client.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    fake.clear_faults();
    let served: Vec<&Value> = results.iter().filter(|r| r.0 == 200).map(|r| &r.1).collect();
    let refused = results.iter().filter(|r| r.0 == 402).count();
    assert_eq!((served.len(), refused), (5, 195), "the balance covers 5 estimates; without reservations all 200 pass the same check");
    let spent: i64 = served.iter().map(|v| mini_cost(v)).sum();
    let (_, c, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert_eq!(c["data"]["balance_micros"].as_i64().unwrap(), top_up - spent, "{c}");
    assert!(top_up - spent >= 0);
    // The holds were given back when the requests ended: the rest of the balance is usable.
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn refused_requests_are_recorded_without_cost() {
    let (_fake, g) = start(true, |c| c.billing.credits_enabled = true).await;
    let (key, hash) = g.inference_key().await;
    let resp = g.http.post(g.url("/v1/chat/completions")).bearer_auth(&key).json(&chat(Some(10))).send().await.unwrap();
    assert_eq!(resp.status(), 402);
    let id = resp.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let d = generation(&g, &key, &id).await;
    assert_eq!((d["status"].as_i64(), d["cost_micros"].as_i64(), d["fee_micros"].as_i64()), (Some(402), Some(0), Some(0)), "{d}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 0);
    assert_eq!(d["api_key_hash"], hash);
    assert_eq!(d["model"], "openai/gpt-4o-mini");

    // A 429 from a key's limit too.
    let (s, _) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": 1_000_000}))).await;
    assert_eq!(s, 201);
    let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "one", "limits": {"requests_per_minute": 1}}))).await;
    assert_eq!(s, 201, "{v}");
    let limited = v["key"].as_str().unwrap().to_owned();
    assert_eq!(g.req("POST", "/v1/chat/completions", Some(&limited), Some(chat(Some(10)))).await.0, 200);
    let (s, _, h) = g.req("POST", "/v1/chat/completions", Some(&limited), Some(chat(Some(10)))).await;
    assert_eq!(s, 429);
    let d = generation(&g, &limited, h["x-keyway-generation-id"].to_str().unwrap()).await;
    assert_eq!((d["status"].as_i64(), d["cost_micros"].as_i64()), (Some(429), Some(0)), "{d}");
    // Refusals are charged nothing: the balance moved by the one served request only.
    let (_, c, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert!(c["data"]["balance_micros"].as_i64().unwrap() > 1_000_000 - 100, "{c}");
}

/// A full queue drops records rather than block requests: counted, reported in `/metrics`, and
/// the ledger is told (a dropped charge is not kept pending for a store that will never see it).
#[tokio::test]
async fn full_usage_queue_drops_and_counts_records() {
    let (_fake, g) = start(true, |c| c.usage.queue_capacity = 4).await;
    let ws = default_workspace(&g).await;
    let prices = keyway_core::pricing::Prices { input_per_mtok_micros: 150_000, output_per_mtok_micros: 600_000, cached_input_per_mtok_micros: None, per_request_micros: 0 };
    let usage = keyway_core::Usage { prompt_tokens: 1000, completion_tokens: 500, ..keyway_core::Usage::default() };
    // This test's runtime has one thread: the writer can't drain the queue until we await.
    for i in 0..100 {
        let mut rec = keyway_gateway::usage::GenerationRecord {
            id: format!("gen-drop-{i:03}"),
            workspace_id: ws.clone(),
            api_key_hash: "h".into(),
            requested_model: "openai/gpt-4o-mini".into(),
            model: Some("openai/gpt-4o-mini".into()),
            provider: Some("openai".into()),
            credential_id: Some("system".into()),
            status: 200,
            usage: Some(usage),
            latency_ms: 1,
            created_at_ms: chrono::Utc::now().timestamp_millis(),
            ..Default::default()
        };
        assert_eq!(g.state.billing.settle(&mut rec, Some(prices)).charged_micros, 450);
        g.state.usage.record(rec);
    }
    assert_eq!(g.state.usage.dropped(), 96);
    let deadline = Instant::now() + Duration::from_secs(10);
    while g.state.store.count_generations(&ws).await.unwrap() < 4 {
        assert!(Instant::now() < deadline, "the 4 queued records were never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = g.http.get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "keyway_usage_dropped_total 96"), "{metrics}");
    // In memory all 100 were charged; once reconciled, the ledger agrees with the store (4 rows),
    // which it only can because the drop hook released the 96 dropped charges from `pending`.
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(g.state.billing.balance(&ws, now).usage_micros, 100 * 450);
    assert!(g.state.billing.reconcile(&g.state.store).await.unwrap());
    assert_eq!(g.state.billing.balance(&ws, now).usage_micros, 4 * 450);
}

#[tokio::test]
async fn pricing_override_reaches_models_and_the_charged_cost() {
    // The shipped catalog first: prices in micros per million tokens beside OpenRouter's strings.
    let (_fake, g) = start(true, |_| {}).await;
    let (key, _) = g.inference_key().await;
    let (s, v, _) = g.req("GET", "/v1/models", Some(&key), None).await;
    assert_eq!(s, 200, "{v}");
    let m = v["data"].as_array().unwrap().iter().find(|m| m["id"] == "openai/gpt-4o-mini").unwrap().clone();
    assert_eq!(m["pricing"]["input_per_mtok_micros"], 150_000, "{m}");
    assert_eq!(m["pricing"]["output_per_mtok_micros"], 600_000);
    assert_eq!(m["pricing"]["cached_input_per_mtok_micros"], 75_000);
    assert_eq!(m["pricing"]["prompt"], "0.00000015");
    assert_eq!(m["pricing"]["completion"], "0.0000006");
    drop(g);

    let (_fake, g) = start(true, |c| {
        c.pricing.push(keyway_core::pricing::PriceOverride {
            model: "openai/gpt-4o-mini".into(),
            provider: "openai".into(),
            input_per_mtok_micros: Some(1_000_000),
            output_per_mtok_micros: Some(2_000_000),
            cached_input_per_mtok_micros: None,
            per_request_micros: Some(7),
        })
    })
    .await;
    let (key, _) = g.inference_key().await;
    let (_, v, _) = g.req("GET", "/v1/models", Some(&key), None).await;
    let m = v["data"].as_array().unwrap().iter().find(|m| m["id"] == "openai/gpt-4o-mini").unwrap().clone();
    // The override is on the `openai` endpoint (the model's headline price may be another provider's).
    let openai = &m["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "openai").unwrap()["pricing"];
    assert_eq!(openai["input_per_mtok_micros"], 1_000_000, "{m}");
    assert_eq!(openai["output_per_mtok_micros"], 2_000_000);
    assert_eq!(openai["cached_input_per_mtok_micros"], 75_000, "unset fields keep the catalog's");
    assert_eq!(openai["prompt"], "0.000001");
    assert_eq!(openai["completion"], "0.000002");
    assert_eq!(openai["request"], "0.000007");
    let azure = &m["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "azure").unwrap()["pricing"];
    assert_eq!(azure["input_per_mtok_micros"], 150_000, "other endpoints keep their prices");
    // $1 / $2 per Mtok is exactly 1 / 2 micros a token, plus 7 micros a request.
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!(s, 200, "{v}");
    let d = generation(&g, &key, v["id"].as_str().unwrap()).await;
    let want = v["usage"]["prompt_tokens"].as_i64().unwrap() + 2 * v["usage"]["completion_tokens"].as_i64().unwrap() + 7;
    assert_eq!(d["cost_micros"].as_i64().unwrap(), want, "{d}");
}

/// The default BYOK fee is 0: past the month's free requests, a BYOK generation still charges
/// nothing (Vercel's "no markup"; OpenRouter's 5% is a setting, docs/billing.md).
#[tokio::test]
async fn byok_fee_defaults_to_zero_even_past_the_free_requests() {
    let (_fake, g) = start(true, |c| {
        c.billing.byok_free_requests_per_month = 0;
        assert_eq!(c.billing.byok_fee_percent, 0, "the default");
    })
    .await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "openai", "key": "sk-byok-user-key-0002"})).await;
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat(None))).await;
    assert_eq!((s, h["x-keyway-byok"].to_str().unwrap()), (200, "true"), "{v}");
    let d = generation(&g, &key, v["id"].as_str().unwrap()).await;
    assert!(d["cost_micros"].as_i64().unwrap() > 0, "{d}");
    assert_eq!(d["fee_micros"], 0, "{d}");
    let (_, c, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert_eq!(c["data"]["used_this_month_micros"], 0, "{c}");
}
