//! `keyway export` / `keyway import`: move BYOK credentials between Keyway servers.
//!
//! The export holds **metadata only** — provider, name, flags, routing restrictions, the
//! masked label — and never a secret: the management API never returns one, and a file of
//! clear-text provider keys is exactly what BYOK is meant to avoid. Each entry has a `key`
//! field set to null; before importing, fill it with a *reference* (`env:NAME` or
//! `file:/path`) that the importing machine resolves, or pass `--secrets map.json`
//! (`{"<exported id or name>": "env:NAME", ...}`). Import checks every entry has a secret
//! before it creates anything.

use super::{key_value, Client};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// Fields copied from a BYOK object into an export entry, and from it into a create request.
const FIELDS: &[&str] = &[
    "provider",
    "name",
    "disabled",
    "is_fallback",
    "always_use",
    "is_byok_only",
    "sort_order",
    "allowed_models",
    "allowed_api_key_hashes",
    "allowed_user_ids",
    "model_mappings",
    "declared_region",
    "declared_zdr",
];

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write here instead of standard output.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Only this workspace's credentials.
    #[arg(long)]
    workspace_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// An export file (`keyway export`), each entry's `key` filled with `env:NAME` or `file:/path`.
    file: PathBuf,
    /// JSON map from an entry's exported `id` or `name` to a secret reference.
    #[arg(long)]
    secrets: Option<PathBuf>,
    /// Create them in this workspace (default: the management key's own).
    #[arg(long)]
    workspace_id: Option<String>,
    /// Skip entries without a secret instead of refusing to start.
    #[arg(long)]
    skip_missing: bool,
}

pub async fn export(c: &Client, args: ExportArgs) -> anyhow::Result<()> {
    let mut entries = Vec::new();
    let mut offset = 0;
    // The length is known after the first page; indicatif draws only on a terminal (stderr).
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} exporting").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    loop {
        let mut path = format!("/byok?offset={offset}&limit=100");
        if let Some(w) = &args.workspace_id {
            path.push_str(&format!("&workspace_id={}", super::byok::urlencode(w)));
        }
        let page = c.get(&path).await?;
        let data = page.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let n = data.len();
        for item in data {
            let mut e = Map::new();
            for k in ["id", "workspace_id", "label"].iter().chain(FIELDS) {
                if let Some(v) = item.get(*k) {
                    e.insert((*k).into(), v.clone());
                }
            }
            e.insert("key".into(), Value::Null);
            entries.push(Value::Object(e));
        }
        offset += n;
        let total = page.get("total_count").and_then(Value::as_u64).unwrap_or(0) as usize;
        bar.set_length(total.max(offset) as u64);
        bar.inc(n as u64);
        if n == 0 || offset >= total {
            break;
        }
    }
    bar.finish_and_clear();
    let count = entries.len();
    let doc = json!({
        "keyway_export": 1,
        "exported_at": chrono_now(),
        "note": "metadata only: no secrets. Set each `key` to env:NAME or file:/path before `keyway import`.",
        "byok": entries,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    match args.file {
        Some(p) => {
            std::fs::write(&p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("exported {count} credential(s) to {} (metadata only, no secrets)", p.display());
        }
        None => println!("{text}"),
    }
    Ok(())
}

fn chrono_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("unix:{secs}")
}

/// `env:NAME` / `file:/path` -> the secret. Anything else is taken literally (with a warning).
fn resolve(reference: &str) -> anyhow::Result<String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| anyhow!("environment variable `{name}` is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return Ok(std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?.trim().to_owned());
    }
    eprintln!("warning: an inline secret in the import file; prefer env:NAME or file:/path");
    Ok(reference.to_owned())
}

pub async fn import(c: &Client, args: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let doc: Value = serde_json::from_str(&text).context("the import file is not JSON")?;
    let entries = doc.get("byok").and_then(Value::as_array).ok_or_else(|| anyhow!("the import file has no `byok` list"))?;
    let map: HashMap<String, String> = match &args.secrets {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?)
            .context("--secrets must be a JSON object of strings")?,
        None => HashMap::new(),
    };

    // Resolve every secret before creating anything: a half-done import is worse than none.
    let mut plan = Vec::new();
    let mut missing = Vec::new();
    for e in entries {
        let id = e.get("id").and_then(Value::as_str).unwrap_or("");
        let name = e.get("name").and_then(Value::as_str).unwrap_or("");
        let reference = e
            .get("key")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.get(id).cloned())
            .or_else(|| map.get(name).cloned());
        match reference {
            Some(r) => {
                let secret = resolve(&r).with_context(|| format!("entry `{name}`"))?;
                let mut body = Map::new();
                for k in FIELDS {
                    if let Some(v) = e.get(*k).filter(|v| !v.is_null()) {
                        body.insert((*k).into(), v.clone());
                    }
                }
                body.insert("key".into(), key_value(secret));
                if let Some(w) = &args.workspace_id {
                    body.insert("workspace_id".into(), json!(w));
                }
                plan.push((name.to_owned(), Value::Object(body)));
            }
            None => missing.push(if name.is_empty() { id.to_owned() } else { name.to_owned() }),
        }
    }
    if !missing.is_empty() && !args.skip_missing {
        bail!("no secret for: {} (fill `key` with env:NAME or file:/path, use --secrets, or --skip-missing)", missing.join(", "));
    }

    let bar = indicatif::ProgressBar::new(plan.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut created = 0;
    let mut failed = Vec::new();
    for (name, body) in plan {
        bar.set_message(name.clone());
        match c.call(Method::POST, "/byok", Some(&body)).await {
            Ok(_) => created += 1,
            Err(e) => failed.push(format!("{name}: {e}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("imported {created}, failed {}, skipped {}", failed.len(), missing.len());
    for f in &failed {
        eprintln!("  {f}");
    }
    if !failed.is_empty() {
        bail!("{} credential(s) could not be imported", failed.len());
    }
    Ok(())
}
