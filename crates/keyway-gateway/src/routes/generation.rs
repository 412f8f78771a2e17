//! `GET /api/v1/generation?id=`: one request as OpenRouter's generation object (every key its
//! SDK requires, null where Keyway has nothing) plus Keyway's own fields. An inference key reads
//! its workspace's generations; a management key its scope (an admin key every workspace).

use crate::auth::AnyKey;
use crate::error::ApiError;
use crate::render::generation_json;
use crate::state::SharedState;
use crate::extract::Query;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, Default)]
pub struct GenerationQuery {
    id: Option<String>,
}



#[utoipa::path(get, operation_id = "generation_get", path = "/api/v1/generation", tag = "usage",
    params(("id" = String, Query, min_length = 1, description = "The generation id (`x-keyway-generation-id`)")),
    responses((status = 200, description = "The generation", body = crate::api_schema::GenerationItem), crate::api_schema::Errors))]
pub async fn get(State(state): State<SharedState>, AnyKey(key): AnyKey, Query(q): Query<GenerationQuery>) -> Result<impl IntoResponse, ApiError> {
    let id = q.id.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::BadRequest("`id` is required: /api/v1/generation?id=gen-...".into()))?;
    let scope = key.workspace_scope();
    let g = state.store.get_generation(scope, &id).await.map_err(|e| match e {
        keyway_store::StoreError::NotFound => ApiError::NotFound(format!("generation `{id}` not found (it is written a moment after the request ends)")),
        other => other.into(),
    })?;
    Ok(Json(json!({"data": generation_json(&g)})))
}
