//! `keyway keys ...`: Keyway API keys through `/api/v1/keys`.

use super::byok::urlencode;
use super::{Client, Output};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Map, Value};

const COLUMNS: &[&str] = &["hash", "name", "label", "kind", "disabled", "workspace_id", "created_at"];

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an inference key; the raw key is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        workspace_id: Option<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Concurrent requests.
        #[arg(long)]
        max_concurrent: Option<u64>,
        /// Daily budget in micro-units of the account currency.
        #[arg(long)]
        budget_daily_micros: Option<u64>,
        /// Monthly budget in micro-units.
        #[arg(long)]
        budget_monthly_micros: Option<u64>,
    },
    /// List keys (never the raw keys: only hash and masked label).
    List {
        #[arg(long, default_value_t = 0)]
        offset: u32,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Delete a key by hash (or id).
    Rm { hash: String },
}

pub async fn run(c: &Client, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create { name, workspace_id, rpm, tpm, max_concurrent, budget_daily_micros, budget_monthly_micros } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            if let Some(w) = workspace_id {
                body.insert("workspace_id".into(), json!(w));
            }
            let mut limits = Map::new();
            for (k, v) in [
                ("requests_per_minute", rpm),
                ("tokens_per_minute", tpm),
                ("max_concurrent", max_concurrent),
                ("budget_daily_micros", budget_daily_micros),
                ("budget_monthly_micros", budget_monthly_micros),
            ] {
                if let Some(v) = v {
                    limits.insert(k.into(), json!(v));
                }
            }
            if !limits.is_empty() {
                body.insert("limits".into(), Value::Object(limits));
            }
            let v = c.call(Method::POST, "/keys", Some(&Value::Object(body))).await?;
            match c.output {
                Output::Json => c.print(&v, &[]),
                Output::Table => {
                    c.print(&v, COLUMNS);
                    println!("\nkey (shown once, store it now): {}", super::cell(v.get("key")));
                }
            }
        }
        KeysCommand::List { offset, limit } => {
            let v = c.get(&format!("/keys?offset={offset}&limit={limit}")).await?;
            c.print(&v, COLUMNS);
        }
        KeysCommand::Rm { hash } => {
            let v = c.call(Method::DELETE, &format!("/keys/{}", urlencode(&hash)), None).await?;
            match c.output {
                Output::Json => c.print(&v, &[]),
                Output::Table => println!("deleted {hash}"),
            }
        }
    }
    Ok(())
}
