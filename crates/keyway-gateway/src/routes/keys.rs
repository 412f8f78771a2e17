//! `/api/v1/keys`: Keyway API keys. The raw key is returned once, beside `data`, at creation.

use crate::auth::{AnyKey, Manager, Owner};
use crate::error::ApiError;
use crate::render::keys::{key_json, openrouter_limit};
use crate::extract::JsonBody;
use crate::routes::{page_params, ListParams};
use crate::state::SharedState;
use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keyway_store::{ApiKeyRecord, KeyKind, KeyPatch, Limits, Role};
use serde::Deserialize;
use serde_json::{json, Value};



#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::api_schema::KeyLimits>)]
    limits: Option<Limits>,
    /// A management key for its workspace (admin keys only): the `owner` role.
    #[serde(default)]
    management: bool,
    /// `admin`, `owner`, `viewer` or `inference` (the default; `management: true` means `owner`).
    #[serde(default)]
    #[schema(pattern = "^(admin|owner|viewer|inference)$")]
    role: Option<String>,
    /// OpenRouter's credit limit in USD; stored as a monthly (or, by `limit_reset`, daily) budget.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000f64)]
    limit: Option<f64>,
    #[serde(default)]
    #[schema(pattern = "^(daily|monthly)$")]
    limit_reset: Option<String>,
    /// Accepted for OpenRouter clients; Keyway's budgets always count BYOK traffic.
    #[serde(default)]
    #[allow(dead_code)]
    include_byok_in_limit: Option<bool>,
    /// OpenRouter's key expiry; Keyway has none, so only `null` is accepted.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    expires_at: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    creator_user_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchKey {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<crate::api_schema::KeyLimits>)]
    limits: Option<Limits>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000f64)]
    limit: Option<f64>,
    #[serde(default)]
    #[schema(pattern = "^(daily|monthly)$")]
    limit_reset: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    include_byok_in_limit: Option<bool>,
    /// OpenRouter can move a key between workspaces; Keyway can't, so only its own is accepted.
    #[serde(default)]
    workspace_id: Option<String>,
}

fn usd_to_micros(usd: f64) -> Result<u64, ApiError> {
    if !usd.is_finite() || !(0.0..=1e12).contains(&usd) {
        return Err(ApiError::BadRequest("`limit` must be a non-negative amount in USD".into()));
    }
    Ok((usd * 1e6).round() as u64)
}

/// Applies OpenRouter's `limit` (USD) with its `limit_reset` to Keyway's budgets:
/// `monthly` (the default) or `daily`; `weekly` has no Keyway budget, so it is refused.
fn apply_openrouter_limit(limits: &mut Limits, usd: f64, reset: Option<&str>) -> Result<(), ApiError> {
    let micros = usd_to_micros(usd)?;
    match reset {
        None | Some("monthly") => limits.budget_monthly_micros = Some(micros),
        Some("daily") => limits.budget_daily_micros = Some(micros),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`limit_reset` `{other}` is not supported; Keyway budgets reset `daily` or `monthly`"
            )))
        }
    }
    Ok(())
}

#[utoipa::path(post, operation_id = "keys_create", path = "/api/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, description = "Created; `key` is the raw key, shown this once", body = crate::api_schema::ApiKeyCreated), crate::api_schema::Errors))]
pub async fn create(State(state): State<SharedState>, m: Owner, peer: crate::audit::Peer, JsonBody(body): JsonBody<CreateKey>) -> Result<impl IntoResponse, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::BadRequest("`name` must be 1 to 200 characters".into()));
    }
    let role = match (body.role.as_deref(), body.management) {
        (Some(r), _) => Role::parse(r).ok_or_else(|| ApiError::BadRequest(format!("`role` `{r}` is not one of admin, owner, viewer, inference")))?,
        (None, true) => Role::Owner,
        (None, false) => Role::Inference,
    };
    if body.management && role == Role::Inference {
        return Err(ApiError::BadRequest("`management: true` contradicts `role: inference`".into()));
    }
    // Admins mint any role; owners mint inference and viewer keys for their own workspace.
    if role >= Role::Owner && !m.is_admin() {
        return Err(ApiError::Forbidden("only an admin key can create owner or admin keys".into()));
    }
    let ws = m.target_workspace(body.workspace_id.as_deref())?;
    let ws = state.store.get_workspace(ws).await.map_err(|_| ApiError::NotFound("workspace not found".into()))?.id;
    if body.expires_at.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::BadRequest("`expires_at` is not supported: Keyway keys don't expire; disable or delete them instead".into()));
    }
    let mut limits = body.limits.unwrap_or_default();
    if let Some(usd) = body.limit {
        apply_openrouter_limit(&mut limits, usd, body.limit_reset.as_deref())?;
    }
    let changes = json!({"name": name, "role": role.as_str(), "limits": limits});
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "key.create", changes));
    let (rec, raw) = audited.create_key_with_role(&ws, name, role, &limits).await?;
    Ok((StatusCode::CREATED, Json(json!({"data": key_json(&rec), "key": raw.as_str()}))))
}

#[utoipa::path(get, operation_id = "keys_list", path = "/api/v1/keys", tag = "keys", params(
        ("offset" = Option<i64>, Query, minimum = 0, description = "Rows to skip (>= 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1..100, default 50"),
        ("workspace_id" = Option<String>, Query, description = "A workspace id (admin keys: any workspace)"),
    ),
    responses((status = 200, description = "API keys", body = crate::api_schema::ApiKeyList), crate::api_schema::Errors))]
pub async fn list(State(state): State<SharedState>, m: Manager, Query(q): Query<ListParams>) -> Result<impl IntoResponse, ApiError> {
    let page = page_params(&q)?;
    let ws = match q.workspace_id.as_deref() {
        Some(ws) => Some(m.target_workspace(Some(ws))?),
        None => m.scope(),
    };
    let (rows, total) = state.store.list_keys(ws, page).await?;
    Ok(Json(json!({"data": rows.iter().map(key_json).collect::<Vec<_>>(), "total_count": total})))
}

#[utoipa::path(get, operation_id = "keys_get", path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "Key hash (or id)")),
    responses((status = 200, description = "The key", body = crate::api_schema::ApiKeyItem), crate::api_schema::Errors))]
pub async fn get(State(state): State<SharedState>, m: Manager, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let rec = state.store.get_key(m.scope(), &id).await.map_err(not_found)?;
    Ok(Json(json!({"data": key_json(&rec)})))
}

#[utoipa::path(patch, operation_id = "keys_patch", path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "Key hash (or id)")),
    request_body = PatchKey,
    responses((status = 200, description = "Updated", body = crate::api_schema::ApiKeyItem), crate::api_schema::Errors))]
pub async fn patch(
    State(state): State<SharedState>,
    m: Owner,
    peer: crate::audit::Peer,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchKey>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(n) = &body.name {
        if n.trim().is_empty() || n.len() > 200 {
            return Err(ApiError::BadRequest("`name` must be 1 to 200 characters".into()));
        }
    }
    let current = state.store.get_key(m.scope(), &id).await.map_err(not_found)?;
    may_change(&m, &current)?;
    // Like deleting itself: a key that disables itself locks its caller out of the API.
    if body.disabled == Some(true) && current.id == m.0 .0.id {
        return Err(ApiError::Conflict("a key can't disable itself".into()));
    }
    if let Some(ws) = &body.workspace_id {
        if *ws != current.workspace_id {
            return Err(ApiError::BadRequest("a key can't move to another workspace; create a new key there".into()));
        }
    }
    let mut limits = body.limits;
    if let Some(usd) = body.limit {
        let mut l = limits.take().unwrap_or_else(|| current.limits.clone());
        apply_openrouter_limit(&mut l, usd, body.limit_reset.as_deref())?;
        limits = Some(l);
    }
    let patch = KeyPatch { name: body.name.map(|n| n.trim().to_owned()), disabled: body.disabled, limits };
    let changes = json!({"name": patch.name, "disabled": patch.disabled, "limits": patch.limits});
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "key.update", changes));
    let rec = audited.update_key(m.scope(), &id, &patch).await.map_err(not_found)?;
    state.keys.invalidate(&rec.hash);
    Ok(Json(json!({"data": key_json(&rec)})))
}

#[utoipa::path(delete, operation_id = "keys_delete", path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "Key hash (or id)")),
    responses((status = 200, description = "Deleted", body = crate::api_schema::Deleted), crate::api_schema::Errors))]
pub async fn delete(State(state): State<SharedState>, m: Owner, peer: crate::audit::Peer, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let rec = state.store.get_key(m.scope(), &id).await.map_err(not_found)?;
    may_change(&m, &rec)?;
    if rec.id == m.0 .0.id {
        return Err(ApiError::Conflict("a key can't delete itself".into()));
    }
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "key.delete", json!({})));
    let rec = audited.delete_key(m.scope(), &rec.id).await.map_err(not_found)?;
    state.keys.invalidate(&rec.hash);
    Ok(Json(json!({"deleted": true})))
}

/// `GET /api/v1/key`: the calling key's own metadata, in OpenRouter's shape (every key its SDKs
/// require; Keyway has no free tier, organisations or data-region pinning, so those read empty).
#[utoipa::path(get, operation_id = "keys_current", path = "/api/v1/key", tag = "keys",
    responses((status = 200, description = "The calling key", body = crate::api_schema::CurrentKey), crate::api_schema::Errors))]
pub async fn current(AnyKey(k): AnyKey) -> impl IntoResponse {
    let mut data = key_json(&k);
    let management = k.kind == KeyKind::Management;
    let (limit, reset) = openrouter_limit(&k.limits);
    let budget = limit.map(|usd| {
        json!({
            "budget_id": null, "guardrail_id": null, "include_byok": true, "limit_usd": usd,
            "remaining_usd": usd, "spend_usd": 0.0, "reset_interval": reset, "resets_at": null, "scope": "key_limit",
        })
    });
    let rpm = k.limits.requests_per_minute;
    if let Some(o) = data.as_object_mut() {
        o.insert("is_management_key".into(), Value::Bool(management));
        o.insert("is_provisioning_key".into(), Value::Bool(management));
        o.insert("is_free_tier".into(), Value::Bool(false));
        o.insert("organization_id".into(), Value::Null);
        o.insert("allowed_data_regions".into(), json!([]));
        o.insert("budgets".into(), json!(budget.iter().collect::<Vec<_>>()));
        o.insert("effective_budget".into(), budget.clone().unwrap_or(Value::Null));
        o.insert("free_model_daily_requests".into(), json!({"limit": 0, "remaining": 0, "used": 0}));
        o.insert(
            "rate_limit".into(),
            json!({
                "requests": rpm.unwrap_or(0),
                "interval": "1m",
                "note": if rpm.is_some() { "the key's requests_per_minute limit" } else { "no request limit on this key (0 = unlimited)" },
            }),
        );
    }
    Json(json!({"data": data}))
}

/// Who may change or delete which key: an admin any key (the store keeps the last admin key
/// enabled); anyone else only keys of a lower role than its own, or itself (never an admin key).
fn may_change(m: &Manager, target: &ApiKeyRecord) -> Result<(), ApiError> {
    if m.is_admin() || target.id == m.0.id || target.role < m.role() {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "this {} key can't change or delete that {} key: only keys of a lower role than its own (admin keys: only an admin)",
        m.role().as_str(),
        target.role.as_str()
    )))
}

fn not_found(e: keyway_store::StoreError) -> ApiError {
    match e {
        keyway_store::StoreError::NotFound => ApiError::NotFound("key not found".into()),
        other => other.into(),
    }
}
