//! `/api/v1/keyring` (admin): the master keys that seal stored credentials, and rotating them
//! while the gateway serves. Requests keep flowing during a rotation: decrypted credentials are
//! cached, and every record stays openable under a persisted key at every step.

use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::SharedState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// `GET /api/v1/keyring`: each key's id, state (`active` or `retired`) and how many records it seals.
#[utoipa::path(get, operation_id = "keyring_list", path = "/api/v1/keyring", tag = "keyring",
    responses((status = 200, description = "Master keys (never key material)", body = crate::api_schema::KeyringList), crate::api_schema::Errors))]
pub async fn list(State(state): State<SharedState>, _a: Admin) -> Result<impl IntoResponse, ApiError> {
    let keys = state.store.keyring_keys().await?;
    let total = keys.len();
    Ok(Json(json!({"data": keys, "total_count": total, "current_key_id": state.store.keyring().current_id()})))
}

/// `POST /api/v1/keyring/rotate`: a new active key, every record re-wrapped under it (or the
/// unfinished rotation resumed). Records that can't be opened are listed and left as they were.
#[utoipa::path(post, operation_id = "keyring_rotate", path = "/api/v1/keyring/rotate", tag = "keyring",
    responses((status = 200, description = "The rotation's report", body = crate::api_schema::Rotation), crate::api_schema::Errors))]
pub async fn rotate(State(state): State<SharedState>, a: Admin, peer: crate::audit::Peer) -> Result<impl IntoResponse, ApiError> {
    let report = state.store.audited(crate::audit::entry(&a, &peer, "keyring.rotate", json!({}))).rotate_keyring().await?;
    tracing::info!(
        key_id = %report.key_id, rewrapped = report.rewrapped, failed = report.failed.len(), resumed = report.resumed,
        actor = %&a.0 .0.hash[..8], "keyring rotated"
    );
    Ok(Json(json!({"data": report, "complete": report.failed.is_empty()})))
}
