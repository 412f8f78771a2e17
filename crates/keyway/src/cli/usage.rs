//! `keyway usage`: credits and spend (`/api/v1/credits`) with activity grouped by model, provider,
//! key, credential or day (`/api/v1/activity`), or one generation in detail (`/api/v1/generation`).

use super::byok::urlencode;
use super::{cell, text_table, Client, Output};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Show one generation (the `x-keyway-generation-id` of a response) with its attempts.
    #[arg(long, value_name = "ID")]
    generation: Option<String>,
    /// Group activity by: model, provider, key, credential or day.
    #[arg(long, default_value = "model")]
    group_by: String,
    /// Start date (YYYY-MM-DD; default: 30 days ago).
    #[arg(long)]
    from: Option<String>,
    /// End date, exclusive (default: now).
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    workspace_id: Option<String>,
}

fn usd(micros: Option<&Value>) -> String {
    match micros.and_then(Value::as_i64) {
        Some(m) => format!("${:.6}", m as f64 / 1e6),
        None => "-".into(),
    }
}

pub async fn run(c: &Client, args: UsageArgs) -> anyhow::Result<()> {
    if let Some(id) = args.generation {
        let v = c.get(&format!("/generation?id={}", urlencode(&id))).await?;
        if c.output == Output::Json {
            c.print(&v, &[]);
            return Ok(());
        }
        let d = v.get("data").unwrap_or(&v);
        c.print(d, &["id", "model", "provider_name", "credential_id", "is_byok", "tokens_prompt", "tokens_completion", "cost_micros", "latency"]);
        let attempts: Vec<Vec<String>> = d
            .get("attempts")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| ["provider", "credential_id", "status", "error", "latency_ms"].iter().map(|k| cell(x.get(*k))).collect())
                    .collect()
            })
            .unwrap_or_default();
        if !attempts.is_empty() {
            println!("\nattempts:");
            print!("{}", text_table(&["provider", "credential", "status", "error", "latency_ms"], &attempts));
        }
        return Ok(());
    }
    let credits = c.get("/credits").await?;
    let mut q = format!("/activity?group_by={}", urlencode(&args.group_by));
    for (k, v) in [("from", &args.from), ("to", &args.to), ("workspace_id", &args.workspace_id)] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    let activity = c.get(&q).await?;
    if c.output == Output::Json {
        c.print(&serde_json::json!({"credits": credits.get("data").unwrap_or(&credits), "activity": activity.get("data").unwrap_or(&activity)}), &[]);
        return Ok(());
    }
    let d = credits.get("data").unwrap_or(&credits);
    let rows = vec![
        vec!["balance".to_owned(), usd(d.get("balance_micros"))],
        vec!["used this month".to_owned(), usd(d.get("used_this_month_micros"))],
        vec!["total credits".to_owned(), usd(d.get("total_credits_micros"))],
        vec!["total usage".to_owned(), usd(d.get("total_usage_micros"))],
        vec!["BYOK requests this month".to_owned(), cell(d.get("byok_requests_this_month"))],
    ];
    print!("{}", text_table(&["credits", "value"], &rows));
    let key = match args.group_by.as_str() {
        "key" => "api_key_hash",
        "credential" => "credential_id",
        "day" => "date",
        other => other,
    };
    let rows: Vec<Vec<String>> = activity
        .get("data")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        cell(r.get(key)),
                        cell(r.get("requests")),
                        cell(r.get("byok_requests")),
                        cell(r.get("prompt_tokens")),
                        cell(r.get("completion_tokens")),
                        usd(r.get("cost_micros")),
                        usd(r.get("charged_micros")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    println!();
    if rows.is_empty() {
        println!("no requests in this period");
    } else {
        print!("{}", text_table(&[&args.group_by, "requests", "byok", "tokens in", "tokens out", "cost", "charged"], &rows));
    }
    Ok(())
}
