//! `/api/v1/credits`: a workspace's balance (any key of the workspace; an admin key may name
//! `workspace_id`), and top-ups (admin management keys only: a workspace can't grant itself money).
//! Read from the in-memory ledger, so it agrees with what admission checks use.

use crate::auth::{Admin, AnyKey};
use crate::error::ApiError;
use crate::render::credits_json;
use crate::extract::JsonBody;
use crate::render::iso;
use crate::state::SharedState;
use crate::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keyway_store::{ApiKeyRecord, CreditKind};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, Default)]
pub struct CreditsQuery {
    workspace_id: Option<String>,
}

/// The workspace a key may read: its own, or any for an admin management key.
pub fn readable_workspace<'a>(key: &'a ApiKeyRecord, asked: Option<&'a str>) -> Result<&'a str, ApiError> {
    match asked {
        None => Ok(&key.workspace_id),
        Some(ws) if ws == key.workspace_id || key.workspace_scope().is_none() => Ok(ws),
        Some(_) => Err(ApiError::NotFound("workspace not found".into())),
    }
}


#[utoipa::path(get, operation_id = "credits_get", path = "/api/v1/credits", tag = "credits",
    params(("workspace_id" = Option<String>, Query, description = "A workspace (admin keys: any)")),
    responses((status = 200, description = "The workspace's balance", body = crate::api_schema::CreditsItem), crate::api_schema::Errors))]
pub async fn get(State(state): State<SharedState>, AnyKey(key): AnyKey, Query(q): Query<CreditsQuery>) -> Result<impl IntoResponse, ApiError> {
    let ws = readable_workspace(&key, q.workspace_id.as_deref())?;
    Ok(Json(json!({"data": credits_json(&state, ws)})))
}

/// One top-up: at most a billion (in the account currency).
pub const MAX_TOP_UP_MICROS: i64 = 1_000_000_000_000_000;
/// A workspace's credits in total: the store sums them as 64-bit integers (at start and on every
/// reconciliation), so an unbounded total would overflow there and stop the instance from starting.
pub const MAX_CREDITS_MICROS: i64 = 100 * MAX_TOP_UP_MICROS;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000i64)]
    amount_micros: i64,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[utoipa::path(post, operation_id = "credits_top_up", path = "/api/v1/credits", tag = "credits", request_body = TopUp,
    responses((status = 201, description = "Credited; `entry` is the ledger row", body = crate::api_schema::CreditsItem), crate::api_schema::Errors))]
pub async fn top_up(State(state): State<SharedState>, m: Admin, peer: crate::audit::Peer, JsonBody(body): JsonBody<TopUp>) -> Result<impl IntoResponse, ApiError> {
    if !m.is_admin() {
        return Err(ApiError::Forbidden("only an admin management key can add credits".into()));
    }
    if body.amount_micros <= 0 {
        return Err(ApiError::BadRequest("`amount_micros` must be a positive whole number of micro-units".into()));
    }
    if body.amount_micros > MAX_TOP_UP_MICROS {
        return Err(ApiError::BadRequest(format!("`amount_micros` must be at most {MAX_TOP_UP_MICROS} per top-up")));
    }
    if body.note.as_ref().is_some_and(|n| n.len() > 500) {
        return Err(ApiError::BadRequest("`note` must be at most 500 characters".into()));
    }
    let ws = m.target_workspace(body.workspace_id.as_deref())?;
    let ws = state.store.get_workspace(ws).await.map_err(|_| ApiError::NotFound("workspace not found".into()))?.id;
    let held = state.billing.balance(&ws, chrono::Utc::now().timestamp_millis()).credits_micros;
    if held.saturating_add(body.amount_micros) > MAX_CREDITS_MICROS {
        return Err(ApiError::BadRequest(format!(
            "this top-up would take the workspace's credits past {MAX_CREDITS_MICROS} micro-units (it holds {held})"
        )));
    }
    let changes = serde_json::json!({"amount_micros": body.amount_micros, "note": body.note});
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "credits.top_up", changes));
    let entry = audited.add_credits(&ws, CreditKind::Topup, body.amount_micros, body.note.as_deref(), Some(&m.0 .0.id)).await?;
    state.billing.credit(&ws, entry.amount_micros);
    crate::cluster::credited(&state, &ws, entry.amount_micros).await;
    let mut data = credits_json(&state, &ws);
    data["entry"] = json!({
        "id": entry.id,
        "kind": entry.kind,
        "amount_micros": entry.amount_micros,
        "note": entry.note,
        "created_at": iso(entry.created_at),
    });
    Ok((StatusCode::CREATED, Json(json!({"data": data}))))
}
