//! `POST /api/v1/route`: the route plan a chat request would get, without calling any upstream.
//! Inference key; the same body as `POST /v1/chat/completions`. The answer lists the candidates
//! in order and every credential or provider left out with the rule that did it
//! (`crate::explain`), from the same planner, credentials and health board a request uses.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use keyway_core::route::{explain, requested_parameters, PlanInput, RequestScopedCredential, RoutingOptions};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::SystemTime;

#[utoipa::path(post, operation_id = "route_explain", path = "/api/v1/route", tag = "routing",
    request_body(content = Object, description = "A chat completion request body (the same as POST /v1/chat/completions); nothing is sent upstream"),
    responses((status = 200, description = "The route plan: candidates in order, and what was left out and why", body = crate::api_schema::RouteExplain), crate::api_schema::Errors))]
pub async fn explain_route(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let options = RoutingOptions::extract(&mut body)?;
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            options.models.first().cloned().ok_or_else(|| ApiError::BadRequest("`model` is required".into()))?
        }
        Some(_) => return Err(ApiError::BadRequest("`model` must be a string".into())),
    };
    let user = match body.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u.clone()),
        Some(_) => return Err(ApiError::BadRequest("`user` must be a string".into())),
    };
    let scoped = crate::proxy::request_scoped_credentials(&state, &options, &headers)?;
    let scoped_inputs: Vec<_> = scoped.iter().map(|(p, c)| RequestScopedCredential::new(*p, c)).collect();
    let stored = if scoped.is_empty() { state.credentials.get(&state.store, &caller.workspace_id).await? } else { Arc::default() };
    let requested = requested_parameters(&body);
    let precedence = state.routing.effective(&caller.workspace_id, options.byok_first);
    let explained = explain(&PlanInput {
        stored: &stored.metas,
        request_scoped: &scoped_inputs,
        system: &state.system_metas,
        system_after_request_scoped: state.config.security.system_after_request_keys,
        api_key_hash: Some(&caller.hash),
        user: user.as_deref(),
        requested_parameters: &requested,
        health: &state.health,
        stats: &state.stats,
        precedence,
        ..PlanInput::new(&model, &options, &state.catalog, SystemTime::now())
    });
    let view = crate::explain::view(&model, precedence, &explained.plan, &explained.excluded, &options.ignored, &*stored);
    Ok(Json(json!({"data": view})))
}
