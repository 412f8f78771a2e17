//! Pure translations between wire formats: no I/O, no clock, no secrets.
//!
//! The adapters use them outbound (an OpenAI request to a provider's format and the answer
//! back), and the gateway uses the inverse directions inbound (a client speaking Anthropic's
//! `POST /v1/messages` served by any provider through the OpenAI-shaped internal format; the
//! Vercel AI SDK's gateway protocol at `/v1/ai` likewise).

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod vercel;

use crate::error::ProviderError;
use keyway_core::Usage;
use serde_json::{json, Value};

/// Why a body could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's request can't be expressed in the target format (a client error).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An upstream answer is not in the shape its protocol promises.
    #[error("unexpected response shape: {0}")]
    InvalidResponse(String),
}

impl From<TranslateError> for ProviderError {
    fn from(e: TranslateError) -> Self {
        match e {
            TranslateError::InvalidRequest(message) => ProviderError::BadRequest { status: 400, message, body: None },
            TranslateError::InvalidResponse(message) => ProviderError::Protocol(message),
        }
    }
}

/// [`Usage`] as an OpenAI `usage` object. `prompt_tokens_details.cache_write_tokens` (OpenRouter's
/// name) appears only when non-zero, so that an Anthropic round trip keeps cache writes.
pub fn openai_usage_json(u: &Usage) -> Value {
    let mut details = json!({"cached_tokens": u.cached_tokens});
    if u.cache_write_tokens > 0 {
        details["cache_write_tokens"] = json!(u.cache_write_tokens);
    }
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total(),
        "prompt_tokens_details": details,
    })
}

/// An OpenAI `usage` object -> [`Usage`], reading the cache-write count too (see [`openai_usage_json`]).
pub fn usage_from_openai_json(v: &Value) -> Option<Usage> {
    let u = v.as_object()?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let d = |k: &str| u.get("prompt_tokens_details").and_then(|d| d.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        cached_tokens: d("cached_tokens"),
        cache_write_tokens: d("cache_write_tokens"),
    })
}

pub(crate) fn invalid_request(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

pub(crate) fn invalid_response(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(msg.into())
}
