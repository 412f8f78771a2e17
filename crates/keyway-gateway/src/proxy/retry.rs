//! The one rule the attempt loop follows after a failed attempt, and how a failure is reported
//! (to the health board, and to the client once every attempt failed).
//!
//! The rule itself is `ProviderError::is_retryable` (keyway-providers, table-tested there); this
//! module is where the loop asks it, and its tests pin the loop's side of the contract.

use crate::error::ApiError;
use keyway_core::route::Outcome;
use keyway_providers::ProviderError;

/// Whether the loop tries the next attempt after `e`. Only a request the upstream rejected as
/// malformed (4xx other than 401/403/429) stops it: another key would be told the same.
/// An adapter that can't serve an attempt (`Unsupported`: no key for the region, a parameter it
/// lacks) moves on too: that is exactly the case a fallback is for.
pub fn moves_on(e: &ProviderError) -> bool {
    e.is_retryable()
}

/// What a failure tells the health board about the credential.
pub(super) fn outcome_of(e: &ProviderError) -> Outcome {
    match e {
        ProviderError::RateLimited { retry_after, .. } => Outcome::RateLimited {
            retry_after: *retry_after,
        },
        ProviderError::Auth { .. } => Outcome::AuthFailed,
        ProviderError::BadRequest { .. } | ProviderError::Unsupported(_) => Outcome::RequestError,
        _ => Outcome::UpstreamError,
    }
}

/// The status a provider answered with, when the failure is the provider's (not a timeout, a
/// connection failure or Keyway's own refusal).
pub(super) fn provider_status(e: &ProviderError) -> Option<u16> {
    match e {
        ProviderError::RateLimited { status, .. }
        | ProviderError::Auth { status, .. }
        | ProviderError::BadRequest { status, .. }
        | ProviderError::Upstream5xx { status, .. } => Some(*status),
        _ => None,
    }
}

/// The client's error once every attempt failed: the last failure decides its class.
pub(super) fn final_error(e: &ProviderError, message: String) -> ApiError {
    match e {
        ProviderError::RateLimited { retry_after, .. } => ApiError::RateLimited {
            message,
            retry_after: *retry_after,
        },
        ProviderError::BadRequest { status, .. } => ApiError::Upstream {
            status: *status,
            message,
            retry_after: None,
            kind: "upstream_bad_request",
        },
        ProviderError::Unsupported(_) => ApiError::BadRequest(message),
        ProviderError::Timeout(_) => ApiError::Upstream {
            status: 504,
            message,
            retry_after: None,
            kind: "upstream_timeout",
        },
        ProviderError::Auth { .. } => ApiError::Upstream {
            status: 502,
            message,
            retry_after: None,
            kind: "upstream_auth",
        },
        ProviderError::Upstream5xx {
            status: 503 | 529, ..
        } => ApiError::Upstream {
            status: 503,
            message,
            retry_after: None,
            kind: "upstream_unavailable",
        },
        _ => ApiError::Upstream {
            status: 502,
            message,
            retry_after: None,
            kind: "upstream_error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_a_bad_request_stops_the_loop() {
        let cases = [
            (
                ProviderError::RateLimited {
                    status: 429,
                    retry_after: Some(Duration::from_secs(1)),
                    message: "slow down".into(),
                    body: None,
                },
                true,
            ),
            (
                ProviderError::Auth {
                    status: 401,
                    message: "bad key".into(),
                    body: None,
                },
                true,
            ),
            (
                ProviderError::Auth {
                    status: 403,
                    message: "no access".into(),
                    body: None,
                },
                true,
            ),
            (
                ProviderError::Upstream5xx {
                    status: 500,
                    message: "oops".into(),
                },
                true,
            ),
            (
                ProviderError::Upstream5xx {
                    status: 529,
                    message: "overloaded".into(),
                },
                true,
            ),
            (
                ProviderError::Timeout(keyway_providers::error::TimeoutKind::FirstByte),
                true,
            ),
            (ProviderError::Connect("refused".into()), true),
            (
                ProviderError::Timeout(keyway_providers::error::TimeoutKind::Idle),
                true,
            ),
            (ProviderError::Protocol("not json".into()), true),
            (
                ProviderError::Unsupported("no key for the region".into()),
                true,
            ),
            (
                ProviderError::BadRequest {
                    status: 400,
                    message: "bad".into(),
                    body: None,
                },
                false,
            ),
            (
                ProviderError::BadRequest {
                    status: 422,
                    message: "bad".into(),
                    body: None,
                },
                false,
            ),
        ];
        for (e, expected) in cases {
            assert_eq!(moves_on(&e), expected, "{e:?}");
        }
    }
}
