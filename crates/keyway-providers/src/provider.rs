//! The trait every adapter implements; the registry holds them as `dyn Provider`.

use crate::error::ProviderError;
use crate::types::{Call, ChatRequest, ChatResponse, EmbeddingsResponse, RequestPreview};
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
