//! Provider adapters: one module per wire protocol, all behind [`Provider`].
//!
//! The gateway speaks OpenAI's chat format internally ([`ChatRequest`] is an OpenAI request body
//! with Keyway's routing fields already removed). Each adapter translates that to its provider's
//! protocol, signs the call the way the provider demands, and translates the answer back to an
//! OpenAI `chat.completion` or a stream of `chat.completion.chunk`s. Upstream failures are folded
//! into [`ProviderError`], the small set of classes the router acts on. The one exception: a
//! request from Keyway's `POST /v1/messages` carries the client's Anthropic body
//! ([`ChatRequest::anthropic`]), which adapters that speak Anthropic's protocol send as is and
//! answer in Anthropic's shapes ([`Provider::native_anthropic`]).

pub mod anthropic;
#[cfg(feature = "bench")]
pub mod bench;
pub mod azure;
pub mod bedrock;
pub mod body;
pub mod client;
pub mod error;
pub mod gemini;
pub mod http;
pub mod openai_compat;
pub mod openai_shape;
pub mod provider;
pub mod raw;
pub mod registry;
pub mod sse;
pub mod stream;
pub mod timeouts;
pub mod translate;
pub mod types;
pub mod usage;
pub mod vertex;

pub use body::{Body, RawObject};
pub use client::{HttpClient, Transport};
pub use error::ProviderError;
pub use provider::Provider;
pub use registry::{Providers, ProvidersConfig, Timeouts};
pub use types::{json_str, AnthropicNative, Call, ChatRequest, ChatResponse, ChunkShape, ChunkStream, EmbeddingsResponse, RequestBody, RequestPreview, StreamEvent};
