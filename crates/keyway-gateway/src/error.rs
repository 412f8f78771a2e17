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
    /// A server Keyway depends on (the database; Redis with `[cluster] fail_closed`) can't be
    /// reached right now: 503 with `Retry-After`, nothing written; the same call succeeds later.
    #[error("{0}")]
    Unavailable(String),
    /// Details go to the log; the client sees a generic message.
    #[error("internal error")]
    Internal(String),
    /// An error with OpenRouter's `error.metadata` (every dialect that has room shows it). With
    /// `provider_status`, a provider caused it: `/api/v1` answers with that status, as OpenRouter does.
    #[error("{error}")]
    WithMetadata { error: Box<ApiError>, metadata: serde_json::Value, provider_status: Option<u16> },
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
    /// OpenRouter's `error.metadata` (`provider_name`, `raw` for a provider's failure).
    pub metadata: Option<serde_json::Value>,
    /// The provider's own status, when a provider caused the failure (OpenRouter's `error.code`).
    pub provider_status: Option<u16>,
}

impl ApiError {
    /// A provider's failure: OpenRouter's `{provider_name, raw}` metadata, and the provider's
    /// status for `/api/v1` when it is a 4xx (the provider refused the request, the key or the
    /// rate). A provider's 5xx stays 502/503 there too, as OpenRouter documents ("your chosen model
    /// is down or we received an invalid response from it").
    pub fn with_provider(self, provider_status: u16, provider_name: &str, raw: serde_json::Value) -> Self {
        ApiError::WithMetadata {
            error: Box::new(self),
            metadata: json!({"provider_name": provider_name, "raw": raw}),
            provider_status: (400..500).contains(&provider_status).then_some(provider_status),
        }
    }

    pub fn info(&self) -> ErrorInfo {
        if let ApiError::WithMetadata { error, metadata, provider_status } = self {
            return ErrorInfo { metadata: Some(metadata.clone()), provider_status: *provider_status, ..error.info() };
        }
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
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", Some("service_unavailable")),
            ApiError::Internal(_) | ApiError::WithMetadata { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
        };
        let message = match self {
            ApiError::Internal(_) => "internal error; see the gateway log".to_owned(),
            other => other.to_string(),
        };
        ErrorInfo { status, message, kind, code, metadata: None, provider_status: None }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Upstream { retry_after, .. } => *retry_after,
            ApiError::WithMetadata { error, .. } => error.retry_after(),
            ApiError::Unavailable(_) => Some(Duration::from_secs(1)),
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
        let mut error = json!({"message": info.message, "type": info.kind, "param": null, "code": info.code});
        if let (Some(m), Some(o)) = (&info.metadata, error.as_object_mut()) {
            o.insert("metadata".into(), m.clone());
        }
        let mut resp = (info.status, Json(json!({"error": error}))).into_response();
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
            S::Db(e) if db_unreachable(&e) => {
                tracing::warn!(error = %e, "database unreachable");
                ApiError::Unavailable("the database is unreachable right now; nothing was changed, retry shortly".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The database is down or out of reach (rather than refusing a statement): worth a retry.
fn db_unreachable(e: &sqlx::Error) -> bool {
    match e {
        // Not `PoolClosed`: that is this process shutting down, not the database away.
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        // 08xxx: connection exceptions; 57P01-57P03: the server is shutting down or starting.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Re-renders errors for a surface whose clients expect another shape.
pub mod dialect {
    use super::ErrorInfo;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::Json;
    use serde_json::json;

    /// Set once a surface has chosen the dialect, so an outer layer (`/api/v1` around
    /// `/api/v1/messages`) leaves it alone.
    #[derive(Debug, Clone, Copy)]
    struct Rendered;

    pub(crate) fn rerender(resp: Response, body: impl FnOnce(&ErrorInfo) -> serde_json::Value) -> Response {
        rerender_with_status(resp, |i| i.status, body)
    }

    fn rerender_with_status(
        resp: Response,
        status_of: impl FnOnce(&ErrorInfo) -> StatusCode,
        body: impl FnOnce(&ErrorInfo) -> serde_json::Value,
    ) -> Response {
        if resp.extensions().get::<Rendered>().is_some() {
            return resp;
        }
        let Some(info) = resp.extensions().get::<ErrorInfo>().cloned() else {
            return resp;
        };
        let (mut parts, _) = resp.into_parts();
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        let status = status_of(&info);
        let mut out = (status, Json(body(&info))).into_response();
        for (k, v) in parts.headers.iter() {
            if k != axum::http::header::CONTENT_TYPE {
                out.headers_mut().insert(k.clone(), v.clone());
            }
        }
        out.extensions_mut().insert(info);
        out.extensions_mut().insert(Rendered);
        out
    }

    /// OpenRouter's base: an integer `code` (its SDKs build typed errors from it). A provider's
    /// failure carries the provider's status, as OpenRouter passes it through.
    pub async fn openrouter(resp: Response) -> Response {
        rerender_with_status(resp, |i| i.provider_status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(i.status), |i| {
            let code = i.provider_status.unwrap_or(i.status.as_u16());
            json!({"error": {"code": code, "message": i.message, "type": i.kind, "metadata": i.metadata}})
        })
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
