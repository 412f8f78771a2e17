//! OpenRouter's routing options end to end on `/api/v1/chat/completions`: Keyway in front of the
//! OpenAI and Anthropic fakes. Which key an upstream saw is read from the fakes' call logs.
//! (The same rules driven through the official SDKs: `sdk-tests/python/test_openrouter_sdk.py`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::{FakeServer, Fault};
use keyway_gateway::config::ProviderSettings;
use serde_json::{json, Value};

const MODEL: &str = "openai/gpt-4o-mini";
const SYSTEM_OPENAI: &str = "sk-system-openai-operator";
const LLAMA: &str = "meta-llama/llama-3.3-70b-instruct"; // groq 0.59/0.79, deepinfra 0.23/0.40, together 0.88/0.88

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

struct Setup {
    g: Gateway,
    openai: FakeServer,
    anthropic: FakeServer,
    key: String,
}

/// System credentials on OpenAI and Anthropic; the OpenAI-compatible providers (groq, deepinfra,
/// together) also point at the OpenAI fake so that catalog prices can be compared.
async fn setup() -> Setup {
    let openai = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let anthropic = keyway_fakes::anthropic::start(FakeOptions::default()).await.unwrap();
    let oa = format!("{}/v1", openai.url());
    let an = anthropic.url();
    let g = Gateway::start(|c| {
        for p in ["openai", "groq", "deepinfra", "together"] {
            c.providers.insert(p.into(), ProviderSettings { base_url: Some(oa.clone()) });
        }
        c.providers.insert("anthropic".into(), ProviderSettings { base_url: Some(an.clone()) });
        c.system_credentials.push(system_key("openai", SYSTEM_OPENAI));
        c.system_credentials.push(system_key("anthropic", "sk-ant-system-operator"));
    })
    .await;
    let (key, _) = g.inference_key().await;
    Setup { g, openai, anthropic, key }
}

impl Setup {
    async fn send(&self, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
        self.g.req("POST", "/api/v1/chat/completions", Some(&self.key), Some(body)).await
    }
    fn keys_seen(&self) -> Vec<String> {
        self.openai.calls().into_iter().map(|c| c.key).collect()
    }
}

#[tokio::test]
async fn models_fallback_tries_the_next_model_and_says_which_served() {
    let s = setup().await;
    s.openai.set_fault(Fault::ServerError);
    let mut body = chat(MODEL);
    body["models"] = json!([MODEL, "anthropic/claude-haiku-4.5"]);
    let (st, v, h) = s.send(body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["model"], "anthropic/claude-haiku-4.5");
    assert_eq!(h["x-keyway-model"], "anthropic/claude-haiku-4.5");
    assert!(!s.openai.calls().is_empty());
    let up = s.anthropic.calls();
    assert_eq!(up.len(), 1);
    assert!(up[0].body.get("models").is_none(), "routing fields never go upstream");
}

#[tokio::test]
async fn sort_price_orders_by_catalog_price_and_falls_back_in_that_order() {
    let s = setup().await;
    for (p, k) in [("groq", "gsk-groq-key-0001"), ("deepinfra", "sk-deepinfra-0001"), ("together", "sk-together-0001")] {
        s.g.add_byok(json!({"provider": p, "key": k})).await;
    }
    let (st, v, _) = s.send(chat(LLAMA)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.keys_seen(), ["gsk-groq-key-0001"], "catalog order without sort");

    s.openai.clear_calls();
    let mut body = chat(LLAMA);
    body["provider"] = json!({"sort": "price"});
    let (st, v, h) = s.send(body.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(h["x-keyway-provider"], "deepinfra");
    assert_eq!(s.keys_seen(), ["sk-deepinfra-0001"]);

    s.openai.clear_calls();
    s.openai.set_fault_for_key("sk-deepinfra-0001", Fault::ServerError);
    let (st, v, _) = s.send(body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.keys_seen(), ["sk-deepinfra-0001", "gsk-groq-key-0001"], "next cheapest: groq (1.38) before together (1.76)");
}

#[tokio::test]
async fn max_price_drops_expensive_endpoints_and_402_names_the_price() {
    let s = setup().await;
    for (p, k) in [("groq", "gsk-groq-key-0002"), ("deepinfra", "sk-deepinfra-0002")] {
        s.g.add_byok(json!({"provider": p, "key": k})).await;
    }
    let mut body = chat(LLAMA);
    body["provider"] = json!({"max_price": {"prompt": "0.5", "completion": 0.5}});
    let (st, v, _) = s.send(body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.keys_seen(), ["sk-deepinfra-0002"]);

    s.openai.clear_calls();
    let mut body = chat("openai/gpt-4o");
    body["provider"] = json!({"max_price": {"prompt": 1, "completion": 2}});
    let (st, v, _) = s.send(body).await;
    assert_eq!(st, 402, "{v}");
    assert_eq!(v["error"]["code"], 402, "OpenRouter's error dialect: integer code");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("$2.50/M") && msg.contains("max_price"), "{msg}");
    assert!(s.openai.calls().is_empty());
}

#[tokio::test]
async fn zdr_uses_only_declared_zdr_credentials() {
    let s = setup().await;
    s.g.add_byok(json!({"provider": "openai", "key": "sk-plain-key-0001", "sort_order": 0})).await;
    s.g.add_byok(json!({"provider": "openai", "key": "sk-zdr-key-0001", "sort_order": 1, "declared_zdr": true})).await;
    let (st, _, _) = s.send(chat(MODEL)).await;
    assert_eq!(st, 200);
    assert_eq!(s.keys_seen(), ["sk-plain-key-0001"]);

    s.openai.clear_calls();
    let mut body = chat(MODEL);
    body["provider"] = json!({"zdr": true});
    let (st, v, _) = s.send(body.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.keys_seen(), ["sk-zdr-key-0001"]);

    // The ZDR key failing: the system credential isn't marked ZDR, so nothing else is tried.
    s.openai.clear_calls();
    s.openai.set_fault_for_key("sk-zdr-key-0001", Fault::ServerError);
    let (st, v, _) = s.send(body).await;
    assert_eq!((st, v["error"]["code"].as_u64()), (502, Some(502)), "{v}");
    assert_eq!(s.keys_seen(), ["sk-zdr-key-0001"]);
}

#[tokio::test]
async fn is_required_never_falls_back_to_the_system_credential() {
    let s = setup().await;
    let id = s.g.add_byok(json!({"provider": "openai", "key": "sk-required-0001", "allowed_models": [MODEL]})).await;
    s.openai.set_fault_for_key("sk-required-0001", Fault::ServerError);
    // Control: not required -> the system credential answers after the key fails.
    let (st, _, _) = s.send(chat(MODEL)).await;
    assert_eq!(st, 200);
    assert_eq!(s.keys_seen(), ["sk-required-0001", SYSTEM_OPENAI]);

    let (st, v) = s.g.mgmt("PATCH", &format!("/api/v1/byok/{id}"), Some(json!({"is_required": true}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["is_required"], true);
    assert_eq!(v["data"]["always_use"], true);
    s.openai.clear_calls();
    let (st, v, _) = s.send(chat(MODEL)).await;
    assert_eq!((st, v["error"]["code"].as_u64()), (502, Some(502)), "{v}");
    assert_eq!(s.openai.calls_with_key(SYSTEM_OPENAI), 0, "the system credential saw no call");
    assert_eq!(s.keys_seen(), ["sk-required-0001"]);

    // A model outside the key's allowed_models may still use the system credential.
    s.openai.clear_calls();
    let (st, _, _) = s.send(chat("openai/gpt-4o")).await;
    assert_eq!(st, 200);
    assert_eq!(s.keys_seen(), [SYSTEM_OPENAI]);
}

#[tokio::test]
async fn is_byok_only_bars_the_system_credential_for_every_model() {
    let s = setup().await;
    s.g.add_byok(json!({"provider": "openai", "key": "sk-byok-only-0001", "allowed_models": [MODEL], "is_byok_only": true})).await;
    s.openai.set_fault_for_key("sk-byok-only-0001", Fault::ServerError);
    let (st, v, _) = s.send(chat(MODEL)).await;
    assert_eq!((st, v["error"]["code"].as_u64()), (502, Some(502)), "{v}");
    let (st, v, _) = s.send(chat("openai/gpt-4o")).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], 404);
    assert_eq!(s.openai.calls_with_key(SYSTEM_OPENAI), 0, "the system credential saw no call");
    assert_eq!(s.keys_seen(), ["sk-byok-only-0001"]);

    // With is_fallback it is refused at write time.
    let (st, v) = s
        .g
        .mgmt("POST", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-x-0000000001", "is_byok_only": true, "is_fallback": true})))
        .await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn unknown_options_are_named_in_x_keyway_ignored_and_never_forwarded() {
    let s = setup().await;
    let mut body = chat(MODEL);
    body["provider"] = json!({"order": ["openai", "cerebras"], "quantizations": ["fp8"], "sort": {"by": "price", "partition": "none"}});
    body["models"] = json!([MODEL]);
    let (st, v, h) = s.send(body).await;
    assert_eq!(st, 200, "{v}");
    let ignored = h["x-keyway-ignored"].to_str().unwrap();
    for name in ["provider.quantizations", "provider.order:cerebras", "provider.sort.partition"] {
        assert!(ignored.contains(name), "{name} not in {ignored}");
    }
    let up = &s.openai.calls()[0].body;
    assert!(up.get("provider").is_none() && up.get("models").is_none(), "{up}");
    // OpenRouter's SDKs require `system_fingerprint` (nullable) on a chat result.
    assert!(v.as_object().unwrap().contains_key("system_fingerprint"));
}

#[tokio::test]
async fn attribution_headers_are_recorded_never_forwarded() {
    let s = setup().await;
    let resp = s
        .g
        .http
        .post(s.g.url("/api/v1/chat/completions"))
        .bearer_auth(&s.key)
        .header("HTTP-Referer", "https://app.example")
        .header("X-OpenRouter-Title", "Example App")
        .json(&chat(MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let call = &s.openai.calls()[0];
    assert!(
        !call.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("http-referer") || k.eq_ignore_ascii_case("x-openrouter-title")),
        "{:?}",
        call.headers
    );
}

/// groq made slow (its first byte waits), deepinfra fast; together never measured. Warm-up with
/// `only` so each endpoint is observed, then `sort` must reorder catalog order (groq first).
async fn slow_groq_fast_deepinfra() -> Setup {
    let s = setup().await;
    for (p, k) in [("groq", "gsk-groq-slow-0001"), ("deepinfra", "sk-deepinfra-fast-0001"), ("together", "sk-together-unmeasured")] {
        s.g.add_byok(json!({"provider": p, "key": k})).await;
    }
    s.openai.set_fault_for_key("gsk-groq-slow-0001", Fault::SlowFirstByte(std::time::Duration::from_millis(250)));
    for p in ["groq", "deepinfra"] {
        for _ in 0..3 {
            let mut body = chat(LLAMA);
            body["provider"] = json!({"only": [p]});
            let (st, v, h) = s.send(body).await;
            assert_eq!(st, 200, "{v}");
            assert_eq!(h["x-keyway-provider"], p);
        }
    }
    s.openai.clear_calls();
    s
}

#[tokio::test]
async fn sort_latency_puts_the_observed_fastest_endpoint_first() {
    let s = slow_groq_fast_deepinfra().await;
    let (st, _, h) = s.send(chat(LLAMA)).await;
    assert_eq!(st, 200);
    assert_eq!(h["x-keyway-provider"], "groq", "catalog order without sort");

    let mut body = chat(LLAMA);
    body["provider"] = json!({"sort": "latency"});
    let (st, v, h) = s.send(body.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(h["x-keyway-provider"], "deepinfra");

    // Falling back goes to the next measured endpoint (groq), before the unmeasured one.
    s.openai.clear_calls();
    s.openai.fail_next(Fault::ServerError);
    let (st, v, _) = s.send(body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.keys_seen(), ["sk-deepinfra-fast-0001", "gsk-groq-slow-0001"]);
}

#[tokio::test]
async fn sort_throughput_puts_the_observed_fastest_endpoint_first() {
    let s = slow_groq_fast_deepinfra().await;
    let stats = |p| s.g.state.stats.get(LLAMA, p).unwrap().throughput_tps.unwrap();
    let (slow, fast) = (stats(keyway_core::ProviderSlug::Groq), stats(keyway_core::ProviderSlug::DeepInfra));
    assert!(fast > slow, "deepinfra {fast} tok/s vs groq {slow} tok/s");
    assert!(s.g.state.stats.get(LLAMA, keyway_core::ProviderSlug::Together).is_none());

    let mut body = chat(LLAMA);
    body["provider"] = json!({"sort": {"by": "throughput"}});
    let (st, v, h) = s.send(body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(h["x-keyway-provider"], "deepinfra");
    assert_eq!(s.keys_seen(), ["sk-deepinfra-fast-0001"]);
}

#[tokio::test]
async fn a_stream_feeds_the_window_when_it_ends() {
    let s = setup().await;
    s.g.add_byok(json!({"provider": "groq", "key": "gsk-groq-stream-0001"})).await;
    assert!(s.g.state.stats.get(LLAMA, keyway_core::ProviderSlug::Groq).is_none());
    let mut body = chat(LLAMA);
    body["stream"] = json!(true);
    let (st, v, _) = s.send(body).await; // reads the whole stream
    assert_eq!(st, 200, "{v}");
    assert!(v.as_str().is_some_and(|t| t.contains("[DONE]")), "{v}");
    // The stream's end is recorded when the forwarder drops, just after the last frame.
    let mut seen = None;
    for _ in 0..50 {
        seen = s.g.state.stats.get(LLAMA, keyway_core::ProviderSlug::Groq).and_then(|x| x.throughput_tps.zip(x.latency_ms));
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (tps, ms) = seen.expect("latency and throughput observed for the streamed endpoint");
    assert!(tps > 0.0 && ms >= 0.0);
}

#[tokio::test]
async fn x_keyway_ignored_is_set_on_failures_and_plan_errors_too() {
    let s = setup().await;
    // Every attempt fails.
    s.openai.set_fault(Fault::ServerError);
    let mut body = chat(MODEL);
    body["provider"] = json!({"quantizations": ["fp8"]});
    let (st, v, h) = s.send(body).await;
    assert_eq!((st, v["error"]["code"].as_u64()), (502, Some(502)), "{v}");
    assert_eq!(h["x-keyway-ignored"], "provider.quantizations");

    // The planner refuses (nothing under max_price): a 402, still naming the unknown option.
    let mut body = chat("openai/gpt-4o");
    body["provider"] = json!({"max_price": {"prompt": 0.01}, "preferred_min_throughput": 50});
    let (st, v, h) = s.send(body).await;
    assert_eq!(st, 402, "{v}");
    assert_eq!(h["x-keyway-ignored"], "provider.preferred_min_throughput");

    // No unknown option: no header.
    let (st, _, h) = s.send(chat("no-such-provider/model")).await;
    assert!(st >= 400);
    assert!(h.get("x-keyway-ignored").is_none());
}

#[tokio::test]
async fn global_byok_key_serves_every_workspace_and_only_an_admin_manages_it() {
    let s = setup().await;
    // A second workspace with its own inference key and a (non-admin) management key.
    let (st, w) = s.g.mgmt("POST", "/api/v1/workspaces", Some(json!({"name": "Team B"}))).await;
    assert_eq!(st, 201, "{w}");
    let ws_b = w["data"]["id"].as_str().unwrap().to_owned();
    let (st, k) = s.g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "b", "workspace_id": ws_b}))).await;
    assert_eq!(st, 201, "{k}");
    let key_b = k["key"].as_str().unwrap().to_owned();
    let (st, k) = s.g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "b-mgmt", "workspace_id": ws_b, "management": true}))).await;
    assert_eq!(st, 201, "{k}");
    let mgmt_b = k["key"].as_str().unwrap().to_owned();
    let send_b = |body: Value| s.g.req("POST", "/api/v1/chat/completions", Some(&key_b), Some(body));

    // Warm both workspaces' credential caches: only the system key so far.
    assert_eq!(s.send(chat(MODEL)).await.0, 200);
    assert_eq!(send_b(chat(MODEL)).await.0, 200);
    assert_eq!(s.keys_seen(), [SYSTEM_OPENAI, SYSTEM_OPENAI]);

    // `workspace_id: null` from a workspace's own management key: refused.
    let global = json!({"provider": "openai", "key": "sk-global-every-ws-01", "workspace_id": null});
    let (st, v, _) = s.g.req("POST", "/api/v1/byok", Some(&mgmt_b), Some(global.clone())).await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = s.g.mgmt("POST", "/api/v1/byok", Some(global)).await;
    assert_eq!(st, 201, "{v}");
    assert!(v["data"]["workspace_id"].is_null(), "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_owned();

    // Both workspaces route with it at once (each cache was dropped), before the system key.
    s.openai.clear_calls();
    assert_eq!(s.send(chat(MODEL)).await.0, 200);
    let (st, v, h) = send_b(chat(MODEL)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], id.as_str());
    assert_eq!(s.keys_seen(), ["sk-global-every-ws-01", "sk-global-every-ws-01"]);

    // Workspace B sees it in its list and can read it, but can't change or delete it.
    let (st, v, _) = s.g.req("GET", "/api/v1/byok", Some(&mgmt_b), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["total_count"], 1);
    assert!(v["data"][0]["workspace_id"].is_null());
    let path = format!("/api/v1/byok/{id}");
    assert_eq!(s.g.req("GET", &path, Some(&mgmt_b), None).await.0, 200);
    assert_eq!(s.g.req("PATCH", &path, Some(&mgmt_b), Some(json!({"disabled": true}))).await.0, 403);
    assert_eq!(s.g.req("DELETE", &path, Some(&mgmt_b), None).await.0, 403);

    // B's own key at the same sort_order goes first in B; the default workspace keeps the global one.
    let (st, v, _) = s.g.req("POST", "/api/v1/byok", Some(&mgmt_b), Some(json!({"provider": "openai", "key": "sk-team-b-own-0001"}))).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["data"]["workspace_id"], ws_b.as_str());
    s.openai.clear_calls();
    assert_eq!(send_b(chat(MODEL)).await.0, 200);
    assert_eq!(s.send(chat(MODEL)).await.0, 200);
    assert_eq!(s.keys_seen(), ["sk-team-b-own-0001", "sk-global-every-ws-01"]);

    // The admin disables it: every workspace's cache drops it at once.
    let (st, v) = s.g.mgmt("PATCH", &path, Some(json!({"disabled": true}))).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"]["workspace_id"].is_null());
    s.openai.clear_calls();
    assert_eq!(s.send(chat(MODEL)).await.0, 200);
    assert_eq!(s.keys_seen(), [SYSTEM_OPENAI]);
    let (st, v) = s.g.mgmt("DELETE", &path, None).await;
    assert_eq!((st, v["deleted"].clone()), (200, json!(true)), "{v}");
}

#[tokio::test]
async fn attribution_is_shown_in_activity_grouped_by_app_and_in_its_csv() {
    let s = setup().await;
    let send = |referer: Option<&'static str>, title: Option<(&'static str, &'static str)>| {
        let mut r = s.g.http.post(s.g.url("/api/v1/chat/completions")).bearer_auth(&s.key).json(&chat(MODEL));
        if let Some(v) = referer {
            r = r.header("HTTP-Referer", v);
        }
        if let Some((h, v)) = title {
            r = r.header(h, v);
        }
        async move { assert_eq!(r.send().await.unwrap().status(), 200) }
    };
    send(Some("https://app.example"), Some(("X-OpenRouter-Title", "Example, App"))).await;
    send(Some("https://app.example"), Some(("X-Title", "Example, App"))).await;
    send(Some("https://other.example"), None).await;
    send(None, None).await;

    // Generations are written in the background: wait until all four are counted.
    let mut rows = Vec::new();
    for _ in 0..100 {
        let (st, v) = s.g.mgmt("GET", "/api/v1/activity?group_by=app", None).await;
        assert_eq!(st, 200, "{v}");
        rows = v["data"].as_array().unwrap().clone();
        if rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum::<i64>() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let apps: Vec<(Value, Value, Value, i64)> =
        rows.iter().map(|r| (r["http_referer"].clone(), r["app_title"].clone(), r["app"].clone(), r["requests"].as_i64().unwrap())).collect();
    assert_eq!(
        apps,
        [
            (Value::Null, Value::Null, Value::Null, 1),
            (json!("https://app.example"), json!("Example, App"), json!("Example, App"), 2),
            (json!("https://other.example"), Value::Null, json!("https://other.example"), 1),
        ]
    );

    let resp = s.g.http.get(s.g.url("/api/v1/activity?group_by=app&format=csv")).bearer_auth(MGMT).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",charged_micros,http_referer,app_title"), "{csv}");
    assert!(lines.iter().any(|l| l.starts_with(",,,,,2,2,") && l.ends_with(",https://app.example,\"Example, App\"")), "{csv}");
    assert!(lines.iter().any(|l| l.ends_with(",https://other.example,")), "{csv}");
}

#[tokio::test]
async fn embeddings_under_the_openrouter_base_use_the_same_handler_and_routing() {
    let s = setup().await;
    let byok = s.g.add_byok(json!({"provider": "openai", "key": "sk-embed-byok-0001"})).await;
    let body = json!({"model": "openai/text-embedding-3-small", "input": ["one", "two"], "provider": {"only": ["openai"], "quantizations": ["fp8"]}});
    let (st, v, h) = s.g.req("POST", "/api/v1/embeddings", Some(&s.key), Some(body.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(v["data"][0]["embedding"].as_array().is_some_and(|e| !e.is_empty()), "{v}");
    assert_eq!(h["x-keyway-credential"], byok.as_str());
    assert_eq!(h["x-keyway-ignored"], "provider.quantizations");
    let call = &s.openai.calls()[0];
    assert!(call.path.ends_with("/embeddings"), "{}", call.path);
    assert!(call.body.get("provider").is_none(), "routing fields never go upstream: {}", call.body);
    // The same answer as on /v1 (same handler), and OpenRouter's error dialect on /api/v1.
    let (st, v1, _) = s.g.req("POST", "/v1/embeddings", Some(&s.key), Some(body)).await;
    assert_eq!(st, 200);
    assert_eq!(v1["data"].as_array().map(Vec::len), Some(2));
    let (st, v, _) = s.g.req("POST", "/api/v1/embeddings", Some(&s.key), Some(json!({"input": "x"}))).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], 400, "OpenRouter's integer code: {v}");
}

#[tokio::test]
async fn messages_under_the_openrouter_base_speak_anthropic_and_route() {
    let s = setup().await;
    let msg = |model: &str| json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hello there"}]});
    let (st, v, h) = s.g.req("POST", "/api/v1/messages", Some(&s.key), Some(msg("claude-haiku-4-5"))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["role"], "assistant");
    assert!(v["content"][0]["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert_eq!(h["x-keyway-provider"], "anthropic");
    assert_eq!(s.anthropic.calls().len(), 1);

    // OpenRouter's routing options work here too: `models` falls back to an OpenAI model.
    s.anthropic.set_fault(Fault::ServerError);
    let mut body = msg("anthropic/claude-haiku-4.5");
    body["models"] = json!(["anthropic/claude-haiku-4.5", MODEL]);
    body["provider"] = json!({"quantizations": ["fp8"]});
    let (st, v, h) = s.g.req("POST", "/api/v1/messages", Some(&s.key), Some(body)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["type"], "message");
    assert_eq!(h["x-keyway-model"], MODEL);
    assert_eq!(h["x-keyway-ignored"], "provider.quantizations");
    assert!(s.openai.calls()[0].body.get("models").is_none());

    // Errors keep Anthropic's shape (not OpenRouter's) on this one route of the base.
    let (st, v, _) = s.g.req("POST", "/api/v1/messages", Some(&s.key), Some(json!({"max_tokens": 5, "messages": []}))).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    // Every attempt failing: Anthropic's shape again, with the ignored option still named.
    s.openai.set_fault(Fault::ServerError);
    let mut body = msg("anthropic/claude-haiku-4.5");
    body["provider"] = json!({"quantizations": ["fp8"]});
    let (st, v, h) = s.g.req("POST", "/api/v1/messages", Some(&s.key), Some(body)).await;
    assert!(st >= 500, "{st} {v}");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(h["x-keyway-ignored"], "provider.quantizations");
}

/// A provider's failure on `/api/v1` is OpenRouter's: the provider's 4xx status as HTTP status and
/// `error.code` (a 5xx stays 502), `metadata.provider_name`, `metadata.raw` (the provider's answer,
/// scrubbed). `/v1` keeps Keyway's statuses and carries the same metadata.
#[tokio::test]
async fn provider_failures_carry_openrouter_metadata() {
    let s = setup().await;
    const KEY: &str = "sk-byok-failing-000000000001";
    s.g.add_byok(json!({"provider": "openai", "key": KEY, "is_byok_only": true})).await;
    s.openai.set_fault_for_key(KEY, Fault::BadRequest);
    let (st, v, _) = s.send(chat(MODEL)).await;
    assert_eq!((st, v["error"]["code"].as_u64()), (400, Some(400)), "{v}");
    assert_eq!(v["error"]["metadata"]["provider_name"], "OpenAI", "{v}");
    assert!(v["error"]["metadata"]["raw"]["error"]["message"].is_string(), "the provider's own JSON: {v}");
    let (st, v1, _) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(chat(MODEL))).await;
    assert_eq!(st, 400, "{v1}");
    assert_eq!(v1["error"]["metadata"], v["error"]["metadata"], "/v1 carries the same metadata");
    assert!(v1["error"]["code"].is_string(), "OpenAI's string code stays on /v1: {v1}");

    s.openai.set_fault_for_key(KEY, Fault::Unauthorized);
    let (st, v, _) = s.send(chat(MODEL)).await;
    assert_eq!((st, v["error"]["code"].as_u64()), (401, Some(401)), "{v}");
    assert_eq!(v["error"]["metadata"]["provider_name"], "OpenAI");
    let (st, v1, _) = s.g.req("POST", "/v1/chat/completions", Some(&s.key), Some(chat(MODEL))).await;
    assert_eq!(st, 502, "/v1 keeps its status for a provider's auth failure: {v1}");
    assert_eq!(v1["error"]["metadata"]["provider_name"], "OpenAI");
    for body in [&v, &v1] {
        assert!(!body.to_string().contains(KEY), "the secret never shows: {body}");
    }

    // A provider's 5xx is a 502 on both surfaces (OpenRouter's "model is down"), with the metadata.
    s.openai.set_fault_for_key(KEY, Fault::ServerError);
    let (st, v, _) = s.send(chat(MODEL)).await;
    assert_eq!((st, v["error"]["code"].as_u64()), (502, Some(502)), "{v}");
    assert_eq!(v["error"]["metadata"]["provider_name"], "OpenAI", "{v}");
    assert!(v["error"]["metadata"]["raw"].is_string(), "{v}");

    // Keyway's own errors have no provider metadata.
    let (st, v, _) = s.send(chat("nobody/model")).await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"]["metadata"].is_null(), "{v}");
}
