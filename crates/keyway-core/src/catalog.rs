//! The model catalog: which provider endpoints serve each model slug, under which upstream id,
//! at what price (integer micro-units per million tokens). Shipped as `data/catalog.json`.

use crate::provider::ProviderSlug;
use serde::Deserialize;
use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    pub provider: ProviderSlug,
    /// The id the provider knows the model by.
    pub model_id: String,
    /// Price per million input tokens, micro-units.
    #[serde(rename = "input")]
    pub input_per_mtok_micros: u64,
    #[serde(rename = "output")]
    pub output_per_mtok_micros: u64,
    #[serde(rename = "cached_input", default)]
    pub cached_input_per_mtok_micros: Option<u64>,
    #[serde(rename = "per_request", default)]
    pub per_request_micros: u64,
    /// Bedrock: the region used when neither the request nor the credential names one.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Bedrock: the regions that offer the model; absent = not restricted (routing asks the
    /// region of each credential against it).
    #[serde(default)]
    pub regions: Option<Vec<String>>,
}

impl Endpoint {
    /// Whether the model is offered in `region` (always, when the catalog doesn't say).
    pub fn offered_in(&self, region: &str) -> bool {
        self.regions.as_ref().is_none_or(|rs| rs.iter().any(|r| r == region))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub context_length: u64,
    pub created: i64,
    #[serde(default)]
    pub input_modalities: Vec<String>,
    #[serde(default = "text_only")]
    pub output_modalities: Vec<String>,
    #[serde(default)]
    pub supported_parameters: Vec<String>,
    pub endpoints: Vec<Endpoint>,
}

fn text_only() -> Vec<String> {
    vec!["text".to_owned()]
}

impl Model {
    pub fn endpoint(&self, provider: ProviderSlug) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.provider == provider)
    }

    /// The cheapest endpoint's prices stand for the model (what `/v1/models` shows on top).
    pub fn headline(&self) -> Option<&Endpoint> {
        self.endpoints.iter().min_by_key(|e| e.input_per_mtok_micros + e.output_per_mtok_micros)
    }
}

#[derive(Debug, Deserialize)]
struct CatalogFile {
    models: Vec<Model>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("catalog lists model `{0}` twice")]
    Duplicate(String),
    #[error("the built-in catalog is not valid: {0}")]
    Builtin(String),
}

/// An immutable, cheaply cloned catalog indexed by slug.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Arc<Vec<Model>>,
    index: Arc<HashMap<String, usize>>,
}

/// The generated snapshot (`scripts/catalog/generate.py`), embedded in the binary.
pub const BUILTIN: &str = include_str!("../data/catalog.json");

/// Parsed on first use; every later [`Catalog::builtin`] is a reference-count bump.
static BUILTIN_PARSED: std::sync::OnceLock<Result<Catalog, String>> = std::sync::OnceLock::new();

impl Catalog {
    pub fn builtin() -> Result<Self, CatalogError> {
        BUILTIN_PARSED
            .get_or_init(|| Self::from_json(BUILTIN).map_err(|e| e.to_string()))
            .clone()
            .map_err(CatalogError::Builtin)
    }

    pub fn from_json(s: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = serde_json::from_str(s)?;
        Self::from_models(file.models)
    }

    pub fn from_models(models: Vec<Model>) -> Result<Self, CatalogError> {
        let mut index = HashMap::with_capacity(models.len());
        for (i, m) in models.iter().enumerate() {
            if index.insert(m.id.clone(), i).is_some() {
                return Err(CatalogError::Duplicate(m.id.clone()));
            }
        }
        Ok(Self { models: Arc::new(models), index: Arc::new(index) })
    }

    pub fn get(&self, slug: &str) -> Option<&Model> {
        self.index.get(slug).map(|&i| &self.models[i])
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// A model the catalog doesn't list can still be addressed as `provider/upstream-id`
    /// (e.g. `openai/gpt-5-preview`), priced at zero; the first path segment names the provider.
    pub fn resolve(&self, slug: &str) -> Option<std::borrow::Cow<'_, Model>> {
        if let Some(m) = self.get(slug) {
            return Some(std::borrow::Cow::Borrowed(m));
        }
        let (prefix, rest) = slug.split_once('/')?;
        let provider = ProviderSlug::parse_alias(prefix)?;
        if rest.is_empty() {
            return None;
        }
        Some(std::borrow::Cow::Owned(Model {
            id: slug.to_owned(),
            name: slug.to_owned(),
            context_length: 0,
            created: 0,
            input_modalities: vec![],
            output_modalities: text_only(),
            supported_parameters: vec![],
            endpoints: vec![Endpoint {
                provider,
                model_id: rest.to_owned(),
                input_per_mtok_micros: 0,
                output_per_mtok_micros: 0,
                cached_input_per_mtok_micros: None,
                per_request_micros: 0,
                default_region: None,
                regions: None,
            }],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_loads() {
        let c = Catalog::builtin().unwrap();
        let m = c.get("openai/gpt-4o-mini").unwrap();
        assert_eq!(m.endpoint(ProviderSlug::OpenAi).unwrap().model_id, "gpt-4o-mini");
        assert!(c.get("anthropic/claude-sonnet-4.5").unwrap().endpoint(ProviderSlug::AmazonBedrock).is_some());
    }

    #[test]
    fn unlisted_models_resolve_by_provider_prefix() {
        let c = Catalog::builtin().unwrap();
        let m = c.resolve("openai/gpt-9").unwrap();
        assert_eq!(m.endpoints[0].provider, ProviderSlug::OpenAi);
        assert_eq!(m.endpoints[0].model_id, "gpt-9");
        assert!(c.resolve("nobody/x").is_none());
        assert!(c.resolve("openai/").is_none());
    }

    #[test]
    fn generated_catalog_is_large_and_has_the_popular_models() {
        let c = Catalog::builtin().unwrap();
        let embeddings = c.models().iter().filter(|m| m.output_modalities.iter().any(|o| o == "embeddings")).count();
        assert!(c.models().len() >= 300, "{} models", c.models().len());
        assert!(embeddings >= 10, "{embeddings} embedding models");
        let want: &[(&str, &[ProviderSlug])] = &[
            ("openai/gpt-4.1", &[ProviderSlug::OpenAi, ProviderSlug::Azure]),
            ("openai/o3-mini", &[ProviderSlug::OpenAi, ProviderSlug::Azure]),
            // Claude on Anthropic's own API too (the Vercel BYOK page's sample calls anthropic/claude-sonnet-4).
            ("anthropic/claude-3.5-haiku", &[ProviderSlug::Anthropic, ProviderSlug::AmazonBedrock, ProviderSlug::GoogleVertex]),
            ("anthropic/claude-sonnet-4", &[ProviderSlug::Anthropic, ProviderSlug::AmazonBedrock]),
            ("anthropic/claude-sonnet-4.5", &[ProviderSlug::Anthropic, ProviderSlug::AmazonBedrock, ProviderSlug::GoogleVertex]),
            ("google/gemini-2.5-pro", &[ProviderSlug::GoogleAiStudio, ProviderSlug::GoogleVertex]),
            ("mistralai/mistral-large", &[ProviderSlug::Mistral]),
            ("meta-llama/llama-3.3-70b-instruct", &[ProviderSlug::Groq, ProviderSlug::DeepInfra, ProviderSlug::Together, ProviderSlug::AmazonBedrock]),
            ("deepseek/deepseek-chat", &[ProviderSlug::DeepSeek]),
            ("x-ai/grok-3-mini", &[ProviderSlug::XAi]),
            ("z-ai/glm-4.6", &[ProviderSlug::ZAi]),
            ("openai/text-embedding-3-small", &[ProviderSlug::OpenAi, ProviderSlug::Azure]),
        ];
        for (slug, providers) in want {
            let m = c.get(slug).unwrap_or_else(|| panic!("{slug} missing"));
            for p in *providers {
                let e = m.endpoint(*p).unwrap_or_else(|| panic!("{slug} has no {p} endpoint"));
                assert!(!e.model_id.is_empty() && e.input_per_mtok_micros > 0, "{slug} at {p}: {e:?}");
            }
            assert!(m.context_length > 0, "{slug}");
        }
        // The provider's own id, and cached-input prices where the provider has them.
        let haiku = c.get("anthropic/claude-3.5-haiku").unwrap();
        assert_eq!(haiku.endpoint(ProviderSlug::AmazonBedrock).unwrap().model_id, "anthropic.claude-3-5-haiku-20241022-v1:0");
        assert_eq!(c.get("openai/gpt-4.1").unwrap().endpoint(ProviderSlug::OpenAi).unwrap().cached_input_per_mtok_micros, Some(500_000));
        // Every slug is `author/model` and every endpoint's provider has an adapter-facing id.
        for m in c.models() {
            assert!(m.id.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()), "{}", m.id);
            assert!(!m.endpoints.is_empty(), "{}", m.id);
        }
    }

    #[test]
    fn the_catalog_names_its_source() {
        let v: serde_json::Value = serde_json::from_str(BUILTIN).unwrap();
        let data = v["source"]["data"].as_str().unwrap_or_default();
        assert!(data.contains("LiteLLM"), "{data}");
        assert!(v["source"]["package"].as_str().unwrap_or_default().starts_with("litellm=="));
    }

    #[test]
    fn duplicates_are_refused() {
        let r = Catalog::from_json(r#"{"models":[{"id":"a/b","name":"x","context_length":1,"created":0,"endpoints":[]},{"id":"a/b","name":"x","context_length":1,"created":0,"endpoints":[]}]}"#);
        assert!(matches!(r, Err(CatalogError::Duplicate(_))));
    }
}
