//! `/api/v1/byok`: provider credentials, compatible with OpenRouter's BYOK API.
//! The raw secret goes in (`key`) and never comes out; objects show a masked `label`.
//!
//! A credential with `workspace_id: null` is global: every workspace's routing uses it (after
//! that workspace's own keys at equal `sort_order`). Only an admin management key may create,
//! change or delete one; any management key of a workspace sees it in its lists.

use crate::auth::{Manager, Owner};
use crate::error::ApiError;
use crate::render::byok_json;
use crate::routes::byok_input::{parse_credential, parse_provider};
use crate::extract::JsonBody;
use crate::render::iso;
use crate::routes::{page_params, ListParams};
use crate::state::SharedState;
use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keyway_core::credential::parse_model_mappings;
use keyway_store::{ByokFields, ByokPatch};
use serde_json::{json, Map, Value};



/// A row this build can't read (unknown provider, broken metadata), listed so that it can be
/// seen and deleted: the BYOK object's keys where known, `status: "unreadable"` and the reason.
fn unreadable_json(u: &keyway_store::UnreadableByok) -> Value {
    json!({
        "id": u.id,
        "workspace_id": u.workspace_id,
        "provider": u.provider,
        "name": u.name,
        "label": null,
        "disabled": true,
        "is_fallback": false,
        "is_required": false,
        "always_use": false,
        "is_byok_only": false,
        "sort_order": 0,
        "allowed_models": null,
        "allowed_api_key_hashes": null,
        "allowed_user_ids": null,
        "model_mappings": [],
        "declared_region": null,
        "declared_zdr": false,
        "created_at": u.created_at.map(iso),
        "updated_at": u.updated_at.map(iso),
        "status": "unreadable",
        "error": u.reason,
    })
}

fn bool_field(m: &Map<String, Value>, names: &[&str]) -> Result<Option<bool>, ApiError> {
    for n in names {
        match m.get(*n) {
            None | Some(Value::Null) => continue,
            Some(Value::Bool(b)) => return Ok(Some(*b)),
            Some(_) => return Err(ApiError::BadRequest(format!("`{n}` must be true or false"))),
        }
    }
    Ok(None)
}

/// Absent: unchanged (`None`); `null`: no restriction (OpenRouter's meaning), stored as empty.
fn string_list(m: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("`{name}` must be a list of non-empty strings"))),
        Some(_) => Err(ApiError::BadRequest(format!("`{name}` must be a list of strings"))),
    }
}

fn opt_string(m: &Map<String, Value>, name: &str) -> Result<Option<Option<String>>, ApiError> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::BadRequest(format!("`{name}` must be a string or null"))),
    }
}

/// Every optional field of create and patch, validated; `None` = not sent.
fn parse_patch(m: &Map<String, Value>) -> Result<ByokPatch, ApiError> {
    let name = match opt_string(m, "name")? {
        Some(Some(n)) if n.trim().is_empty() => return Err(ApiError::BadRequest("`name` must not be empty".into())),
        Some(Some(n)) if n.len() > 200 => return Err(ApiError::BadRequest("`name` is longer than 200 characters".into())),
        Some(Some(n)) => Some(n.trim().to_owned()),
        // OpenRouter's `name` is nullable; Keyway always has one, so `null` keeps (or defaults) it.
        Some(None) | None => None,
    };
    let sort_order = match m.get("sort_order") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| ApiError::BadRequest("`sort_order` must be an integer".into()))?),
    };
    let model_mappings = match m.get("model_mappings") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_model_mappings(v).map_err(ApiError::BadRequest)?),
    };
    let patch = ByokPatch {
        name,
        disabled: bool_field(m, &["disabled"])?,
        is_fallback: bool_field(m, &["is_fallback"])?,
        always_use: bool_field(m, &["is_required", "always_use"])?,
        is_byok_only: bool_field(m, &["is_byok_only"])?,
        sort_order,
        allowed_models: string_list(m, "allowed_models")?,
        allowed_api_key_hashes: string_list(m, "allowed_api_key_hashes")?,
        allowed_user_ids: string_list(m, "allowed_user_ids")?,
        model_mappings,
        declared_region: opt_string(m, "declared_region")?,
        declared_zdr: bool_field(m, &["declared_zdr"])?,
    };
    if let (Some(a), Some(b)) = (bool_field(m, &["is_required"])?, bool_field(m, &["always_use"])?) {
        if a != b {
            return Err(ApiError::BadRequest("`is_required` and `always_use` are the same setting; they disagree".into()));
        }
    }
    Ok(patch)
}

/// `is_byok_only` means "never fall back to system credentials"; a fallback-section key can't promise that.
fn check_combination(is_fallback: bool, is_byok_only: bool) -> Result<(), ApiError> {
    if is_fallback && is_byok_only {
        return Err(ApiError::BadRequest("`is_byok_only` cannot be combined with `is_fallback`".into()));
    }
    Ok(())
}



#[utoipa::path(get, operation_id = "byok_list", path = "/api/v1/byok", tag = "byok", params(
        ("offset" = Option<i64>, Query, minimum = 0, description = "Rows to skip (>= 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1..100, default 50"),
        ("workspace_id" = Option<String>, Query, description = "A workspace id (admin keys: any workspace)"),
        ("provider" = Option<String>, Query, description = "Only this provider's credentials"),
    ),
    responses((status = 200, description = "The workspace's credentials and the global ones", body = crate::api_schema::ByokList), crate::api_schema::Errors))]
pub async fn list(State(state): State<SharedState>, m: Manager, Query(q): Query<ListParams>) -> Result<impl IntoResponse, ApiError> {
    let page = page_params(&q)?;
    let provider = q.provider.as_deref().map(|p| parse_provider(Some(&Value::String(p.to_owned())))).transpose()?;
    // A workspace's list holds what its routing may use: its own credentials and the global ones.
    // Without `workspace_id` that is the key's own workspace (an admin's: the default one, as
    // OpenRouter's reference says); with it, an admin lists that workspace.
    let ws = match q.workspace_id.as_deref() {
        Some(ws) => {
            if uuid::Uuid::parse_str(ws).is_err() {
                return Err(ApiError::BadRequest(format!("`workspace_id` must be a workspace id (a UUID), not `{}`", ws.chars().take(64).collect::<String>())));
            }
            let ws = m.target_workspace(Some(ws))?;
            state.store.get_workspace(ws).await.map_err(|_| ApiError::NotFound("workspace not found".into()))?.id
        }
        None if m.0.admin => state.store.get_workspace("default").await.map_or_else(|_| m.0.workspace_id.clone(), |w| w.id),
        None => m.0.workspace_id.clone(),
    };
    let (rows, total) = state.store.list_byok_listing(Some(&ws), provider, page).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|l| match l {
            keyway_store::ByokListing::Readable(r) => byok_json(r, &state),
            keyway_store::ByokListing::Unreadable(u) => unreadable_json(u),
        })
        .collect();
    Ok(Json(json!({"data": data, "total_count": total})))
}

#[utoipa::path(post, operation_id = "byok_create", path = "/api/v1/byok", tag = "byok", request_body = crate::api_schema::ByokCreate,
    responses((status = 201, description = "Stored", body = crate::api_schema::ByokCreated), crate::api_schema::Errors))]
pub async fn create(State(state): State<SharedState>, m: Owner, peer: crate::audit::Peer, JsonBody(body): JsonBody<Map<String, Value>>) -> Result<impl IntoResponse, ApiError> {
    let provider = parse_provider(body.get("provider"))?;
    let key = match body.get("key") {
        None | Some(Value::Null) => return Err(ApiError::BadRequest("`key` is required".into())),
        Some(Value::String(s)) if s.is_empty() => return Err(ApiError::InvalidCredential(format!("invalid {provider} credential: `key` must not be empty"))),
        Some(k) => k,
    };
    let p = parse_patch(&body)?;
    let name = p.name.clone().unwrap_or_else(|| format!("{} key", provider.display_name()));
    // Absent: the key's own workspace. An explicit `null`: every workspace (admin only).
    let ws = match body.get("workspace_id") {
        None => Some(m.target_workspace(None)?),
        Some(Value::Null) => {
            require_admin(&m)?;
            None
        }
        Some(Value::String(s)) => Some(m.target_workspace(Some(s.as_str()))?),
        Some(_) => return Err(ApiError::BadRequest("`workspace_id` must be a string or null".into())),
    };
    let ws = match ws {
        Some(ws) => Some(state.store.get_workspace(ws).await.map_err(|_| ApiError::NotFound("workspace not found".into()))?.id),
        None => None,
    };
    let fields = ByokFields {
        name,
        disabled: p.disabled.unwrap_or(false),
        is_fallback: p.is_fallback.unwrap_or(false),
        always_use: p.always_use.unwrap_or(false),
        is_byok_only: p.is_byok_only.unwrap_or(false),
        sort_order: p.sort_order.unwrap_or(0),
        allowed_models: p.allowed_models.unwrap_or_default(),
        allowed_api_key_hashes: p.allowed_api_key_hashes.unwrap_or_default(),
        allowed_user_ids: p.allowed_user_ids.unwrap_or_default(),
        model_mappings: p.model_mappings.unwrap_or_default(),
        declared_region: p.declared_region.flatten(),
        declared_zdr: p.declared_zdr.unwrap_or(false),
    };
    check_combination(fields.is_fallback, fields.is_byok_only)?;
    let cred = parse_credential(&state, provider, key)?;
    // `"test": true`: Test key first (Vercel's "validate before adding"); only a key that passes is stored.
    let tested = match bool_field(&body, &["test"])? {
        Some(true) => {
            let result = crate::routes::byok_test::run_test(&state, provider, &cred, &body).await?;
            if result["ok"] != true {
                let error = ApiError::InvalidCredential(format!("the {} key failed its test; it was not stored", provider.display_name()));
                return Err(ApiError::WithMetadata { error: Box::new(error), metadata: json!({"test": result}), provider_status: None });
            }
            Some(result)
        }
        _ => None,
    };
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "byok.create", crate::audit::changes(&body)));
    let rec = audited.create_byok_in(ws.as_deref(), provider, &fields, &cred).await?;
    state.credentials.invalidate_for(&rec);
    tracing::info!(credential_id = %rec.id, provider = %provider, workspace_id = ws.as_deref().unwrap_or("*"), "byok credential created");
    let mut out = json!({"data": byok_json(&rec, &state)});
    if let (Some(t), Some(o)) = (tested, out.as_object_mut()) {
        o.insert("test".into(), t);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, operation_id = "byok_get", path = "/api/v1/byok/{id}", tag = "byok", params(("id" = String, Path, description = "Credential id")),
    responses((status = 200, description = "The credential", body = crate::api_schema::ByokItem), crate::api_schema::Errors))]
pub async fn get(State(state): State<SharedState>, m: Manager, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let rec = state.store.get_byok(m.scope(), &id).await.map_err(not_found)?;
    Ok(Json(json!({"data": byok_json(&rec, &state)})))
}

#[utoipa::path(patch, operation_id = "byok_patch", path = "/api/v1/byok/{id}", tag = "byok", params(("id" = String, Path, description = "Credential id")),
    request_body = crate::api_schema::ByokPatch,
    responses((status = 200, description = "Updated", body = crate::api_schema::ByokItem), crate::api_schema::Errors))]
pub async fn patch(
    State(state): State<SharedState>,
    m: Owner,
    peer: crate::audit::Peer,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let current = state.store.get_byok(m.scope(), &id).await.map_err(not_found)?;
    if current.is_global() {
        require_admin(&m)?;
    }
    if body.get("workspace_id").is_some_and(|w| w.as_str() != current.workspace_id.as_deref()) {
        return Err(ApiError::BadRequest("`workspace_id` can't be changed; create a new credential".into()));
    }
    if body.get("provider").is_some_and(|p| parse_provider(Some(p)).ok() != Some(current.provider)) {
        return Err(ApiError::BadRequest("`provider` can't be changed; create a new credential".into()));
    }
    let p = parse_patch(&body)?;
    check_combination(p.is_fallback.unwrap_or(current.is_fallback), p.is_byok_only.unwrap_or(current.is_byok_only))?;
    // Absent or empty `key` keeps the stored secret; anything else replaces it in place.
    let cred = match body.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(k) => Some(parse_credential(&state, current.provider, k)?),
    };
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "byok.update", crate::audit::changes(&body)));
    let rec = audited.update_byok(m.scope(), &id, &p, cred.as_ref()).await.map_err(not_found)?;
    state.credentials.invalidate_for(&rec);
    if cred.is_some() {
        state.health.reset(&rec.id);
    }
    Ok(Json(json!({"data": byok_json(&rec, &state)})))
}

#[utoipa::path(delete, operation_id = "byok_delete", path = "/api/v1/byok/{id}", tag = "byok", params(("id" = String, Path, description = "Credential id")),
    responses((status = 200, description = "Deleted", body = crate::api_schema::Deleted), crate::api_schema::Errors))]
pub async fn delete(State(state): State<SharedState>, m: Owner, peer: crate::audit::Peer, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let current = match state.store.get_byok(m.scope(), &id).await {
        // A row this build can't read (listed as `unreadable`) can still be deleted.
        Err(keyway_store::StoreError::Corrupt(reason)) => return delete_unreadable(&state, &m, &id, &reason).await,
        other => other.map_err(not_found)?,
    };
    if current.is_global() {
        require_admin(&m)?;
    }
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "byok.delete", Value::Object(Map::new())));
    let rec = audited.delete_byok(m.scope(), &id).await.map_err(not_found)?;
    state.credentials.invalidate_for(&rec);
    state.health.reset(&rec.id);
    Ok(Json(json!({"deleted": true, "id": rec.id})))
}

async fn delete_unreadable(state: &SharedState, m: &Manager, id: &str, reason: &str) -> Result<Json<Value>, ApiError> {
    let owner = state.store.delete_byok_row(m.scope(), id).await.map_err(not_found)?;
    tracing::warn!(credential_id = %id, %reason, "deleted a credential row that could not be read");
    match owner {
        Some(ws) => state.credentials.invalidate(&ws),
        None => state.credentials.invalidate_all(),
    }
    state.health.reset(id);
    Ok(Json(json!({"deleted": true, "id": id})))
}

/// Global credentials are every workspace's: only an admin key may write them.
fn require_admin(m: &Manager) -> Result<(), ApiError> {
    if m.0.admin {
        return Ok(());
    }
    Err(ApiError::Forbidden("only an admin management key can manage a credential shared by every workspace (`workspace_id: null`)".into()))
}

fn not_found(e: keyway_store::StoreError) -> ApiError {
    match e {
        keyway_store::StoreError::NotFound => ApiError::NotFound("credential not found".into()),
        other => other.into(),
    }
}
