//! `keyway route`: the route plan a chat request would get (`POST /api/v1/route`), without
//! calling any upstream: candidates in order, and every key or provider left out and why.

use super::{cell, text_table, Client, Output, Remote};
use anyhow::Context;
use clap::Args;
use reqwest::Method;
use serde_json::{json, Map, Value};

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The model slug (`openai/gpt-4o-mini`).
    #[arg(long)]
    model: String,
    /// The inference key (`kw-...`) to plan for: its workspace's keys, its assignments. Prefer
    /// the environment variable over the flag.
    #[arg(long, env = "KEYWAY_API_KEY", hide_env_values = true)]
    key: String,
    /// `provider.order`: providers to try first (repeat, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    order: Vec<String>,
    /// `provider.only`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// `provider.ignore`.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// `provider.byok_first`: `false` walks the provider order first.
    #[arg(long)]
    byok_first: Option<bool>,
    /// The request's `user` (for keys limited to users).
    #[arg(long)]
    user: Option<String>,
    /// More of the request body, as a JSON object (merged under the flags above).
    #[arg(long, value_name = "JSON")]
    body: Option<String>,
}

fn body(args: &RouteArgs) -> anyhow::Result<Value> {
    let mut b: Map<String, Value> = match &args.body {
        Some(text) => serde_json::from_str(text).context("--body must be a JSON object")?,
        None => Map::new(),
    };
    b.insert("model".into(), json!(args.model));
    b.entry("messages").or_insert_with(|| json!([{"role": "user", "content": "route"}]));
    if let Some(u) = &args.user {
        b.insert("user".into(), json!(u));
    }
    let provider = b.entry("provider").or_insert_with(|| json!({}));
    if let Some(p) = provider.as_object_mut() {
        for (k, list) in [("order", &args.order), ("only", &args.only), ("ignore", &args.ignore)] {
            if !list.is_empty() {
                p.insert(k.into(), json!(list));
            }
        }
        if let Some(f) = args.byok_first {
            p.insert("byok_first".into(), json!(f));
        }
    }
    Ok(Value::Object(b))
}

pub async fn run(remote: &Remote, args: RouteArgs) -> anyhow::Result<()> {
    let c = Client::with_key(remote, args.key.clone())?;
    let v = c.call(Method::POST, "/route", Some(&body(&args)?)).await?;
    if c.output == Output::Json {
        c.print(&v, &[]);
        return Ok(());
    }
    let d = v.get("data").unwrap_or(&v);
    println!("model {} (precedence {})", cell(d.get("model")), cell(d.get("precedence")));
    let rows = |key: &str, cols: &[&str]| -> Vec<Vec<String>> {
        d.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| cols.iter().map(|k| cell(x.get(*k))).collect()).collect())
            .unwrap_or_default()
    };
    let cands = rows("candidates", &["position", "provider", "credential_id", "credential_name", "section", "endpoint_model", "degraded"]);
    println!("\ncandidates:");
    print!("{}", text_table(&["#", "provider", "credential", "name", "section", "endpoint model", "degraded"], &cands));
    let excluded = rows("excluded", &["provider", "credential_id", "credential_name", "code", "reason"]);
    if !excluded.is_empty() {
        println!("\nleft out:");
        print!("{}", text_table(&["provider", "credential", "name", "code", "reason"], &excluded));
    }
    if let Some(e) = d.get("error").filter(|e| !e.is_null()) {
        println!("\nno route: {}", cell(e.get("message")));
    }
    Ok(())
}
