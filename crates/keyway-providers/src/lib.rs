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
pub mod azure;
pub mod bedrock;
pub mod body;
pub mod client;
pub mod error;
pub mod gemini;
pub mod http;
pub mod openai_compat;
pub mod raw;
pub mod registry;
pub mod sse;
pub mod translate;
pub mod types;
pub mod vertex;

pub use body::{Body, RawObject};
pub use client::{HttpClient, Transport};
pub use error::ProviderError;
pub use registry::{Providers, ProvidersConfig, Timeouts};
pub use types::{json_str, AnthropicNative, Call, ChatRequest, ChatResponse, ChunkShape, ChunkStream, EmbeddingsResponse, RequestBody, RequestPreview, StreamEvent};

use async_trait::async_trait;

/// One provider protocol. Implementations hold their base URL and the shared HTTP client.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A chat completion, streaming when `req.stream` is set.
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// OpenAI-shaped embeddings; providers without an embeddings API say `Unsupported`.
    async fn embeddings(&self, call: &Call<'_>, req: &ChatRequest) -> Result<EmbeddingsResponse, ProviderError> {
        let _ = (call, req);
        Err(ProviderError::Unsupported("this provider has no embeddings endpoint in Keyway".into()))
    }

    /// The exact request `chat` would send, secrets masked (Test key's curl line).
    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError>;

    /// A cheap model to send Test key's one-token request to (upstream id).
    fn test_model(&self) -> &str;

    /// Whether `chat` sends [`ChatRequest::anthropic`] as is for this call when set, answering
    /// with Anthropic messages (Complete) and Anthropic event data (Stream chunks) instead of
    /// OpenAI shapes.
    fn native_anthropic(&self, call: &Call<'_>) -> bool {
        let _ = call;
        false
    }
}
