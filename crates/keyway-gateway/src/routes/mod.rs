//! The HTTP surface: inference routes under `/v1` (and again under OpenRouter's `/api/v1`),
//! management routes under `/api/v1`, the Vercel AI SDK's gateway protocol under `/v1/ai`.

pub mod activity;
pub mod audit;
pub mod byok;
pub mod byok_test;
pub mod chat;
pub mod credits;
pub mod generation;
pub mod keyring;
pub mod keys;
pub mod messages;
pub mod models;
pub mod route;
pub mod vercel;
pub mod workspaces;

use crate::error::{dialect, ApiError};
use crate::state::SharedState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use keyway_store::Page;
use serde::Deserialize;

/// The whole application router.
pub fn router(state: SharedState) -> Router {
    let limit = state.config.max_body_bytes;
    let inference = || {
        Router::new()
            .route("/chat/completions", post(chat::chat_completions))
            .route("/embeddings", post(chat::embeddings))
            .route("/models", get(models::list))
    };
    // Anthropic's clients expect Anthropic's error shape from the Messages API.
    let messages = || Router::new().route("/messages", post(messages::messages)).layer(axum::middleware::map_response(dialect::anthropic));
    let openrouter = inference()
        .merge(messages())
        // Public: it describes the API and holds nothing of anyone's.
        .route("/openapi.json", get(crate::openapi::document))
        // An inference key's question about its own routing: beside the inference routes, not
        // in `management()` (the dashboard's session is no inference key).
        .route("/route", post(route::explain_route))
        .merge(management().layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::refusals)))
        .fallback(not_found)
        .layer(axum::middleware::map_response(dialect::openrouter));
    let ui_api = management()
        .fallback(not_found)
        .layer(axum::middleware::map_response(dialect::openrouter))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::dashboard::session::require_api_session));
    Router::new()
        .nest("/v1", inference().merge(messages()).merge(vercel::origin_router()).nest("/ai", vercel::router()).fallback(not_found))
        .nest("/api/v1", openrouter)
        // The dashboard's fetches: the same management handlers, behind a session and its CSRF token.
        .nest("/ui/api/v1", ui_api)
        .merge(crate::dashboard::router())
        .route("/health", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // On its own address when `[metrics] listen` is set (served by `server.rs`).
        .merge(if state.config.metrics.listen.is_none() { Router::new().route("/metrics", get(crate::metrics::endpoint)) } else { Router::new() })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .with_state(state)
}

/// `GET /readyz`: 200 when this node can serve (the store answers, its migrations are all
/// applied, the keyring is loaded), else 503 with the reason. `/health` only says the process
/// is up; a load balancer routes by this one.
async fn readyz(axum::extract::State(state): axum::extract::State<SharedState>) -> axum::response::Response {
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
fn management() -> Router<SharedState> {
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

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
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

/// Unix milliseconds as RFC 3339 (what OpenRouter's objects carry).
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
