//! `keyway audit`: the audit log through `/api/v1/audit`, newest first.

use super::byok::urlencode;
use super::Client;
use clap::Args;

const COLUMNS: &[&str] = &["at", "actor.name", "actor.key", "actor.source", "action", "target.type", "target.id", "outcome"];

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// From this time on (RFC 3339, or unix milliseconds).
    #[arg(long)]
    since: Option<String>,
    /// Before this time.
    #[arg(long)]
    until: Option<String>,
    /// An actor's key hash prefix or name.
    #[arg(long)]
    actor: Option<String>,
    /// A target's id (credential id, key hash, workspace id, ...).
    #[arg(long)]
    target: Option<String>,
    /// An action (`byok.create`, `key.update`, `keyring.rotate`, ...).
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    workspace_id: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Continue after a previous page (its `next_cursor`).
    #[arg(long)]
    cursor: Option<String>,
}

pub async fn run(c: &Client, a: AuditArgs) -> anyhow::Result<()> {
    let mut q = vec![format!("limit={}", a.limit)];
    for (k, v) in [("since", a.since), ("until", a.until), ("actor", a.actor), ("target", a.target), ("action", a.action), ("workspace_id", a.workspace_id), ("cursor", a.cursor)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", urlencode(&v)));
        }
    }
    let v = c.get(&format!("/audit?{}", q.join("&"))).await?;
    c.print(&v, COLUMNS);
    if let (super::Output::Table, Some(next)) = (c.output, v.get("next_cursor").and_then(|n| n.as_str())) {
        println!("(more: --cursor {next})");
    }
    Ok(())
}
