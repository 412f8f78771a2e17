//! The audit log: every change to credentials, keys, workspaces, credits, limits and the keyring.
//!
//! A change that happened is recorded *in its own transaction*: a handler asks for
//! `store.audited(entry)` and calls the usual mutation on that handle, which writes the audit row
//! beside the change and commits both or neither. Attempts that changed nothing (refused, failed)
//! are recorded on their own with [`Store::record_audit`]. No secret value is ever recorded.

use crate::{new_id, now_ms, Result, Store, StoreError};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use std::sync::Arc;

/// Who acted, and from where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditActor {
    /// The first 8 characters of the acting key's hash (`local` for the CLI on the data dir).
    pub key: String,
    pub name: String,
    /// The peer address of the request.
    pub source: Option<String>,
}

/// What a handler is about to do; the store adds the target and the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub actor: AuditActor,
    /// `byok.create`, `key.update`, `keyring.rotate`, ...
    pub action: String,
    /// The fields set, with their new values where they are not secret (`{"key": "(replaced)"}`).
    pub changes: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub workspace_id: Option<String>,
    pub actor_key: String,
    pub actor_name: String,
    pub source: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub changes: Value,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
}

/// Filters for [`Store::list_audit`]; `cursor` continues a previous page.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// `None`: every workspace (admins); otherwise that workspace's rows.
    pub workspace_id: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// An actor key prefix (8 hex) or name.
    pub actor: Option<String>,
    pub target_id: Option<String>,
    pub action: Option<String>,
    pub cursor: Option<String>,
    pub limit: i64,
}

const COLUMNS: &str = "id, at, workspace_id, actor_key, actor_name, source, action, target_type, target_id, changes, outcome";

fn row_to_audit(r: &sqlx::any::AnyRow) -> Result<AuditRow> {
    let changes: String = r.try_get("changes")?;
    Ok(AuditRow {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        workspace_id: r.try_get("workspace_id")?,
        actor_key: r.try_get("actor_key")?,
        actor_name: r.try_get("actor_name")?,
        source: r.try_get("source")?,
        action: r.try_get("action")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        changes: serde_json::from_str(&changes).unwrap_or(Value::Null),
        outcome: r.try_get("outcome")?,
    })
}

/// Newest first: `at` descending, then id. The cursor is the last row's `<at>:<id>`.
fn parse_cursor(c: &str) -> Result<(i64, String)> {
    let (at, id) = c.split_once(':').ok_or_else(|| StoreError::Conflict("malformed cursor".into()))?;
    Ok((at.parse().map_err(|_| StoreError::Conflict("malformed cursor".into()))?, id.to_owned()))
}

impl Store {
    /// A handle whose next mutations also write `entry` to the audit log, in their transaction.
    pub fn audited(&self, entry: AuditEntry) -> Store {
        Store { audit: Some(Arc::new(entry)), ..self.clone() }
    }

    /// Writes the pending audit entry (if this handle has one) on `conn`, inside the caller's transaction.
    pub(crate) async fn audit_in(&self, conn: &mut sqlx::AnyConnection, target_type: &str, target_id: &str, workspace_id: Option<&str>) -> Result<()> {
        let Some(e) = &self.audit else { return Ok(()) };
        let row = AuditRow {
            id: new_id(),
            at: now_ms(),
            workspace_id: workspace_id.map(str::to_owned),
            actor_key: e.actor.key.clone(),
            actor_name: e.actor.name.clone(),
            source: e.actor.source.clone(),
            action: e.action.clone(),
            target_type: target_type.to_owned(),
            target_id: Some(target_id.to_owned()),
            changes: e.changes.clone(),
            outcome: "ok".into(),
        };
        self.insert_audit(conn, &row).await
    }

    async fn insert_audit(&self, conn: &mut sqlx::AnyConnection, row: &AuditRow) -> Result<()> {
        self.count();
        sqlx::query(&format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
            .bind(&row.id)
            .bind(row.at)
            .bind(&row.workspace_id)
            .bind(&row.actor_key)
            .bind(&row.actor_name)
            .bind(&row.source)
            .bind(&row.action)
            .bind(&row.target_type)
            .bind(&row.target_id)
            .bind(row.changes.to_string())
            .bind(&row.outcome)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Records an attempt that changed nothing (refused or failed), on its own.
    pub async fn record_audit(&self, row: &AuditRow) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        self.insert_audit(&mut conn, row).await
    }

    /// A page of the log, newest first, and the cursor of the next page when there is one.
    pub async fn list_audit(&self, f: &AuditFilter) -> Result<(Vec<AuditRow>, Option<String>)> {
        enum Arg {
            Int(i64),
            Text(String),
        }
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut args: Vec<Arg> = Vec::new();
        let next = |args: &mut Vec<Arg>, a: Arg| {
            args.push(a);
            format!("${}", args.len())
        };
        if let Some(ws) = &f.workspace_id {
            sql += &format!(" AND workspace_id = {}", next(&mut args, Arg::Text(ws.clone())));
        }
        if let Some(t) = f.since_ms {
            sql += &format!(" AND at >= {}", next(&mut args, Arg::Int(t)));
        }
        if let Some(t) = f.until_ms {
            sql += &format!(" AND at < {}", next(&mut args, Arg::Int(t)));
        }
        if let Some(a) = &f.actor {
            let p = next(&mut args, Arg::Text(a.clone()));
            sql += &format!(" AND (actor_key = {p} OR actor_name = {p})");
        }
        if let Some(t) = &f.target_id {
            sql += &format!(" AND target_id = {}", next(&mut args, Arg::Text(t.clone())));
        }
        if let Some(a) = &f.action {
            sql += &format!(" AND action = {}", next(&mut args, Arg::Text(a.clone())));
        }
        if let Some(c) = &f.cursor {
            let (at, id) = parse_cursor(c)?;
            let pa = next(&mut args, Arg::Int(at));
            let pi = next(&mut args, Arg::Text(id));
            sql += &format!(" AND (at < {pa} OR (at = {pa} AND id > {pi}))");
        }
        let limit = f.limit.clamp(1, 500);
        sql += &format!(" ORDER BY at DESC, id LIMIT {}", next(&mut args, Arg::Int(limit + 1)));
        let mut q = sqlx::query(&sql);
        for a in args {
            q = match a {
                Arg::Int(i) => q.bind(i),
                Arg::Text(t) => q.bind(t),
            };
        }
        self.count();
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = rows.iter().map(row_to_audit).collect::<Result<Vec<_>>>()?;
        let next = if out.len() as i64 > limit {
            out.truncate(limit as usize);
            out.last().map(|r| format!("{}:{}", r.at, r.id))
        } else {
            None
        };
        Ok((out, next))
    }
}
