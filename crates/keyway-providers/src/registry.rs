//! Builds every adapter once, with the configured base URLs and one shared, pooled HTTP client.

use crate::client::{HttpClient, Transport};
use crate::openai_compat::OpenAiCompat;
use crate::provider::Provider;
pub use crate::timeouts::Timeouts;
use keyway_core::{Protocol, ProviderSlug};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct ProvidersConfig {
    /// Overrides of [`ProviderSlug::default_base_url`] (how tests reach the fakes).
    pub base_urls: HashMap<ProviderSlug, String>,
    /// Overrides of Google's OAuth token endpoint host check and AI Studio etc. live in the gateway.
    pub timeouts: Timeouts,
    /// How upstream requests are sent; `None`: [`Transport::from_env`].
    pub transport: Option<Transport>,
    /// Root certificates trusted for upstream TLS beside the Mozilla roots.
    pub extra_roots: Vec<crate::client::CertificateDer<'static>>,
}

impl ProvidersConfig {
    pub fn base_url(&self, p: ProviderSlug) -> String {
        self.base_urls.get(&p).cloned().unwrap_or_else(|| p.default_base_url().to_owned()).trim_end_matches('/').to_owned()
    }
}

pub use crate::client::BuildError;

/// All adapters, by provider slug.
pub struct Providers {
    adapters: HashMap<ProviderSlug, Arc<dyn Provider>>,
    http: HttpClient,
    config: ProvidersConfig,
}

impl Providers {
    pub fn new(config: ProvidersConfig) -> Result<Self, BuildError> {
        let http = HttpClient::new(&config.timeouts, config.transport.unwrap_or_else(Transport::from_env), &config.extra_roots)?;
        let mut adapters: HashMap<ProviderSlug, Arc<dyn Provider>> = HashMap::new();
        for p in ProviderSlug::ALL {
            let base = config.base_url(p);
            let t = config.timeouts;
            let adapter: Option<Arc<dyn Provider>> = match p.protocol() {
                Protocol::OpenAiCompat => Some(Arc::new(OpenAiCompat::new(p, base, http.clone(), t))),
                Protocol::Anthropic => Some(Arc::new(crate::anthropic::Anthropic::new(base, http.clone(), t))),
                // For Azure the base URL is the `{resource}` template.
                Protocol::Azure => Some(Arc::new(crate::azure::Azure::new(base, http.clone(), t))),
                Protocol::Bedrock => Some(Arc::new(crate::bedrock::Bedrock::new(base, http.clone(), t))),
                Protocol::Vertex => Some(Arc::new(crate::vertex::Vertex::new(base, http.clone(), t))),
                Protocol::Gemini => Some(Arc::new(crate::gemini::GoogleAiStudio::new(base, http.clone(), t))),
            };
            if let Some(a) = adapter {
                adapters.insert(p, a);
            }
        }
        Ok(Self { adapters, http, config })
    }

    pub fn get(&self, p: ProviderSlug) -> Option<&Arc<dyn Provider>> {
        self.adapters.get(&p)
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub fn config(&self) -> &ProvidersConfig {
        &self.config
    }
}
