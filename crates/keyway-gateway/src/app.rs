//! The whole application router: the inference and management routes, the dashboard and its
//! session-guarded API, the OpenAPI document, health and metrics, in the order their layers
//! apply. Assembled here so that `routes`, `dashboard` and `openapi` need not import each other.

use crate::error::dialect;
use crate::routes;
use crate::state::SharedState;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

/// The whole application router.
pub fn router(state: SharedState) -> Router {
    let limit = state.config.max_body_bytes;
    let inference = routes::inference;
    let messages = routes::messages;
    let openrouter = inference()
        .merge(messages())
        // Public: it describes the API and holds nothing of anyone's.
        .route("/openapi.json", get(crate::openapi::document))
        .merge(routes::management().layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::refusals)))
        .fallback(routes::not_found)
        .layer(axum::middleware::map_response(dialect::openrouter));
    let ui_api = routes::management()
        .fallback(routes::not_found)
        .layer(axum::middleware::map_response(dialect::openrouter))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::dashboard::session::require_api_session));
    Router::new()
        .nest("/v1", inference().merge(messages()).merge(routes::vercel::origin_router()).nest("/ai", routes::vercel::router()).fallback(routes::not_found))
        .nest("/api/v1", openrouter)
        // The dashboard's fetches: the same management handlers, behind a session and its CSRF token.
        .nest("/ui/api/v1", ui_api)
        .merge(crate::dashboard::router())
        .route("/health", get(|| async { "ok" }))
        .route("/readyz", get(routes::readyz))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        // On its own address when `[metrics] listen` is set (served by `server.rs`).
        .merge(if state.config.metrics.listen.is_none() { Router::new().route("/metrics", get(crate::metrics::endpoint)) } else { Router::new() })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .with_state(state)
}
