//! Google Vertex AI with a service-account credential.
//!
//! Gemini models: `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/
//! {model}:generateContent` (`:streamGenerateContent?alt=sse`), in the Gemini format of
//! [`crate::gemini`]. Claude models (ids starting `claude`): `publishers/anthropic/models/{model}
//! :rawPredict` (`:streamRawPredict`) with an Anthropic Messages body (see [`claude`]).
//!
//! `base` is a template with `{location}` (`https://{location}-aiplatform.googleapis.com`); the
//! `global` location has its own host, used when the template is the default one. The location
//! is the request's, else the credential's. Auth is a bearer access token from [`token`].

pub mod claude;
pub mod token;

pub use token::{TokenCache, TokenKey};

use crate::anthropic;
use crate::error::ProviderError;
use crate::gemini::{self, encode_segment};
use crate::http;
use crate::timeouts::Timeouts;
use crate::types::{AnthropicNative, Call, ChatRequest, ChatResponse, RequestPreview};
use crate::provider::Provider;
use async_trait::async_trait;
use keyway_core::credential::VertexCredential;
use keyway_core::{Credential, ProviderSlug};
use secrecy::{ExposeSecret, SecretString};

pub const GLOBAL_HOST: &str = "https://aiplatform.googleapis.com";

pub struct Vertex {
    base_template: String,
    http: crate::client::HttpClient,
    timeouts: Timeouts,
    tokens: TokenCache,
}

/// Which publisher serves a model id on Vertex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    Google,
    Anthropic,
}

impl Publisher {
    pub fn of(model: &str) -> Self {
        if model.starts_with("claude") {
            Publisher::Anthropic
        } else {
            Publisher::Google
        }
    }
}

fn valid_location(l: &str) -> bool {
    !l.is_empty() && l.len() <= 32 && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Vertex {
    pub fn new(base_template: String, http: crate::client::HttpClient, timeouts: Timeouts) -> Self {
        let tokens = TokenCache::new(http.clone(), timeouts);
        Self { base_template, http, timeouts, tokens }
    }

    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// The host part for `location`.
    pub fn base_url(&self, location: &str) -> String {
        let default = ProviderSlug::GoogleVertex.default_base_url();
        if location == "global" && self.base_template.trim_end_matches('/') == default {
            return GLOBAL_HOST.to_owned();
        }
        self.base_template.replace("{location}", location).trim_end_matches('/').to_owned()
    }

    pub fn url(&self, project: &str, location: &str, model: &str, stream: bool) -> String {
        let (publisher, method) = match (Publisher::of(model), stream) {
            (Publisher::Google, false) => ("google", "generateContent"),
            (Publisher::Google, true) => ("google", "streamGenerateContent?alt=sse"),
            (Publisher::Anthropic, false) => ("anthropic", "rawPredict"),
            (Publisher::Anthropic, true) => ("anthropic", "streamRawPredict"),
        };
        format!(
            "{}/v1/projects/{}/locations/{location}/publishers/{publisher}/models/{}:{method}",
            self.base_url(location),
            encode_segment(project),
            encode_segment(model)
        )
    }

    fn target<'a>(&self, call: &Call<'a>) -> Result<(&'a VertexCredential, String), ProviderError> {
        let Credential::Vertex(cred) = call.credential else {
            return Err(ProviderError::Unsupported("Google Vertex takes a service-account credential".into()));
        };
        let location = call.region.unwrap_or(&cred.location).to_owned();
        if !valid_location(&location) {
            return Err(ProviderError::Unsupported(format!("`{location}` is not a Vertex location")));
        }
        Ok((cred, location))
    }

    /// The client's Anthropic body, when this call sends it natively (Claude models).
    fn native<'r>(&self, call: &Call<'_>, req: &'r ChatRequest) -> Option<&'r AnthropicNative> {
        req.anthropic.as_deref().filter(|_| self.native_anthropic(call))
    }

    fn build(&self, call: &Call<'_>, req: &ChatRequest, token: &str) -> Result<reqwest::Request, ProviderError> {
        let (cred, location) = self.target(call)?;
        let native = self.native(call, req);
        let body = match (Publisher::of(call.model), native) {
            (Publisher::Anthropic, Some(n)) => claude::native_request(n),
            (Publisher::Google, _) => crate::translate::gemini::request(req.body.map()?)?,
            (Publisher::Anthropic, None) => claude::request(req.body.map()?)?,
        };
        let body = serde_json::to_vec(&body).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        let mut rb = self
            .http
            .post(self.url(&cred.project_id, &location, call.model, req.stream()))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(beta) = native.and_then(|n| n.beta.as_deref()) {
            rb = rb.header("anthropic-beta", beta);
        }
        rb.body(body)
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("could not build the request: {}", e.without_url())))
    }
}

#[async_trait]
impl Provider for Vertex {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let (cred, _) = self.target(call)?;
        let token: SecretString = self.tokens.token(cred).await?;
        let request = self.build(call, req, token.expose_secret())?;
        let resp = match http::send(&self.http, request, &self.timeouts).await {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, ProviderError::Auth { status: 401, .. }) {
                    // A revoked or early-expired token: the next attempt fetches a new one.
                    self.tokens.invalidate(cred, &token).await;
                }
                return Err(e);
            }
        };
        if self.native(call, req).is_some() {
            return anthropic::answer(resp, req.stream(), anthropic::Shape::Native, &self.timeouts).await;
        }
        match Publisher::of(call.model) {
            Publisher::Google => gemini::chat_over(resp, req.stream(), call.model, &self.timeouts).await,
            Publisher::Anthropic => anthropic::answer(resp, req.stream(), anthropic::Shape::OpenAi, &self.timeouts).await,
        }
    }

    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError> {
        // No token is fetched for a preview; the placeholder names where it would come from.
        let (cred, _) = self.target(call)?;
        let placeholder = format!("<access token from {}>", token::token_endpoint(cred));
        let mut p = RequestPreview::from_request(&self.build(call, req, "placeholder")?);
        for (k, v) in &mut p.headers {
            if k == "authorization" {
                *v = format!("Bearer {placeholder}");
            }
        }
        Ok(p)
    }

    fn test_model(&self) -> &str {
        "gemini-2.5-flash-lite"
    }

    fn native_anthropic(&self, call: &Call<'_>) -> bool {
        Publisher::of(call.model) == Publisher::Anthropic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(template: &str) -> Vertex {
        Vertex::new(template.into(), crate::client::HttpClient::new(&Timeouts::default(), crate::client::Transport::Direct, &[]).unwrap(), Timeouts::default())
    }

    #[test]
    fn urls_per_location_and_publisher() {
        let v = vertex("https://{location}-aiplatform.googleapis.com");
        assert_eq!(
            v.url("proj", "us-central1", "gemini-2.5-flash", false),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            v.url("proj", "global", "claude-sonnet-4-5@20250929", true),
            "https://aiplatform.googleapis.com/v1/projects/proj/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        let t = vertex("http://127.0.0.1:9/{location}/");
        assert_eq!(t.base_url("global"), "http://127.0.0.1:9/global");
        assert!(t.url("p", "europe-west4", "gemini-x", true).ends_with("/models/gemini-x:streamGenerateContent?alt=sse"));
    }
}
