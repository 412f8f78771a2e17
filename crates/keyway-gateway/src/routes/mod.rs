//! The HTTP surface: inference routes under `/v1` (and again under OpenRouter's `/api/v1`),
//! management routes under `/api/v1`, the Vercel AI SDK's gateway protocol under `/v1/ai`.

pub mod activity;
pub mod audit;
pub mod byok;
pub mod byok_input;
pub mod byok_test;
pub mod chat;
pub mod credits;
pub mod generation;
pub mod keyring;
pub mod keys;
pub mod messages;
pub mod models;
pub mod vercel;
pub mod workspaces;

use crate::error::{dialect, ApiError};
use crate::state::SharedState;
use axum::routing::{get, post};
use axum::Router;
use keyway_store::Page;
use serde::Deserialize;


/// The inference routes (under `/v1` and `/api/v1`).
pub fn inference() -> Router<SharedState> {
    Router::new()
        .route("/chat/completions", post(chat::chat_completions))
        .route("/embeddings", post(chat::embeddings))
        .route("/models", get(models::list))
}

/// `POST /messages`: Anthropic's clients expect Anthropic's error shape from the Messages API.
pub fn messages() -> Router<SharedState> {
    Router::new().route("/messages", post(messages::messages)).layer(axum::middleware::map_response(dialect::anthropic))
}

/// `GET /readyz`: 200 when this node can serve (the store answers, its migrations are all
/// applied, the keyring is loaded), else 503 with the reason. `/health` only says the process
/// is up; a load balancer routes by this one.
pub async fn readyz(axum::extract::State(state): axum::extract::State<SharedState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let store = state.store.readiness().await;
    let keyring = if state.store.keyring().current_id().is_empty() { Err("no master key loaded".to_owned()) } else { Ok(()) };
    let check = |r: &Result<(), String>| match r {
        Ok(()) => serde_json::json!("ok"),
        Err(e) => serde_json::json!(e),
    };
    let body = serde_json::json!({
        "status": if store.is_ok() && keyring.is_ok() { "ready" } else { "not_ready" },
        "checks": {"store": check(&store), "keyring": check(&keyring)},
    });
    match store.and(keyring) {
        Ok(()) => axum::Json(body).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

/// The management API (`/api/v1/...`); also served to the dashboard under `/ui/api/v1`.
pub fn management() -> Router<SharedState> {
    Router::new()
        .route("/byok", get(byok::list).post(byok::create))
        .route("/byok/test", post(byok_test::test_unsaved))
        .route("/byok/{id}", get(byok::get).patch(byok::patch).delete(byok::delete))
        .route("/byok/{id}/test", post(byok_test::test_stored))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}", get(keys::get).patch(keys::patch).delete(keys::delete))
        .route("/key", get(keys::current))
        .route("/keyring", get(keyring::list))
        .route("/keyring/rotate", post(keyring::rotate))
        .route("/audit", get(audit::list))
        .route("/providers", get(models::providers))
        .route("/workspaces", get(workspaces::list).post(workspaces::create))
        .route("/credits", get(credits::get).post(credits::top_up))
        .route("/generation", get(generation::get))
        .route("/activity", get(activity::get))
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// `offset`, `limit` (1..=100, default 50), filters.
#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    pub offset: Option<String>,
    pub limit: Option<String>,
    pub workspace_id: Option<String>,
    pub provider: Option<String>,
}

pub fn page_params(q: &ListParams) -> Result<Page, ApiError> {
    let offset = match q.offset.as_deref() {
        None | Some("") => 0,
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| ApiError::BadRequest("`offset` must be a whole number >= 0".into()))?,
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 50,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::BadRequest("`limit` must be a whole number from 1 to 100".into()))?,
    };
    Ok(Page { offset, limit })
}

