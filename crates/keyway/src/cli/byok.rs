//! `keyway byok ...`: provider credentials through `/api/v1/byok`.

use super::{key_value, read_secret, Client};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

const COLUMNS: &[&str] = &["id", "provider", "name", "label", "disabled", "is_fallback", "always_use", "sort_order", "workspace_id"];

/// Where the secret comes from. `--key-env`/`--key-file`/`--key-stdin` keep it out of shell history.
#[derive(Debug, Args)]
pub struct SecretSource {
    /// The secret itself (visible in shell history and `ps`; prefer the options below).
    #[arg(long)]
    key: Option<String>,
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    key_env: Option<String>,
    /// Read the secret from this file (JSON for Bedrock/Vertex/Azure structured credentials).
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Read the secret from standard input.
    #[arg(long)]
    key_stdin: bool,
}

impl SecretSource {
    fn read(self) -> anyhow::Result<Option<Value>> {
        Ok(read_secret(self.key, self.key_env, self.key_file, self.key_stdin)?.map(key_value))
    }
}

#[derive(Debug, Subcommand)]
pub enum ByokCommand {
    /// Add a provider credential.
    Add {
        /// Provider: its slug (openai, anthropic, azure, amazon-bedrock, google-vertex, ...), display
        /// name or alias, in any case (`xAI`, `AWS Bedrock`, `Google Vertex`).
        #[arg(long)]
        provider: String,
        /// Test the key against the provider first; store it only when the test passes.
        #[arg(long)]
        test: bool,
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        secret: SecretSource,
        /// Workspace (default: the management key's own).
        #[arg(long)]
        workspace_id: Option<String>,
        /// Always use this key for its provider (OpenRouter's `is_required`).
        #[arg(long)]
        always_use: bool,
        /// Use only after the others (a fallback key).
        #[arg(long)]
        fallback: bool,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
        /// Lower goes first among keys of one provider.
        #[arg(long)]
        sort_order: Option<i64>,
        /// Restrict to these models (repeatable).
        #[arg(long = "allowed-model", value_name = "MODEL")]
        allowed_models: Vec<String>,
        /// Restrict to these Keyway API key hashes (repeatable).
        #[arg(long = "allowed-key-hash", value_name = "HASH")]
        allowed_api_key_hashes: Vec<String>,
    },
    /// List credentials (masked; secrets never leave the server).
    List {
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        workspace_id: Option<String>,
        #[arg(long, default_value_t = 0)]
        offset: u32,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one credential.
    Show { id: String },
    /// Change a credential; a new key rotates the secret in place.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        secret: SecretSource,
        #[arg(long)]
        disabled: Option<bool>,
        #[arg(long)]
        always_use: Option<bool>,
        #[arg(long)]
        fallback: Option<bool>,
        #[arg(long)]
        sort_order: Option<i64>,
    },
    /// Delete a credential.
    Rm { id: String },
    /// Send a tiny request upstream with this credential and report what came back.
    Test {
        id: String,
        /// Model to try (default: the server's choice for the provider).
        #[arg(long)]
        model: Option<String>,
    },
}

pub async fn run(c: &Client, cmd: ByokCommand) -> anyhow::Result<()> {
    match cmd {
        ByokCommand::Add { provider, test, name, secret, workspace_id, always_use, fallback, disabled, sort_order, allowed_models, allowed_api_key_hashes } => {
            let key = secret.read()?.ok_or_else(|| anyhow::anyhow!("a key is required: --key-env VAR, --key-file PATH, --key-stdin or --key"))?;
            let mut body = Map::new();
            body.insert("provider".into(), json!(provider));
            body.insert("name".into(), json!(name));
            body.insert("key".into(), key);
            body.insert("always_use".into(), json!(always_use));
            body.insert("is_fallback".into(), json!(fallback));
            body.insert("disabled".into(), json!(disabled));
            if test {
                body.insert("test".into(), json!(true));
            }
            if let Some(w) = workspace_id {
                body.insert("workspace_id".into(), json!(w));
            }
            if let Some(s) = sort_order {
                body.insert("sort_order".into(), json!(s));
            }
            if !allowed_models.is_empty() {
                body.insert("allowed_models".into(), json!(allowed_models));
            }
            if !allowed_api_key_hashes.is_empty() {
                body.insert("allowed_api_key_hashes".into(), json!(allowed_api_key_hashes));
            }
            let v = c.call(Method::POST, "/byok", Some(&Value::Object(body))).await?;
            c.print(&v, COLUMNS);
        }
        ByokCommand::List { provider, workspace_id, offset, limit } => {
            let mut q = format!("/byok?offset={offset}&limit={limit}");
            if let Some(p) = provider {
                q.push_str(&format!("&provider={}", urlencode(&p)));
            }
            if let Some(w) = workspace_id {
                q.push_str(&format!("&workspace_id={}", urlencode(&w)));
            }
            let v = c.get(&q).await?;
            c.print(&v, COLUMNS);
        }
        ByokCommand::Show { id } => {
            let v = c.get(&format!("/byok/{}", urlencode(&id))).await?;
            c.print(&v, COLUMNS);
        }
        ByokCommand::Update { id, name, secret, disabled, always_use, fallback, sort_order } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(k) = secret.read()? {
                body.insert("key".into(), k);
            }
            if let Some(d) = disabled {
                body.insert("disabled".into(), json!(d));
            }
            if let Some(a) = always_use {
                body.insert("always_use".into(), json!(a));
            }
            if let Some(f) = fallback {
                body.insert("is_fallback".into(), json!(f));
            }
            if let Some(s) = sort_order {
                body.insert("sort_order".into(), json!(s));
            }
            if body.is_empty() {
                anyhow::bail!("nothing to update: give at least one option (see --help)");
            }
            let v = c.call(Method::PATCH, &format!("/byok/{}", urlencode(&id)), Some(&Value::Object(body))).await?;
            c.print(&v, COLUMNS);
        }
        ByokCommand::Rm { id } => {
            let v = c.call(Method::DELETE, &format!("/byok/{}", urlencode(&id)), None).await?;
            match c.output {
                super::Output::Json => c.print(&v, &[]),
                super::Output::Table => println!("deleted {id}"),
            }
        }
        ByokCommand::Test { id, model } => {
            let body = model.map(|m| json!({"model": m})).unwrap_or_else(|| json!({}));
            let v = c.call(Method::POST, &format!("/byok/{}/test", urlencode(&id)), Some(&body)).await?;
            let data = v.get("data").cloned().unwrap_or(v);
            c.print(&data, &["ok", "status", "latency_ms", "model"]);
            if c.output == super::Output::Table {
                if let Some(e) = data.pointer("/response/error").or_else(|| data.get("error")) {
                    println!("error: {}", super::cell(Some(e)));
                }
            }
            if data.get("ok") == Some(&Value::Bool(false)) {
                anyhow::bail!("the credential did not pass the test");
            }
        }
    }
    Ok(())
}

/// Path segments and query values are ids and slugs; escape anything else anyway.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
