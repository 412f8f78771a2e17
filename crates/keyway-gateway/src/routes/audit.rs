//! `GET /api/v1/audit`: the audit log, newest first. Admins read everything (or one workspace
//! with `workspace_id`); owners and viewers read their own workspace's rows.
//! Filters: `since`, `until` (RFC 3339 or unix milliseconds), `actor` (key hash prefix or name),
//! `target` (an id or key hash), `action`; `limit` (1..500, default 100) and `cursor` (from `next_cursor`).

use crate::auth::Manager;
use crate::error::ApiError;
use crate::render::iso;
use crate::state::SharedState;
use crate::extract::Query;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use keyway_store::AuditFilter;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    since: Option<String>,
    until: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    action: Option<String>,
    workspace_id: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

fn time_ms(field: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::BadRequest(format!("`{field}` must be RFC 3339 (2026-12-07T10:00:00Z) or unix milliseconds")))
}

#[utoipa::path(get, operation_id = "audit_list", path = "/api/v1/audit", tag = "usage",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339 or unix milliseconds"),
        ("until" = Option<String>, Query, description = "RFC 3339 or unix milliseconds"),
        ("actor" = Option<String>, Query, description = "Key hash prefix or name"),
        ("target" = Option<String>, Query, description = "An id or key hash"),
        ("action" = Option<String>, Query, description = "`byok.create`, `key.update`, ..."),
        ("workspace_id" = Option<String>, Query, description = "A workspace (admin keys: any)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1..500, default 100"),
    ),
    responses((status = 200, description = "Audit entries, newest first", body = crate::api_schema::AuditList), crate::api_schema::Errors))]
pub async fn list(State(state): State<SharedState>, m: Manager, Query(q): Query<AuditQuery>) -> Result<impl IntoResponse, ApiError> {
    let workspace_id = match q.workspace_id.as_deref() {
        Some(ws) => Some(m.target_workspace(Some(ws))?.to_owned()),
        None => m.scope().map(str::to_owned),
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 100,
        Some(s) => s.parse::<i64>().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| ApiError::BadRequest("`limit` must be 1 to 500".into()))?,
    };
    if let Some(c) = &q.cursor {
        if c.split_once(':').is_none_or(|(at, _)| at.parse::<i64>().is_err()) {
            return Err(ApiError::BadRequest("`cursor` is not one this endpoint gave".into()));
        }
    }
    let filter = AuditFilter {
        workspace_id,
        since_ms: q.since.as_deref().map(|v| time_ms("since", v)).transpose()?,
        until_ms: q.until.as_deref().map(|v| time_ms("until", v)).transpose()?,
        actor: q.actor.filter(|s| !s.is_empty()),
        target_id: q.target.filter(|s| !s.is_empty()),
        action: q.action.filter(|s| !s.is_empty()),
        cursor: q.cursor.filter(|s| !s.is_empty()),
        limit,
    };
    let (rows, next) = state.store.list_audit(&filter).await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "at": iso(r.at), "workspace_id": r.workspace_id,
                "actor": {"key": r.actor_key, "name": r.actor_name, "source": r.source},
                "action": r.action, "target": {"type": r.target_type, "id": r.target_id},
                "changes": r.changes, "outcome": r.outcome,
            })
        })
        .collect();
    Ok(Json(json!({"data": data, "next_cursor": next})))
}
