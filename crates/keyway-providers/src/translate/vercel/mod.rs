//! The Vercel AI SDK's gateway protocol (`@ai-sdk/gateway`, language-model specification v4)
//! <-> the OpenAI-shaped internal request, both directions, for the gateway's `/v1/ai` routes.
//!
//! Inbound: [`vercel_request_to_openai`] (the SDK's call options: a prompt of typed parts,
//! tools, tool choice, response format, provider options) and [`vercel_embedding_to_openai`].
//! Outbound: [`openai_response_to_vercel`] (the SDK's generate result), [`OpenAiStreamToVercel`]
//! (its stream parts), [`openai_embeddings_to_vercel`]. [`ServedBy`] is the provider metadata
//! every answer carries: which provider and credential served it and what it cost.

mod request;
mod response;
mod stream;

pub use request::{vercel_embedding_to_openai, vercel_request_to_openai};
pub use response::{finish_reason, openai_embeddings_to_vercel, openai_response_to_vercel, vercel_usage, ServedBy};
pub use stream::OpenAiStreamToVercel;

/// The language-model specification version `ai` 7 / `@ai-sdk/gateway` 4 send in
/// `ai-language-model-specification-version` (and the embedding model's header).
pub const SPECIFICATION_VERSIONS: [&str; 1] = ["4"];
