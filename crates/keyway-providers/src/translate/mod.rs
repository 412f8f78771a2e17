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

/// The one OpenAI usage reader and writer live in [`crate::usage`]; these names stay for callers.
pub use crate::usage::{openai_usage as usage_from_openai_json, openai_usage_json};

pub(crate) fn invalid_request(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

pub(crate) fn invalid_response(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(msg.into())
}
