//! Azure OpenAI: OpenAI's body and answers, `api-key` auth, and a URL per deployment:
//! `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`.
//!
//! The deployment comes from the credential: a `Deployments` list names one per gateway model
//! slug (with its own endpoint), a `Resource` credential names the resource (filled into the
//! configured `https://{resource}.openai.azure.com` template) and maps slugs to deployments.

use crate::error::ProviderError;
use crate::http;
use crate::openai_compat::{read_chat, read_embeddings, UpstreamBody};
use crate::timeouts::Timeouts;
use crate::types::{Call, ChatRequest, ChatResponse, EmbeddingsResponse, RequestPreview};
use crate::provider::Provider;
use async_trait::async_trait;
use keyway_core::credential::AzureCredential;
use keyway_core::Credential;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};

/// The GA API version Keyway speaks when the stored endpoint doesn't name one.
pub const API_VERSION: &str = "2024-10-21";

/// Deployment names are path segments: escape anything that isn't plainly safe.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Chat,
    Embeddings,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Chat => "/chat/completions",
            Op::Embeddings => "/embeddings",
        }
    }
}

pub struct Azure {
    /// The `{resource}` base-URL template.
    base_template: String,
    http: crate::client::HttpClient,
    timeouts: Timeouts,
}

impl Azure {
    pub fn new(base_template: String, http: crate::client::HttpClient, timeouts: Timeouts) -> Self {
        Self { base_template, http, timeouts }
    }

    /// The upstream URL and key for this call.
    fn target<'c>(&self, call: &Call<'c>, op: Op) -> Result<(String, &'c SecretString), ProviderError> {
        let Credential::Azure(cred) = call.credential else {
            return Err(ProviderError::Unsupported("azure takes an Azure credential (deployments or resource)".into()));
        };
        match cred {
            AzureCredential::Deployments(list) => {
                let d = list.iter().find(|d| d.model_slug == call.gateway_model).ok_or_else(|| {
                    ProviderError::Unsupported(format!("this Azure credential has no deployment for `{}`", call.gateway_model))
                })?;
                Ok((deployment_url(&d.endpoint_url, &d.model_id, op)?, &d.api_key))
            }
            AzureCredential::Resource { api_key, resource_name, model_mappings } => {
                let deployment = model_mappings
                    .iter()
                    .find(|m| m.gateway_model_slug == call.gateway_model)
                    .map_or(call.model, |m| m.custom_model_id.as_str());
                let base = self.base_template.replace("{resource}", resource_name);
                Ok((format!("{}{}", base.trim_end_matches('/'), deployment_path(deployment, op)), api_key))
            }
        }
    }

    fn build(&self, call: &Call<'_>, op: Op, req: &ChatRequest) -> Result<reqwest::Request, ProviderError> {
        let (url, key) = self.target(call, op)?;
        // Azure routes by deployment; `model` is ignored there but kept for logs on its side.
        let body = UpstreamBody { body: &req.body, model: call.model, stream_usage: op == Op::Chat && req.stream() };
        let body = serde_json::to_vec(&body).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        self.http
            .post(url)
            .header("api-key", key.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("could not build the Azure request: {}", e.without_url())))
    }
}

/// What Test key sends to with an Azure credential, as (upstream model, gateway model slug): the
/// deployment or mapping the caller names (by slug or deployment id), else the credential's
/// first one, else `fallback` as the deployment's name. The slug is what [`Azure`] looks the
/// deployment up by, so a test reaches a deployment the credential really has.
pub fn test_target(cred: &AzureCredential, requested: Option<&str>, fallback: &str) -> (String, String) {
    let named = |slug: &str, id: &str| requested.is_none_or(|r| r == slug || r == id);
    let found = match cred {
        AzureCredential::Deployments(list) => {
            list.iter().find(|d| named(&d.model_slug, &d.model_id)).map(|d| (d.model_id.clone(), d.model_slug.clone()))
        }
        AzureCredential::Resource { model_mappings, .. } => model_mappings
            .iter()
            .find(|m| named(&m.gateway_model_slug, &m.custom_model_id))
            .map(|m| (m.custom_model_id.clone(), m.gateway_model_slug.clone())),
    };
    found.unwrap_or_else(|| {
        let slug = requested.unwrap_or(fallback);
        // `openai/gpt-4o` names the model `gpt-4o`; a bare name is the deployment itself.
        let model = slug.rsplit('/').next().unwrap_or(slug);
        let slug = if slug.contains('/') { slug.to_owned() } else { format!("azure/{slug}") };
        (model.to_owned(), slug)
    })
}

fn deployment_path(deployment: &str, op: Op) -> String {
    format!("/openai/deployments/{}{}?api-version={API_VERSION}", utf8_percent_encode(deployment, SEGMENT), op.path())
}

/// A stored `endpoint_url` may be the resource base (`https://x.openai.azure.com`), a deployment
/// URL (`.../openai/deployments/d`) or the full chat-completions URL copied from Azure's portal.
fn deployment_url(endpoint: &str, model_id: &str, op: Op) -> Result<String, ProviderError> {
    let mut u = url::Url::parse(endpoint)
        .map_err(|_| ProviderError::Unsupported("the Azure deployment's endpoint_url is not a URL".into()))?;
    let path = u.path().trim_end_matches('/').to_owned();
    let new_path = if let Some(prefix) = path.strip_suffix("/chat/completions").or_else(|| path.strip_suffix("/embeddings")) {
        format!("{prefix}{}", op.path())
    } else if path.contains("/openai/deployments/") || path.ends_with("/openai/v1") || path.ends_with("/models") {
        format!("{path}{}", op.path())
    } else {
        return Ok(format!("{}{}", endpoint.split('?').next().unwrap_or(endpoint).trim_end_matches('/'), deployment_path(model_id, op)));
    };
    u.set_path(&new_path);
    // The v1 API takes no api-version; the deployment APIs require one.
    let needs_version = !new_path.contains("/openai/v1/") && !u.query_pairs().any(|(k, _)| k == "api-version");
    if needs_version {
        u.query_pairs_mut().append_pair("api-version", API_VERSION);
    }
    Ok(u.to_string())
}

#[async_trait]
impl Provider for Azure {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let request = self.build(call, Op::Chat, req)?;
        let resp = http::send(&self.http, request, &self.timeouts).await?;
        read_chat(resp, req.stream(), &self.timeouts).await
    }

    async fn embeddings(&self, call: &Call<'_>, req: &ChatRequest) -> Result<EmbeddingsResponse, ProviderError> {
        let request = self.build(call, Op::Embeddings, req)?;
        let resp = http::send(&self.http, request, &self.timeouts).await?;
        read_embeddings(resp, &self.timeouts).await
    }

    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError> {
        Ok(RequestPreview::from_request(&self.build(call, Op::Chat, req)?))
    }

    fn test_model(&self) -> &str {
        "gpt-4o-mini"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_target_picks_a_deployment_the_credential_has() {
        let deps = Credential::parse(
            keyway_core::ProviderSlug::Azure,
            &serde_json::json!([
                {"model_slug": "openai/gpt-4o-mini", "endpoint_url": "https://x.openai.azure.com", "api_key": "k", "model_id": "mini-dep"},
                {"model_slug": "openai/gpt-4o", "endpoint_url": "https://x.openai.azure.com", "api_key": "k", "model_id": "big-dep"}
            ]),
        );
        let Ok(Credential::Azure(deps)) = deps else { panic!("parses") };
        let t = |c: &AzureCredential, r: Option<&str>| test_target(c, r, "gpt-4o-mini");
        assert_eq!(t(&deps, None), ("mini-dep".into(), "openai/gpt-4o-mini".into()));
        assert_eq!(t(&deps, Some("openai/gpt-4o")), ("big-dep".into(), "openai/gpt-4o".into()));
        assert_eq!(t(&deps, Some("big-dep")), ("big-dep".into(), "openai/gpt-4o".into()));
        // A model it has no deployment for stays as asked (and the call says so).
        assert_eq!(t(&deps, Some("openai/o3")), ("o3".into(), "openai/o3".into()));

        let res = Credential::parse(
            keyway_core::ProviderSlug::Azure,
            &serde_json::json!({"api_key": "k", "resource_name": "r", "model_mappings": {"openai/gpt-4o": "prod-4o"}}),
        );
        let Ok(Credential::Azure(res)) = res else { panic!("parses") };
        assert_eq!(t(&res, None), ("prod-4o".into(), "openai/gpt-4o".into()));
        let bare = Credential::parse(keyway_core::ProviderSlug::Azure, &serde_json::json!({"api_key": "k", "resource_name": "r"}));
        let Ok(Credential::Azure(bare)) = bare else { panic!("parses") };
        assert_eq!(t(&bare, None), ("gpt-4o-mini".into(), "azure/gpt-4o-mini".into()));
        assert_eq!(t(&bare, Some("my-dep")), ("my-dep".into(), "azure/my-dep".into()));
    }

    #[test]
    fn endpoint_forms() {
        let v = format!("api-version={API_VERSION}");
        assert_eq!(
            deployment_url("https://x.openai.azure.com", "gpt4o", Op::Chat).ok(),
            Some(format!("https://x.openai.azure.com/openai/deployments/gpt4o/chat/completions?{v}"))
        );
        assert_eq!(
            deployment_url("https://x.openai.azure.com/", "my dep", Op::Embeddings).ok(),
            Some(format!("https://x.openai.azure.com/openai/deployments/my%20dep/embeddings?{v}"))
        );
        let full = "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2025-01-01-preview";
        assert_eq!(deployment_url(full, "ignored", Op::Chat).ok().as_deref(), Some(full));
        assert_eq!(
            deployment_url(full, "ignored", Op::Embeddings).ok().as_deref(),
            Some("https://x.openai.azure.com/openai/deployments/d/embeddings?api-version=2025-01-01-preview")
        );
        assert_eq!(
            deployment_url("https://x.openai.azure.com/openai/deployments/d", "m", Op::Chat).ok(),
            Some(format!("https://x.openai.azure.com/openai/deployments/d/chat/completions?{v}"))
        );
        assert_eq!(
            deployment_url("https://x.openai.azure.com/openai/v1/chat/completions", "m", Op::Chat).ok().as_deref(),
            Some("https://x.openai.azure.com/openai/v1/chat/completions")
        );
        assert!(deployment_url("not a url", "m", Op::Chat).is_err());
    }
}
