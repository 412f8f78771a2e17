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
    /// Bedrock: the region used when the request names none.
    #[serde(default)]
    pub default_region: Option<String>,
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
}

/// An immutable, cheaply cloned catalog indexed by slug.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Arc<Vec<Model>>,
    index: Arc<HashMap<String, usize>>,
}

pub const BUILTIN: &str = include_str!("../data/catalog.json");

impl Catalog {
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::from_json(BUILTIN)
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
    fn duplicates_are_refused() {
        let r = Catalog::from_json(r#"{"models":[{"id":"a/b","name":"x","context_length":1,"created":0,"endpoints":[]},{"id":"a/b","name":"x","context_length":1,"created":0,"endpoints":[]}]}"#);
        assert!(matches!(r, Err(CatalogError::Duplicate(_))));
    }
}
