//! `/api/v1/workspaces`: an admin key lists and creates them; other keys see their own.

use crate::auth::{Admin, Manager};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::render::iso;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keyway_store::Workspace;
use serde::Deserialize;
use serde_json::{json, Value};

fn ws_json(w: &Workspace) -> Value {
    json!({"id": w.id, "name": w.name, "slug": w.slug, "created_at": iso(w.created_at)})
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9-]+$")]
    slug: Option<String>,
}

#[utoipa::path(get, operation_id = "workspaces_list", path = "/api/v1/workspaces", tag = "workspaces",
    responses((status = 200, description = "Workspaces the key can see", body = crate::api_schema::WorkspaceList), crate::api_schema::Errors))]
pub async fn list(State(state): State<SharedState>, m: Manager) -> Result<impl IntoResponse, ApiError> {
    let all = state.store.list_workspaces().await?;
    let visible: Vec<Value> = all.iter().filter(|w| m.scope().is_none_or(|s| s == w.id)).map(ws_json).collect();
    let total = visible.len();
    Ok(Json(json!({"data": visible, "total_count": total})))
}

#[utoipa::path(post, operation_id = "workspaces_create", path = "/api/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace,
    responses((status = 201, description = "Created", body = crate::api_schema::WorkspaceItem), crate::api_schema::Errors))]
pub async fn create(State(state): State<SharedState>, m: Admin, peer: crate::audit::Peer, JsonBody(body): JsonBody<CreateWorkspace>) -> Result<impl IntoResponse, ApiError> {
    if !m.is_admin() {
        return Err(ApiError::Forbidden("only an admin management key can create workspaces".into()));
    }
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::BadRequest("`name` must be 1 to 200 characters".into()));
    }
    let slug = body.slug.unwrap_or_else(|| slugify(name));
    if slug.is_empty() || !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(ApiError::BadRequest("`slug` may hold only lower-case letters, digits and dashes".into()));
    }
    let audited = state.store.audited(crate::audit::entry(&m, &peer, "workspace.create", serde_json::json!({"name": name, "slug": slug})));
    let ws = audited.create_workspace(name, &slug).await?;
    Ok((StatusCode::CREATED, Json(json!({"data": ws_json(&ws)}))))
}

fn slugify(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_owned()
}
