//! The classes of upstream failure the router acts on.

use std::time::Duration;

/// Messages here come from upstreams; the gateway scrubs credential secrets out of them
/// before they reach a client or a log line. `body` is the upstream's raw error answer (bounded),
/// kept for Test key, which shows it; the gateway scrubs it the same way.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// 429 or a throttling event; move on to the next attempt, cool this key down.
    #[error("rate limited by upstream ({status}): {message}")]
    RateLimited { status: u16, retry_after: Option<Duration>, message: String, body: Option<String> },
    /// The account behind the credential is out of money or quota (see `quota.rs`): move on,
    /// and park this key instead of cooling it for a `Retry-After`.
    #[error("upstream account is out of quota or credit ({status}): {message}")]
    QuotaExhausted { status: u16, message: String, body: Option<String> },
    /// 401/403: the credential is wrong or lacks access.
    #[error("upstream rejected the credential ({status}): {message}")]
    Auth { status: u16, message: String, body: Option<String> },
    /// 4xx other than 401/403/429: the request itself is wrong; never retried.
    #[error("upstream refused the request ({status}): {message}")]
    BadRequest { status: u16, message: String, body: Option<String> },
    /// 5xx or an error event such as Anthropic's `overloaded_error`.
    #[error("upstream error ({status}): {message}")]
    Upstream5xx { status: u16, message: String },
    #[error("upstream timed out ({0})")]
    Timeout(TimeoutKind),
    #[error("could not connect to upstream: {0}")]
    Connect(String),
    /// The upstream answered something that is not its protocol (invalid JSON, cut frame).
    #[error("upstream answered in an unexpected format: {0}")]
    Protocol(String),
    /// The request can't be expressed for this provider, or the credential can't serve it.
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Connect,
    FirstByte,
    Idle,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::FirstByte => "waiting for the first byte",
            TimeoutKind::Idle => "idle between stream chunks",
        })
    }
}

impl ProviderError {
    /// The upstream's raw error answer, where one was kept.
    pub fn body(&self) -> Option<&str> {
        match self {
            ProviderError::RateLimited { body, .. }
            | ProviderError::QuotaExhausted { body, .. }
            | ProviderError::Auth { body, .. }
            | ProviderError::BadRequest { body, .. } => body.as_deref(),
            _ => None,
        }
    }

    /// Whether the router may try the next attempt after this error.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::BadRequest { .. } | ProviderError::Unsupported(_))
    }

    /// A short machine name for metrics, attempt records and logs.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::QuotaExhausted { .. } => "quota_exhausted",
            ProviderError::Auth { .. } => "auth",
            ProviderError::BadRequest { .. } => "bad_request",
            ProviderError::Upstream5xx { .. } => "upstream_5xx",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Connect(_) => "connect",
            ProviderError::Protocol(_) => "protocol",
            ProviderError::Unsupported(_) => "unsupported",
        }
    }

    /// The HTTP status to show a client when this is the final error.
    pub fn status(&self) -> u16 {
        match self {
            ProviderError::RateLimited { .. } => 429,
            ProviderError::Auth { status, .. } | ProviderError::BadRequest { status, .. } | ProviderError::QuotaExhausted { status, .. } => *status,
            ProviderError::Upstream5xx { .. } | ProviderError::Protocol(_) | ProviderError::Connect(_) => 502,
            ProviderError::Timeout(_) => 504,
            ProviderError::Unsupported(_) => 400,
        }
    }

    /// Classifies a non-2xx upstream answer. `message` is the upstream's own error text.
    pub fn from_status(status: u16, retry_after: Option<Duration>, message: String, body: Option<String>) -> Self {
        match status {
            429 => ProviderError::RateLimited { status, retry_after, message, body },
            401 | 403 => ProviderError::Auth { status, message, body },
            408 => ProviderError::Timeout(TimeoutKind::FirstByte),
            400..=499 => ProviderError::BadRequest { status, message, body },
            _ => ProviderError::Upstream5xx { status, message },
        }
    }
}
