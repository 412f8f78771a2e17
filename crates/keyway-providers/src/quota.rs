//! Out of money or quota, versus a passing rate limit.
//!
//! Providers answer both with a 429 (or a 400/403), but they ask for different things: a rate
//! limit passes in seconds (cool the key for `Retry-After`), an empty account or a spent daily
//! quota does not (park the key, try it again much later). The providers' own words tell them
//! apart; each rule below is one provider's documented error body:
//!
//! - OpenAI (and Azure OpenAI, and OpenAI-compatible hosts): `error.code` or `error.type`
//!   `insufficient_quota` ("You exceeded your current quota, please check your plan and billing
//!   details.").
//! - Anthropic (also through Vertex): an `invalid_request_error` (400) "Your credit balance is too
//!   low to access the Anthropic API", or "You have reached your specified API usage limits"
//!   (the workspace's spend limit, until the date it names); a `billing_error`.
//! - Gemini and Vertex AI (Google's `google.rpc.Status`): `RESOURCE_EXHAUSTED` whose
//!   `QuotaFailure` names a per-day quota (`GenerateRequestsPerDayPerProjectPerModel-FreeTier`),
//!   where a per-minute one is a rate limit; or `ErrorInfo.reason` `BILLING_DISABLED`.
//! - Bedrock: `ServiceQuotaExceededException` (named by the `x-amzn-ErrorType` header, see
//!   `bedrock.rs`), or a `ThrottlingException` "Too many tokens per day" (the model's daily
//!   token quota).

use crate::error::ProviderError;
use serde_json::Value;

/// Turns a rate-limit, auth or bad-request error whose body says the account is out of money
/// or quota into [`ProviderError::QuotaExhausted`]; anything else is returned as it was.
pub fn reclassify(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::RateLimited { status, message, body: Some(body), retry_after } => {
            if is_exhausted(&body) {
                ProviderError::QuotaExhausted { status, message, body: Some(body) }
            } else {
                ProviderError::RateLimited { status, message, body: Some(body), retry_after }
            }
        }
        ProviderError::Auth { status, message, body: Some(body) } if is_exhausted(&body) => {
            ProviderError::QuotaExhausted { status, message, body: Some(body) }
        }
        ProviderError::BadRequest { status, message, body: Some(body) } if is_exhausted(&body) => {
            ProviderError::QuotaExhausted { status, message, body: Some(body) }
        }
        other => other,
    }
}

/// Whether an upstream's error body says its account is out of money or quota.
pub fn is_exhausted(body: &str) -> bool {
    // Cheap guard first: every rule needs one of these words, and most error bodies have none.
    const HINTS: [&str; 6] = ["quota", "credit balance", "usage limits", "billing", "QUOTA", "per day"];
    if !HINTS.iter().any(|h| body.contains(h)) {
        return false;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else { return false };
    let error = v.get("error").unwrap_or(&v);
    let field = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or("");
    let message = field("message");
    openai(field("code"), field("type")) || anthropic(field("type"), message) || google(error) || bedrock(message)
}

fn openai(code: &str, kind: &str) -> bool {
    code == "insufficient_quota" || kind == "insufficient_quota"
}

fn anthropic(kind: &str, message: &str) -> bool {
    kind == "billing_error"
        || (kind == "invalid_request_error"
            && (message.contains("credit balance is too low") || message.contains("reached your specified API usage limits")))
}

fn google(error: &Value) -> bool {
    let status = error.get("status").and_then(Value::as_str).unwrap_or("");
    let details = error.get("details").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let typed = |d: &&Value, t: &str| d.get("@type").and_then(Value::as_str).is_some_and(|x| x.ends_with(t));
    if details.iter().filter(|d| typed(d, "google.rpc.ErrorInfo")).any(|d| d.get("reason").and_then(Value::as_str) == Some("BILLING_DISABLED")) {
        return true;
    }
    if status != "RESOURCE_EXHAUSTED" {
        return false;
    }
    // A per-day quota lasts until tomorrow; per-minute ones pass (a rate limit).
    details.iter().filter(|d| typed(d, "google.rpc.QuotaFailure")).any(|d| {
        let violations = d.get("violations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        violations.iter().any(|v| {
            let id = v.get("quotaId").and_then(Value::as_str).unwrap_or("");
            let metric = v.get("quotaMetric").and_then(Value::as_str).unwrap_or("");
            id.contains("PerDay") || metric.contains("per_day")
        })
    })
}

fn bedrock(message: &str) -> bool {
    message.starts_with("Too many tokens per day")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const OPENAI: &str = r#"{"error": {"message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}"#;
    const OPENAI_RATE: &str = r#"{"error": {"message": "Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}"#;
    const ANTHROPIC: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"req_011"}"#;
    const ANTHROPIC_LIMIT: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-04-01 at 00:00 UTC."}}"#;
    const ANTHROPIC_BAD: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
    const GEMINI_DAY: &str = r#"{"error": {"code": 429, "message": "You exceeded your current quota, please check your plan and billing details.", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, "quotaValue": "250"}]}, {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "22s"}]}}"#;
    const GEMINI_MINUTE: &str = r#"{"error": {"code": 429, "message": "You exceeded your current quota, please check your plan and billing details.", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]}]}}"#;
    const VERTEX_BILLING: &str = r#"{"error": {"code": 403, "message": "This API method requires billing to be enabled. Please enable billing on project #1 by visiting https://console.developers.google.com/billing/enable?project=1 then retry.", "status": "PERMISSION_DENIED", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "BILLING_DISABLED", "domain": "googleapis.com", "metadata": {"service": "aiplatform.googleapis.com"}}]}}"#;
    const BEDROCK_DAY: &str = r#"{"message":"Too many tokens per day, please wait before trying again."}"#;
    const BEDROCK_RATE: &str = r#"{"message":"Too many requests, please wait before trying again. You have sent too many requests.  Wait before trying again."}"#;

    #[test]
    fn each_providers_quota_body_is_exhausted() {
        for body in [OPENAI, ANTHROPIC, ANTHROPIC_LIMIT, GEMINI_DAY, VERTEX_BILLING, BEDROCK_DAY] {
            assert!(is_exhausted(body), "{body}");
        }
    }

    #[test]
    fn rate_limits_and_other_errors_are_not() {
        for body in [OPENAI_RATE, ANTHROPIC_BAD, GEMINI_MINUTE, BEDROCK_RATE, "", "not json quota", "{}"] {
            assert!(!is_exhausted(body), "{body}");
        }
    }

    #[test]
    fn reclassify_keeps_status_and_body_and_leaves_rate_limits_alone() {
        let limited = |b: &str| ProviderError::RateLimited { status: 429, retry_after: Some(Duration::from_secs(3)), message: "m".into(), body: Some(b.into()) };
        assert!(matches!(reclassify(limited(OPENAI)), ProviderError::QuotaExhausted { status: 429, body: Some(_), .. }));
        assert_eq!(reclassify(limited(OPENAI_RATE)), limited(OPENAI_RATE));
        let bad = ProviderError::BadRequest { status: 400, message: "m".into(), body: Some(ANTHROPIC.into()) };
        assert!(matches!(reclassify(bad), ProviderError::QuotaExhausted { status: 400, .. }));
        let denied = ProviderError::Auth { status: 403, message: "m".into(), body: Some(VERTEX_BILLING.into()) };
        assert!(matches!(reclassify(denied), ProviderError::QuotaExhausted { status: 403, .. }));
    }
}
