//! The Vercel AI SDK's gateway protocol (`@ai-sdk/gateway`, used by `ai`'s `gateway` provider):
//! `createGateway({ baseURL: 'http://HOST/v1/ai', apiKey: 'kw-...' })` is all a Vercel user
//! changes. Under the base: `POST /language-model` (JSON result or SSE stream parts),
//! `POST /embedding-model`, `GET /config` (the models this key may use, with prices). At the
//! origin, as the SDK derives them from the base: `GET /v1/credits`, `GET /v1/generation?id=`.
//! Requests go through the same attempt loop as `/v1/chat/completions` (translated by
//! `keyway_providers::translate::vercel`); errors come in the SDK's shape, which it turns into
//! its typed `Gateway*Error`s.

mod info;
mod models;

pub use info::{credits, generation};
pub use models::{config, embedding_model, language_model};

use crate::error::{dialect, ApiError, ErrorInfo};
use crate::state::SharedState;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use keyway_providers::translate::vercel::SPECIFICATION_VERSIONS;
use serde_json::{json, Value};

/// The routes under the SDK's base URL (`/v1/ai`).
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/language-model", post(language_model))
        .route("/embedding-model", post(embedding_model))
        .route("/config", get(config))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(errors))
}

/// The routes the SDK reaches at its base URL's origin (`getCredits`, `getGenerationInfo`).
pub fn origin_router() -> Router<SharedState> {
    Router::new().route("/credits", get(credits)).route("/generation", get(generation)).layer(axum::middleware::from_fn(errors))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// The SDK's error body: `{error: {message, type, param, code}, generationId}`. Its `type`
/// picks the error class (`GatewayAuthenticationError`, `GatewayInvalidRequestError`,
/// `GatewayRateLimitError`, `GatewayModelNotFoundError` with `param.modelId`, ...).
pub fn error_body(info: &ErrorInfo, model: Option<&str>, generation_id: Option<&str>) -> Value {
    let (kind, param) = match info.status.as_u16() {
        401 => ("authentication_error", Value::Null),
        402 => ("insufficient_funds", Value::Null),
        403 => ("forbidden", Value::Null),
        404 => match model {
            Some(m) => ("model_not_found", json!({"modelId": m})),
            None => ("not_found", Value::Null),
        },
        429 => ("rate_limit_exceeded", Value::Null),
        s if (400..500).contains(&s) => ("invalid_request_error", Value::Null),
        _ => ("internal_server_error", Value::Null),
    };
    json!({"error": {"message": info.message, "type": kind, "param": param, "code": info.code}, "generationId": generation_id})
}

/// Re-renders every error of these routes in the SDK's shape; a 404 on a model call names the model.
async fn errors(req: Request, next: Next) -> Response {
    let model = ["ai-language-model-id", "ai-model-id"]
        .iter()
        .find_map(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()).map(str::to_owned));
    let resp = next.run(req).await;
    let generation_id = resp.headers().get("x-keyway-generation-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    dialect::rerender(resp, |i| error_body(i, model.as_deref(), generation_id.as_deref()))
}

/// A header's value, if present and text.
fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The specification version the SDK declares must be one Keyway speaks (absent: assumed current).
/// Every value sent is checked: a repeated header can't slip an unsupported version past.
fn check_version(h: &HeaderMap, name: &str) -> Result<(), ApiError> {
    for v in h.get_all(name) {
        let v = v.to_str().map(str::trim).unwrap_or("?");
        if !SPECIFICATION_VERSIONS.contains(&v) {
            return Err(ApiError::BadRequest(format!(
                "`{name}: {v}` is not supported; Keyway speaks specification version {} (the `ai` 7 / `@ai-sdk/gateway` 4 SDKs)",
                SPECIFICATION_VERSIONS.join(", ")
            )));
        }
    }
    Ok(())
}
