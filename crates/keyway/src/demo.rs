//! `keyway demo`: Keyway in front of fake providers on loopback, showing routing and fallback.
//!
//! Everything is real except the upstreams: the gateway is `keyway serve`'s own code on a
//! temporary data dir, the setup goes through the management API as any client would, and the
//! fakes speak each provider's wire protocol and check its auth (SigV4 for Bedrock). One BYOK
//! key is switched to answer 429, so the first request shows a fallback and the next one shows
//! the key cooling down.

use crate::cli::{text_table, Client, Output, Remote};
use crate::fakes::{Fakes, BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY};
use anyhow::Context;
use keyway_fakes::Fault;
use keyway_gateway::config::SystemCredentialConfig;
use keyway_gateway::{AppState, Config};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

struct Step {
    label: &'static str,
    path: &'static str,
    body: Value,
}

/// What one demo request did, as the gateway reported it (headers and generation record).
struct Outcome {
    n: usize,
    model: String,
    status: u16,
    provider: String,
    served_by: String,
    byok: bool,
    /// (credential name, status) per attempt, in order.
    attempts: Vec<(String, u16)>,
    routing_options: Option<Value>,
    cost_micros: Option<i64>,
}

/// The closing notes, derived from what happened (so they can't claim a fallback that didn't occur).
fn explain(outcomes: &[Outcome]) -> Vec<String> {
    let mut notes = Vec::new();
    // Credentials that answered 429 in an earlier request: (name, provider, skip already explained).
    let mut limited: Vec<(String, String, bool)> = Vec::new();
    for o in outcomes {
        let n = o.n;
        if o.status != 200 {
            notes.push(format!("Request {n} failed with {}.", o.status));
        } else if o.attempts.len() > 1 {
            let failed: Vec<String> = o.attempts[..o.attempts.len() - 1].iter().map(|(c, s)| format!("`{c}` answered {s}")).collect();
            notes.push(format!("Request {n}: {}; Keyway fell back to `{}` within the same request.", failed.join(", "), o.served_by));
        } else if let Some(i) = limited.iter().position(|(c, p, told)| !told && *p == o.provider && !o.attempts.iter().any(|(a, _)| a == c)) {
            // Said once per credential: later requests skip it for the same reason.
            limited[i].2 = true;
            notes.push(format!(
                "Request {n}: `{}` is cooling down after its 429 (Retry-After), so it was not tried; `{}` answered first time.",
                limited[i].0, o.served_by
            ));
        }
        let vendor = o.model.split('/').next().unwrap_or_default();
        if o.status == 200 && o.byok && !o.provider.is_empty() && o.provider != vendor {
            notes.push(format!(
                "Request {n}: your BYOK key `{}` on {} served {}: BYOK keys go before the operator's system key, on any provider hosting the model.",
                o.served_by, o.provider, o.model
            ));
        }
        if let (200, Some(opts)) = (o.status, &o.routing_options) {
            let whose = if o.byok { "a BYOK key" } else { "the operator's system key" };
            notes.push(format!("Request {n}: the routing options {opts} narrowed it to {}; {whose} (`{}`) served it.", o.provider, o.served_by));
        }
        for (c, s) in &o.attempts {
            if *s == 429 && !limited.iter().any(|(l, _, _)| l == c) {
                limited.push((c.clone(), o.provider.clone(), false));
            }
        }
    }
    let costs: Vec<i64> = outcomes.iter().filter_map(|o| o.cost_micros).collect();
    if !costs.is_empty() {
        notes.push(format!("Cost at catalog prices: {} for {} request(s) (each row's cost column; `keyway usage` sums it).", usd(Some(costs.iter().sum())), costs.len()));
    }
    notes
}

fn steps() -> Vec<Step> {
    let msg = |t: &str| json!([{"role": "user", "content": t}]);
    vec![
        Step { label: "chat gpt-4o-mini", path: "/v1/chat/completions", body: json!({"model": "openai/gpt-4o-mini", "messages": msg("Hello from the demo")}) },
        Step { label: "chat gpt-4o-mini again", path: "/v1/chat/completions", body: json!({"model": "openai/gpt-4o-mini", "messages": msg("And again")}) },
        Step {
            label: "stream gpt-4o-mini",
            path: "/v1/chat/completions",
            body: json!({"model": "openai/gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": msg("Stream this")}),
        },
        Step { label: "chat claude-sonnet-4.5", path: "/v1/chat/completions", body: json!({"model": "anthropic/claude-sonnet-4.5", "messages": msg("Hi Claude")}) },
        Step {
            label: "claude, provider.only=anthropic",
            path: "/v1/chat/completions",
            body: json!({"model": "anthropic/claude-sonnet-4.5", "messages": msg("Hi again"), "provider": {"only": ["anthropic"]}}),
        },
        Step { label: "embeddings", path: "/v1/embeddings", body: json!({"model": "openai/text-embedding-3-small", "input": ["demo"]}) },
    ]
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned()
}

fn usd(micros: Option<i64>) -> String {
    match micros {
        Some(m) => format!("${:.6}", m as f64 / 1e6),
        None => "-".into(),
    }
}

const PRIMARY_SECRET: &str = "sk-demo-primary-0000000000000001";

/// The demo's workspace, its inference key, and its BYOK keys; returns the inference key and
/// the credentials' names by id.
async fn demo_setup(api: &Client) -> anyhow::Result<(String, HashMap<String, String>)> {
    let ws = api.call(Method::POST, "/workspaces", Some(&json!({"name": "Demo"}))).await?;
    let ws_id = ws.pointer("/data/id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let key = api.call(Method::POST, "/keys", Some(&json!({"name": "demo app", "workspace_id": ws_id}))).await?;
    let inference_key = key.get("key").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut names: HashMap<String, String> = HashMap::from([("system".to_owned(), "system".to_owned())]);
    for (name, body) in [
        ("openai primary", json!({"provider": "openai", "name": "openai primary", "key": PRIMARY_SECRET, "sort_order": 1, "workspace_id": ws_id})),
        ("openai backup", json!({"provider": "openai", "name": "openai backup", "key": "sk-demo-backup-0000000000000002", "sort_order": 2, "workspace_id": ws_id})),
        (
            "bedrock (IAM)",
            json!({"provider": "amazon-bedrock", "name": "bedrock (IAM)", "workspace_id": ws_id,
                   "key": {"accessKeyId": BEDROCK_ACCESS_KEY_ID, "secretAccessKey": BEDROCK_SECRET_ACCESS_KEY, "region": "us-east-1"}}),
        ),
    ] {
        let v = api.call(Method::POST, "/byok", Some(&body)).await?;
        let id = v.pointer("/data/id").or_else(|| v.get("id")).and_then(Value::as_str).unwrap_or_default().to_owned();
        names.insert(id, name.to_owned());
    }
    Ok((inference_key, names))
}

/// Where the running demo answers, and the keys to call it with.
fn print_how_to_use(url: &str, mgmt: &str, inference_key: &str) {
    println!("Gateway:        {url}   (OpenAI SDK: base_url={url}/v1)");
    println!("Models:         {url}/v1/models");
    println!("Metrics:        {url}/metrics   (Prometheus; docs/grafana-keyway.json is a dashboard for it)");
    println!("Health:         {url}/health");
    println!("Management key: {mgmt}");
    println!("Inference key:  {inference_key}");
    println!("Try:  curl -s {url}/v1/chat/completions -H \"Authorization: Bearer {inference_key}\" \\");
    println!("        -H 'content-type: application/json' -d '{{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'");
    println!("      KEYWAY_URL={url} KEYWAY_MANAGEMENT_KEY={mgmt} keyway byok list");
}

/// A gateway over the fakes, with the operator's own Anthropic key as its system credential.
fn demo_config(data_dir: &std::path::Path, listen: Option<SocketAddr>, fakes: &Fakes) -> Config {
    let mut config = Config { data_dir: data_dir.to_path_buf(), ..Config::default() };
    config.listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    for (slug, url) in fakes.base_urls() {
        config.providers.insert(slug.to_owned(), keyway_gateway::config::ProviderSettings { base_url: Some(url) });
    }
    // The operator's own Anthropic key (a literal is fine for a throwaway demo; use env:/file: in real configs).
    config.system_credentials.push(SystemCredentialConfig {
        provider: "anthropic".into(),
        key: "sk-ant-demo-system-key-0001".into(),
        name: Some("system-anthropic".into()),
        zdr: false,
    });
    config
}

pub async fn run(once: bool, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    if std::env::var_os("KEYWAY_LOG").is_none() {
        // The demo's output is its table; only warnings from the server underneath.
        crate::init_tracing_with("warn", "text", None);
    } else {
        crate::init_tracing_with("", "text", None);
    }
    let tmp = tempfile::Builder::new().prefix("keyway-demo-").tempdir()?;
    let fakes = Fakes::start().await.context("starting the fake providers")?;

    let config = demo_config(tmp.path(), listen, &fakes);
    let (state, boot) = AppState::build(config.clone()).await?;
    let mgmt = boot.management_key.as_ref().map(|k| k.as_str().to_owned()).context("the demo store was not fresh")?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keyway_gateway::serve(listener, state.clone(), async move {
        let _ = stop_rx.await;
    }));

    // Setup through the management API, exactly as `keyway byok add` / `keyway keys create` do.
    let api = Client::new(&Remote { url: url.clone(), management_key: Some(mgmt.clone()), output: Output::Json })?;
    let (inference_key, names) = demo_setup(&api).await?;
    // The fault switch: the primary OpenAI key is rate limited from now on.
    fakes.openai.set_fault_for_key(PRIMARY_SECRET, Fault::RateLimit { retry_after_secs: 30 });

    println!("Keyway demo: gateway {url} in front of fake OpenAI, Anthropic and Bedrock on loopback");
    println!("workspace \"Demo\": BYOK keys `openai primary` (rate limited by the fake), `openai backup`, `bedrock (IAM)`;");
    println!("system credential: Anthropic. Data dir: {} (deleted on exit)\n", tmp.path().display());

    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    let mut outcomes = Vec::new();
    for (i, step) in steps().iter().enumerate() {
        let resp = http.post(format!("{url}{}", step.path)).bearer_auth(&inference_key).json(&step.body).send().await?;
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let _ = resp.bytes().await?; // drain (streams end with [DONE])
        let gen = header(&h, "x-keyway-generation-id");
        let detail = generation(&api, &gen).await;
        let cred = header(&h, "x-keyway-credential");
        let attempts = match detail.as_ref().and_then(|d| d.get("attempts")).and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list
                .iter()
                .map(|a| {
                    let c = a.get("credential_id").and_then(Value::as_str).unwrap_or("-");
                    let p = a.get("provider").and_then(Value::as_str).unwrap_or("-");
                    let s = a.get("status").map(|s| s.to_string()).unwrap_or_default();
                    match names.get(c).map(String::as_str) {
                        Some("system") | None => format!("{p}:{c} {s}"),
                        Some(name) => format!("{name} {s}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(" -> "),
            _ => format!("{} attempt(s)", header(&h, "x-keyway-attempts")),
        };
        let tokens = detail
            .as_ref()
            .map(|d| format!("{}/{}", crate::cli::cell(d.get("tokens_prompt")), crate::cli::cell(d.get("tokens_completion"))))
            .unwrap_or_else(|| "-".into());
        let cost_micros = detail.as_ref().and_then(|d| d.get("cost_micros")).and_then(Value::as_i64);
        let cost = usd(cost_micros);
        let name_of = |c: &str| names.get(c).cloned().unwrap_or_else(|| c.to_owned());
        outcomes.push(Outcome {
            n: i + 1,
            model: step.body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned(),
            status,
            provider: header(&h, "x-keyway-provider"),
            served_by: name_of(&cred),
            byok: header(&h, "x-keyway-byok") == "true",
            attempts: detail
                .as_ref()
                .and_then(|d| d.get("attempts"))
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|a| {
                            let c = a.get("credential_id").and_then(Value::as_str).unwrap_or("-");
                            (name_of(c), a.get("status").and_then(Value::as_u64).unwrap_or(0) as u16)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            routing_options: step.body.get("provider").cloned(),
            cost_micros,
        });
        rows.push(vec![
            (i + 1).to_string(),
            step.label.to_owned(),
            status.to_string(),
            header(&h, "x-keyway-provider"),
            names.get(&cred).cloned().unwrap_or(cred),
            attempts,
            tokens,
            cost,
        ]);
    }
    print!("{}", text_table(&["#", "request", "status", "served by", "credential", "attempts (credential status)", "tokens in/out", "cost"], &rows));
    println!();
    for note in explain(&outcomes) {
        println!("{note}");
    }
    println!();
    print_how_to_use(&url, &mgmt, &inference_key);

    if !once {
        println!("\nServing until Ctrl-C.");
        crate::shutdown_signal().await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    drop(fakes);
    Ok(())
}

/// The generation record, once the usage writer has stored it (it writes off the request path).
async fn generation(api: &Client, id: &str) -> Option<Value> {
    if id == "-" {
        return None;
    }
    for _ in 0..40 {
        match api.get(&format!("/generation?id={id}")).await {
            Ok(v) => return Some(v.get("data").cloned().unwrap_or(v)),
            Err(e) if e.to_string().contains(" 404 ") && !e.to_string().contains("no route") => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => return None,
        }
    }
    None
}
