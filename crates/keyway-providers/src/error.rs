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
            ProviderError::RateLimited { body, .. } | ProviderError::Auth { body, .. } | ProviderError::BadRequest { body, .. } => {
                body.as_deref()
            }
            _ => None,
        }
    }

    /// The one retry rule: whether the attempt loop moves on to the next attempt of the route
    /// plan after this error. Only [`ProviderError::BadRequest`] stops it: the upstream judged
    /// the request itself wrong, and any other provider would too (a 400 the client must fix).
    /// Everything else is about this attempt — its key (`Auth`, `RateLimited`), its upstream
    /// (`Upstream5xx`, `Timeout`, `Connect`, `Protocol`), or what this provider or credential can
    /// express (`Unsupported`: no embeddings here, a feature only Anthropic serves, a credential
    /// of the wrong kind) — and the next attempt may well succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::BadRequest { .. })
    }

    /// A short machine name for metrics, attempt records and logs.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "rate_limited",
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
            ProviderError::Auth { status, .. } | ProviderError::BadRequest { status, .. } => *status,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bad_request_stops_the_attempt_loop() {
        let table = [
            (ProviderError::RateLimited { status: 429, retry_after: None, message: String::new(), body: None }, true),
            (ProviderError::Auth { status: 401, message: String::new(), body: None }, true),
            (ProviderError::Auth { status: 403, message: String::new(), body: None }, true),
            (ProviderError::BadRequest { status: 400, message: String::new(), body: None }, false),
            (ProviderError::BadRequest { status: 404, message: String::new(), body: None }, false),
            (ProviderError::BadRequest { status: 422, message: String::new(), body: None }, false),
            (ProviderError::Upstream5xx { status: 500, message: String::new() }, true),
            (ProviderError::Upstream5xx { status: 529, message: String::new() }, true),
            (ProviderError::Timeout(TimeoutKind::Connect), true),
            (ProviderError::Timeout(TimeoutKind::FirstByte), true),
            (ProviderError::Timeout(TimeoutKind::Idle), true),
            (ProviderError::Connect(String::new()), true),
            (ProviderError::Protocol(String::new()), true),
            (ProviderError::Unsupported(String::new()), true),
        ];
        for (e, retry) in table {
            assert_eq!(e.is_retryable(), retry, "{e:?}");
        }
    }

    #[test]
    fn statuses_classify_into_the_rule() {
        let table = [(400, false), (404, false), (408, true), (409, false), (401, true), (403, true), (429, true), (500, true), (503, true)];
        for (status, retry) in table {
            let e = ProviderError::from_status(status, None, String::new(), None);
            assert_eq!(e.is_retryable(), retry, "{status}: {e:?}");
        }
    }
}
