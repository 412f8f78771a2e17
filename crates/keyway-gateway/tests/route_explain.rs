//! `POST /api/v1/route` (explain), the plan kept on each generation, and the precedence rule,
//! end to end against the OpenAI fake.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::Fault;
use keyway_gateway::config::{PrecedenceConfig, ProviderSettings};
use serde_json::{json, Value};
use std::time::Duration;

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "route me"}]})
}

async fn generation(g: &Gateway, id: &str) -> Value {
    for _ in 0..100 {
        let (s, v) = g.mgmt("GET", &format!("/api/v1/generation?id={id}"), None).await;
        if s == 200 {
            return v["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("generation {id} was never recorded");
}

#[tokio::test]
async fn explain_lists_candidates_and_every_excluded_key_with_its_reason_without_calling_upstream() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-explain-0001").await;
    let (other_key, _) = g.inference_key().await;
    let other_hash = g.mgmt("GET", "/api/v1/keys", None).await.1["data"].as_array().unwrap().iter().find(|k| k["name"] != "test").map(|k| k["hash"].clone());
    let _ = (other_key, other_hash);
    let ok = g.add_byok(json!({"provider": "openai", "key": "sk-byok-team-000001", "name": "team key", "sort_order": 1})).await;
    let off = g.add_byok(json!({"provider": "openai", "key": "sk-byok-off-0000002", "name": "old key", "disabled": true})).await;
    let mini_only = g.add_byok(json!({"provider": "openai", "key": "sk-byok-mini-000003", "name": "mini only", "allowed_models": ["openai/gpt-4o-mini"]})).await;
    let elsewhere = g.add_byok(json!({"provider": "openai", "key": "sk-byok-else-000004", "name": "team b", "allowed_api_key_hashes": ["someone-else"]})).await;
    let broke = g.add_byok(json!({"provider": "openai", "key": "sk-byok-broke-00005", "name": "broke", "sort_order": 0})).await;
    // The broke key's account runs dry on a real request first.
    fake.set_fault_for_key("sk-byok-broke-00005", Fault::QuotaExhausted);
    let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o"))).await;
    assert_eq!(s, 200, "{v}");
    let calls = fake.calls().len();

    let mut body = chat("openai/gpt-4o");
    body["provider"] = json!({"ignore": ["azure"]});
    let (s, e, _) = g.req("POST", "/api/v1/route", Some(&key), Some(body)).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(fake.calls().len(), calls, "explain called an upstream");
    println!("EXPLAIN {}", serde_json::to_string_pretty(&e).unwrap());
    let d = &e["data"];
    assert_eq!(d["model"], "openai/gpt-4o");
    assert_eq!(d["precedence"], "byok_first");
    let cands: Vec<(String, String)> = d["candidates"].as_array().unwrap().iter().map(|c| (c["credential_id"].as_str().unwrap().to_owned(), c["section"].as_str().unwrap().to_owned())).collect();
    assert_eq!(cands, [(ok.clone(), "prioritized".to_owned()), ("system".to_owned(), "system".to_owned())]);
    assert_eq!(d["candidates"][0]["credential_name"], "team key");
    assert_eq!(d["candidates"][0]["endpoint_model"], "gpt-4o");
    assert!(d["candidates"][0]["pricing"]["prompt_per_mtok_micros"].as_u64().unwrap() > 0);
    let excluded: Vec<(Value, String)> = d["excluded"].as_array().unwrap().iter().map(|x| (x["credential_id"].clone(), x["code"].as_str().unwrap().to_owned())).collect();
    for (id, code) in [(json!(off), "disabled"), (json!(mini_only), "model_not_allowed"), (json!(elsewhere), "not_assigned_to_key"), (json!(broke), "quota_exhausted"), (Value::Null, "ignored")] {
        assert!(excluded.contains(&(id.clone(), code.to_owned())), "{id} {code} missing: {excluded:?}");
    }
    let parked = d["excluded"].as_array().unwrap().iter().find(|x| x["code"] == "quota_exhausted").unwrap();
    assert!(parked["until"].is_string() && parked["reason"].as_str().unwrap().contains("quota"), "{parked}");
    assert!(d["error"].is_null());
    // The body never reaches an upstream and no generation is recorded for it.
    assert!(!e.to_string().contains("sk-byok"), "a secret leaked: {e}");
}

#[tokio::test]
async fn explain_needs_an_inference_key_and_a_valid_body_and_reports_no_route() {
    let (_fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-explain-0002").await;
    let (s, v, _) = g.req("POST", "/api/v1/route", None, Some(chat("openai/gpt-4o"))).await;
    assert_error(s, &v, 401);
    let (s, v, _) = g.req("POST", "/api/v1/route", Some(&key), Some(json!({"messages": []}))).await;
    assert_error(s, &v, 400);
    let (s, v, _) = g.req("POST", "/api/v1/route", Some(&key), Some(json!({"model": "openai/gpt-4o", "provider": {"byok_first": "no"}}))).await;
    assert_error(s, &v, 400);
    // A model nobody can serve: the plan's error, as a request would get it.
    let (s, v, _) = g.req("POST", "/api/v1/route", Some(&key), Some(json!({"model": "openai/gpt-4o", "provider": {"only": ["anthropic"]}}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["error"]["code"], "no_endpoints", "{v}");
    assert_eq!(v["data"]["candidates"], json!([]));
}

#[tokio::test]
async fn each_generation_keeps_its_route_plan_beside_the_attempts() {
    let (fake, g, key) = openai_gateway(FakeOptions::default(), "sk-system-explain-0003").await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-429-0000001"})).await;
    let off = g.add_byok(json!({"provider": "openai", "key": "sk-byok-off-0000002", "disabled": true})).await;
    fake.set_fault_for_key("sk-byok-429-0000001", Fault::RateLimit { retry_after_secs: 30 });
    let (s, v, h) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat("openai/gpt-4o-mini"))).await;
    assert_eq!(s, 200, "{v}");
    let gen = generation(&g, h["x-keyway-generation-id"].to_str().unwrap()).await;
    assert_eq!(gen["attempts"].as_array().unwrap().len(), 2, "{gen}");
    let plan = &gen["route_plan"];
    assert_eq!(plan["candidates"][0]["credential_id"], k1, "{plan}");
    assert_eq!(plan["candidates"][1]["credential_id"], "system", "{plan}");
    assert_eq!(plan["excluded"][0]["credential_id"], off, "{plan}");
    assert_eq!(plan["excluded"][0]["code"], "disabled", "{plan}");
}

#[tokio::test]
async fn precedence_provider_order_per_workspace_and_byok_first_false_per_request() {
    let fake = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let build = |precedence: Option<PrecedenceConfig>| {
        let base = base.clone();
        async move {
            Gateway::start(move |c| {
                c.providers.insert("openai".into(), ProviderSettings { base_url: Some(base.clone()) });
                c.providers.insert("together".into(), ProviderSettings { base_url: Some(base.clone()) });
                c.providers.insert("groq".into(), ProviderSettings { base_url: Some(base.clone()) });
                c.system_credentials.push(system_key("groq", "gsk-system-groq-0001"));
                c.system_credentials.push(system_key("together", "tg-system-together-01"));
                if let Some(p) = precedence {
                    c.routing.workspaces.insert("default".into(), p);
                }
            })
            .await
        }
    };
    let candidates = |v: &Value| -> Vec<String> {
        v["data"]["candidates"].as_array().unwrap().iter().map(|c| format!("{}:{}", c["provider"].as_str().unwrap(), c["section"].as_str().unwrap())).collect()
    };
    let model = "meta-llama/llama-3.3-70b-instruct";
    let body = |extra: Value| {
        let mut b = chat(model);
        b["provider"] = extra;
        b
    };
    // byok_first (default): the team's Together key before any system key, whatever the order.
    let g = build(None).await;
    let (key, _) = g.inference_key().await;
    g.add_byok(json!({"provider": "together", "key": "tg-team-key-000001"})).await;
    let (s, v, _) = g.req("POST", "/api/v1/route", Some(&key), Some(body(json!({"order": ["groq", "together"]})))).await;
    assert_eq!(s, 200, "{v}");
    let first = candidates(&v);
    assert_eq!(first, ["together:prioritized", "groq:system", "together:system"], "{v}");
    // The same request with byok_first: false, and a workspace configured provider_order.
    let (_, v2, _) = g.req("POST", "/api/v1/route", Some(&key), Some(body(json!({"order": ["groq", "together"], "byok_first": false})))).await;
    assert_eq!(v2["data"]["precedence"], "provider_order", "{v2}");
    assert_eq!(candidates(&v2), ["groq:system", "together:prioritized", "together:system"], "{v2}");
    let g2 = build(Some(PrecedenceConfig::ProviderOrder)).await;
    let (key2, _) = g2.inference_key().await;
    g2.add_byok(json!({"provider": "together", "key": "tg-team-key-000001"})).await;
    let (_, v3, _) = g2.req("POST", "/api/v1/route", Some(&key2), Some(body(json!({"order": ["groq", "together"]})))).await;
    assert_eq!(v3["data"]["precedence"], "provider_order", "{v3}");
    assert_eq!(candidates(&v2), candidates(&v3));
    // A request may still ask for byok_first in a provider_order workspace.
    let (_, v4, _) = g2.req("POST", "/api/v1/route", Some(&key2), Some(body(json!({"order": ["groq", "together"], "byok_first": true})))).await;
    assert_eq!(candidates(&v4), first);
}
