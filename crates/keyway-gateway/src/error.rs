//! Errors as clients see them, in each surface's own dialect:
//! OpenAI routes `{"error": {"message", "type", "code"}}`, `/v1/messages` Anthropic's
//! `{"type": "error", "error": {"type", "message"}}`, the OpenRouter base `/api/v1`
//! `{"error": {"code": <status>, "message", "type"}}`. Handlers return [`ApiError`]; it renders
//! the OpenAI shape and leaves an [`ErrorInfo`] in the response so [`dialect`] layers can re-render.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request body did not arrive within `[server] body_read_timeout_ms`.
    #[error("{0}")]
    RequestTimeout(String),
    /// A credential of the wrong shape.
    #[error("{0}")]
    InvalidCredential(String),
    #[error("{message}")]
    RateLimited { message: String, retry_after: Option<Duration> },
    /// The upstream's failure after every attempt (its status, or 502/503/504).
    #[error("{message}")]
    Upstream { status: u16, message: String, retry_after: Option<Duration>, kind: &'static str },
    /// Details go to the log; the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

/// What a dialect layer needs to re-render an error.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type` (`invalid_request_error`, ...).
    pub kind: &'static str,
    /// OpenAI's string `code`, if any.
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn info(&self) -> ErrorInfo {
        let (status, kind, code) = match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "authentication_error", Some("invalid_api_key")),
            ApiError::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, "insufficient_quota", Some("insufficient_quota")),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error", Some("forbidden")),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error", Some("not_found")),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", Some("method_not_allowed")),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "invalid_request_error", Some("conflict")),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", Some("payload_too_large")),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "invalid_request_error", Some("request_timeout")),
            ApiError::InvalidCredential(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error", Some("invalid_credential")),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some("rate_limit_exceeded")),
            ApiError::Upstream { status, kind, .. } => {
                (StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY), "upstream_error", Some(*kind))
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
        };
        let message = match self {
            ApiError::Internal(_) => "internal error; see the gateway log".to_owned(),
            other => other.to_string(),
        };
        ErrorInfo { status, message, kind, code }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let info = self.info();
        let mut resp = (info.status, Json(json!({"error": {"message": info.message, "type": info.kind, "param": null, "code": info.code}})))
            .into_response();
        if let Some(ra) = self.retry_after() {
            let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp.extensions_mut().insert(info);
        resp
    }
}

impl From<keyway_store::StoreError> for ApiError {
    fn from(e: keyway_store::StoreError) -> Self {
        use keyway_store::StoreError as S;
        match e {
            S::NotFound => ApiError::NotFound("not found".into()),
            S::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Re-renders errors for a surface whose clients expect another shape.
pub mod dialect {
    use super::ErrorInfo;
    use axum::response::{IntoResponse, Response};
    use axum::Json;
    use serde_json::json;

    /// Set once a surface has chosen the dialect, so an outer layer (`/api/v1` around
    /// `/api/v1/messages`) leaves it alone.
    #[derive(Debug, Clone, Copy)]
    struct Rendered;

    fn rerender(resp: Response, body: impl FnOnce(&ErrorInfo) -> serde_json::Value) -> Response {
        if resp.extensions().get::<Rendered>().is_some() {
            return resp;
        }
        let Some(info) = resp.extensions().get::<ErrorInfo>().cloned() else {
            return resp;
        };
        let (mut parts, _) = resp.into_parts();
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        let mut out = (info.status, Json(body(&info))).into_response();
        for (k, v) in parts.headers.iter() {
            if k != axum::http::header::CONTENT_TYPE {
                out.headers_mut().insert(k.clone(), v.clone());
            }
        }
        out.extensions_mut().insert(info);
        out.extensions_mut().insert(Rendered);
        out
    }

    /// OpenRouter's base: an integer `code` (its SDKs build typed errors from it).
    pub async fn openrouter(resp: Response) -> Response {
        rerender(resp, |i| json!({"error": {"code": i.status.as_u16(), "message": i.message, "type": i.kind, "metadata": null}}))
    }

    /// Anthropic's Messages API.
    pub async fn anthropic(resp: Response) -> Response {
        rerender(resp, |i| {
            let kind = match i.status.as_u16() {
                400 | 413 | 422 => "invalid_request_error",
                401 => "authentication_error",
                402 => "billing_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 | 503 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": i.message}})
        })
    }
}
