//! OpenAI chat <-> Anthropic Messages, both directions.
//!
//! Outbound (the `anthropic` adapter): [`openai_request_to_anthropic`],
//! [`anthropic_response_to_openai`], [`AnthropicStreamToOpenAi`].
//! Inbound (the gateway's `POST /v1/messages`): [`anthropic_request_to_openai`],
//! [`openai_response_to_anthropic`], [`OpenAiStreamToAnthropic`], [`anthropic_error_body`].

mod inbound;
mod inbound_stream;
mod request;
mod response;
mod stream;

pub use inbound::{anthropic_error_body, anthropic_error_type, anthropic_request_to_openai, anthropic_request_to_openai_lossy, openai_response_to_anthropic};
pub use inbound_stream::{AnthropicEvent, OpenAiStreamToAnthropic};
pub use request::{openai_request_to_anthropic, DEFAULT_MAX_TOKENS};
pub use response::{anthropic_error, anthropic_response_to_openai, anthropic_usage, finish_reason, stop_reason};
pub use stream::AnthropicStreamToOpenAi;
