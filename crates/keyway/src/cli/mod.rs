//! The management CLI: a thin client of a running server's management API.
//!
//! Every command here is an HTTP call to `KEYWAY_URL` with `KEYWAY_MANAGEMENT_KEY`, so the CLI
//! goes through the same validation, authorisation and audit path as any other client: one
//! code path, never a second door into the database. (`migrate` and `rotate-master-key` are
//! the local exceptions and live in `local.rs`.)

pub mod audit;
pub mod byok;
pub mod keys;
pub mod route;
pub mod transfer;
pub mod usage;

use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde_json::Value;
use std::fmt::Write as _;

/// `--output`: a table for people, JSON for scripts (the API's own objects, unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Connection options shared by every API command.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Base URL of the running Keyway server.
    #[arg(long, env = "KEYWAY_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// Management key (`kw-mgmt-...`). Prefer the environment variable over the flag, so the key
    /// stays out of shell history and `ps`.
    #[arg(long, env = "KEYWAY_MANAGEMENT_KEY", hide_env_values = true, global = true)]
    pub management_key: Option<String>,
    /// How to print results.
    #[arg(long, short, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    pub output: Output,
}

impl Client {
    pub fn new(r: &Remote) -> anyhow::Result<Self> {
        let key = r
            .management_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| anyhow!("no management key: set KEYWAY_MANAGEMENT_KEY (printed once by the server's first start)"))?;
        Ok(Self {
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build()?,
            base: r.url.trim_end_matches('/').to_owned(),
            key,
            output: r.output,
        })
    }

    /// A client that calls as an inference key (`keyway route`) instead of the management key.
    pub fn with_key(r: &Remote, key: String) -> anyhow::Result<Self> {
        anyhow::ensure!(!key.is_empty(), "no inference key: set KEYWAY_API_KEY or pass --key");
        Ok(Self { http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build()?, base: r.url.trim_end_matches('/').to_owned(), key, output: r.output })
    }

    /// Sends a request to `/api/v1{path}`; an error status becomes an error carrying the API's message.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach Keyway at {} (is `keyway serve` running? set KEYWAY_URL)", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        let json: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if !status.is_success() {
            let mut msg = json
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| json.to_string());
            // A failed Test key (`byok add --test`): what the provider said.
            if let Some(t) = json.pointer("/error/metadata/test") {
                let why = t.get("error").map_or_else(|| t.to_string(), |e| e.as_str().map_or_else(|| e.to_string(), str::to_owned));
                let _ = write!(msg, " (test: status {}, {why})", t.get("status").unwrap_or(&Value::Null));
            }
            bail!("{method} {path}: {} {msg}", status.as_u16());
        }
        Ok(json)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// Prints `v` as JSON, or as a table of `columns` (rows are `data` when `v` has it).
    pub fn print(&self, v: &Value, columns: &[&str]) {
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            Output::Table => {
                let data = v.get("data").unwrap_or(v);
                let rows: Vec<&Value> = match data {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                print!("{}", table(columns, &rows));
                if let Some(n) = v.get("total_count").and_then(Value::as_i64) {
                    if n as usize > rows.len() {
                        println!("({} of {n}; use --offset/--limit for more)", rows.len());
                    }
                }
            }
        }
    }
}

/// A cell as text: strings bare, lists joined, null as `-`.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

/// A plain left-aligned text table (no dependency; the CLI prints a handful of rows).
pub fn table(columns: &[&str], rows: &[&Value]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|c| cell(r.pointer(&format!("/{}", c.replace('.', "/"))))).collect()).collect();
    text_table(columns, &cells)
}

pub fn text_table(header: &[&str], cells: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in cells {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let parts: Vec<String> = row.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0))).collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &header.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>());
    for row in cells {
        line(&mut out, row);
    }
    out
}

/// Reads a secret from exactly one source; flags never need to carry it.
pub fn read_secret(key: Option<String>, key_env: Option<String>, key_file: Option<std::path::PathBuf>, stdin: bool) -> anyhow::Result<Option<String>> {
    let n = usize::from(key.is_some()) + usize::from(key_env.is_some()) + usize::from(key_file.is_some()) + usize::from(stdin);
    if n > 1 {
        bail!("give the key one way: --key, --key-env, --key-file or --key-stdin");
    }
    if let Some(k) = key {
        return Ok(Some(k));
    }
    if let Some(name) = key_env {
        return std::env::var(&name).map(Some).map_err(|_| anyhow!("environment variable `{name}` is not set"));
    }
    if let Some(p) = key_file {
        return Ok(Some(std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?.trim().to_owned()));
    }
    if stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        return Ok(Some(s.trim().to_owned()));
    }
    Ok(None)
}

/// The `key` field: JSON (structured credentials such as Bedrock or Vertex) or a plain string.
pub fn key_value(raw: String) -> Value {
    let t = raw.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(&raw) {
            return v;
        }
    }
    Value::String(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_show_nulls() {
        let rows = [json!({"id": "a", "name": "first", "x": null}), json!({"id": "bbbb", "name": "n", "x": ["p", "q"]})];
        let refs: Vec<&Value> = rows.iter().collect();
        let t = table(&["id", "name", "x"], &refs);
        assert_eq!(t, "ID    NAME   X\na     first  -\nbbbb  n      p,q\n");
    }

    #[test]
    fn structured_keys_are_json() {
        assert_eq!(key_value("sk-abc".into()), json!("sk-abc"));
        assert_eq!(key_value("{\"accessKeyId\":\"A\"}".into()), json!({"accessKeyId": "A"}));
        assert_eq!(key_value("{not json".into()), json!("{not json"));
    }
}
