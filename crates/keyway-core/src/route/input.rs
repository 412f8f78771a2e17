//! What the planner is given: credential metadata (never secrets), observed endpoint stats, and
//! the request's identity. Built from the gateway's caches; cheap to borrow per request.

use super::health::{HealthSource, NoHealth};
use super::options::RoutingOptions;
use crate::catalog::Catalog;
use crate::credential::{AzureCredential, AzureDeployment, BedrockCredential, BedrockScope, Credential, ModelMapping};
use crate::provider::ProviderSlug;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A stored credential's id (the BYOK record's id). Cloning is a reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(Arc<str>);

impl CredentialId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for CredentialId {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for CredentialId {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored BYOK credential as the planner sees it. Empty allow-lists mean "all".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialMeta {
    pub id: CredentialId,
    pub provider: ProviderSlug,
    pub disabled: bool,
    /// In the fallback section: tried after the system credentials.
    pub is_fallback: bool,
    /// OpenRouter's `is_required`: a prioritized key with it pins its provider (no system credential).
    pub always_use: bool,
    /// No system credential for this provider at all.
    pub is_byok_only: bool,
    pub sort_order: i64,
    pub allowed_models: Vec<String>,
    pub allowed_api_key_hashes: Vec<String>,
    pub allowed_user_ids: Vec<String>,
    pub model_mappings: Vec<ModelMapping>,
    pub declared_zdr: bool,
    /// An Azure deployment list: slug -> deployment model id. The credential serves only these slugs.
    pub azure_deployments: Option<Vec<ModelMapping>>,
    /// Bedrock: the regions the credential's key sets are for (`None`: unknown, any region).
    pub bedrock: Option<BedrockScope>,
}

impl CredentialMeta {
    pub fn new(id: impl Into<CredentialId>, provider: ProviderSlug) -> Self {
        Self {
            id: id.into(),
            provider,
            disabled: false,
            is_fallback: false,
            always_use: false,
            is_byok_only: false,
            sort_order: 0,
            allowed_models: Vec::new(),
            allowed_api_key_hashes: Vec::new(),
            allowed_user_ids: Vec::new(),
            model_mappings: Vec::new(),
            declared_zdr: false,
            azure_deployments: None,
            bedrock: None,
        }
    }

    /// Takes what routing needs from the decrypted credential's shape: an Azure deployment list,
    /// or an Azure resource's own model mappings (after the record's, which win).
    #[must_use]
    pub fn with_credential(mut self, credential: &Credential) -> Self {
        match credential {
            Credential::Azure(AzureCredential::Deployments(ds)) => {
                self.azure_deployments = Some(ds.iter().map(deployment_mapping).collect());
            }
            Credential::Azure(AzureCredential::Resource { model_mappings, .. }) => {
                self.model_mappings.extend(model_mappings.iter().cloned());
            }
            Credential::Bedrock(b) => self.bedrock = Some(BedrockScope::of(b)),
            _ => {}
        }
        self
    }
}

fn deployment_mapping(d: &AzureDeployment) -> ModelMapping {
    ModelMapping { gateway_model_slug: d.model_slug.clone(), custom_model_id: d.model_id.clone() }
}

/// A credential sent with the request (`providerOptions.gateway.byok`, `x-keyway-byok`), after
/// the gateway validated it. Borrows from the parsed [`Credential`].
#[derive(Debug, Clone, Copy)]
pub struct RequestScopedCredential<'a> {
    pub provider: ProviderSlug,
    pub model_mappings: &'a [ModelMapping],
    /// An Azure deployment list: serves only the slugs it lists.
    pub azure_deployments: Option<&'a [AzureDeployment]>,
    /// Bedrock: the credential, for the regions of its key sets.
    pub bedrock: Option<&'a BedrockCredential>,
}

impl<'a> RequestScopedCredential<'a> {
    pub fn new(provider: ProviderSlug, credential: &'a Credential) -> Self {
        let (model_mappings, azure_deployments): (&'a [ModelMapping], _) = match credential {
            Credential::Azure(AzureCredential::Resource { model_mappings, .. }) => (model_mappings, None),
            Credential::Azure(AzureCredential::Deployments(ds)) => (&[], Some(ds.as_slice())),
            _ => (&[], None),
        };
        let bedrock = match credential {
            Credential::Bedrock(b) => Some(b),
            _ => None,
        };
        Self { provider, model_mappings, azure_deployments, bedrock }
    }

    /// A credential without mappings (an API key).
    pub fn plain(provider: ProviderSlug) -> Self {
        Self { provider, model_mappings: &[], azure_deployments: None, bedrock: None }
    }
}

/// One of the operator's own credentials (`[[system_credentials]]`), by its index in config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemCredential {
    pub provider: ProviderSlug,
    /// The operator vouches that this account has zero data retention.
    pub zdr: bool,
    pub model_mappings: Vec<ModelMapping>,
    /// Bedrock: the regions of the operator's key sets (`None`: any region).
    pub bedrock: Option<BedrockScope>,
}

impl SystemCredential {
    pub fn new(provider: ProviderSlug) -> Self {
        Self { provider, zdr: false, model_mappings: Vec::new(), bedrock: None }
    }
}

/// What the gateway has observed of one endpoint (model x provider) over its recent window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EndpointStats {
    /// Time to first token, milliseconds.
    pub latency_ms: Option<f64>,
    /// Output tokens per second.
    pub throughput_tps: Option<f64>,
}

/// Where the planner reads observed stats from (for `sort: latency | throughput`).
pub trait StatsSource {
    fn stats(&self, model: &str, provider: ProviderSlug) -> Option<EndpointStats>;
}

/// No observations: every endpoint is "unknown" and keeps its place.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStats;

impl StatsSource for NoStats {
    fn stats(&self, _: &str, _: ProviderSlug) -> Option<EndpointStats> {
        None
    }
}

/// A plain map of stats, for tests and for a gateway snapshot of its moving window.
#[derive(Debug, Clone, Default)]
pub struct StatsTable {
    by_model: HashMap<String, HashMap<ProviderSlug, EndpointStats>>,
}

impl StatsTable {
    pub fn insert(&mut self, model: &str, provider: ProviderSlug, stats: EndpointStats) {
        self.by_model.entry(model.to_owned()).or_default().insert(provider, stats);
    }
}

impl StatsSource for StatsTable {
    fn stats(&self, model: &str, provider: ProviderSlug) -> Option<EndpointStats> {
        self.by_model.get(model)?.get(&provider).copied()
    }
}

/// Which comes first when the team's keys and the provider order disagree
/// (`routing.precedence`; a request overrides it with `provider.byok_first`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precedence {
    /// Every provider's BYOK keys, then every system key, then fallback keys (the default).
    #[default]
    ByokFirst,
    /// Provider by provider in `provider.order` (then sort) order; within each, the team's keys
    /// before the system key, then its fallback keys.
    ProviderOrder,
}

impl Precedence {
    /// `byok_first` or `provider_order`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "byok_first" => Some(Precedence::ByokFirst),
            "provider_order" => Some(Precedence::ProviderOrder),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precedence::ByokFirst => "byok_first",
            Precedence::ProviderOrder => "provider_order",
        }
    }
}

/// Everything one plan depends on. `'a` is what the plan's attempts borrow (model slugs, catalog,
/// credential metadata); `'r` is only read while planning (health, stats, the caller's identity),
/// so e.g. a lock guard on the health table can be dropped right after [`super::plan`] returns.
///
/// Start from [`PlanInput::new`] and set the fields you have:
/// `PlanInput { stored: &creds, api_key_hash: Some(hash), ..PlanInput::new(model, &opts, &catalog, now) }`.
#[derive(Clone, Copy)]
pub struct PlanInput<'a, 'r> {
    /// The body's `model` (if the body has none, the first of `options.models`).
    pub model: &'a str,
    pub options: &'a RoutingOptions,
    pub catalog: &'a Catalog,
    /// The workspace's stored BYOK credentials (the caller passes only the workspace's own).
    pub stored: &'a [CredentialMeta],
    /// Request-scoped credentials; when non-empty, `stored` is ignored.
    pub request_scoped: &'a [RequestScopedCredential<'a>],
    pub system: &'a [SystemCredential],
    /// Operator switch: may system credentials follow request-scoped ones? (default true)
    pub system_after_request_scoped: bool,
    /// Hash of the calling Keyway key, for `allowed_api_key_hashes`.
    pub api_key_hash: Option<&'r str>,
    /// The request's `user`, for `allowed_user_ids`.
    pub user: Option<&'r str>,
    /// Catalog parameter names the body uses (see [`super::requested_parameters`]).
    pub requested_parameters: &'r [&'r str],
    pub health: &'r dyn HealthSource,
    pub stats: &'r dyn StatsSource,
    /// The workspace's precedence (the request's `provider.byok_first` wins over it).
    pub precedence: Precedence,
    pub now: SystemTime,
}

impl<'a> PlanInput<'a, '_> {
    pub fn new(model: &'a str, options: &'a RoutingOptions, catalog: &'a Catalog, now: SystemTime) -> Self {
        Self {
            model,
            options,
            catalog,
            stored: &[],
            request_scoped: &[],
            system: &[],
            system_after_request_scoped: true,
            api_key_hash: None,
            user: None,
            requested_parameters: &[],
            health: &NoHealth,
            stats: &NoStats,
            precedence: Precedence::ByokFirst,
            now,
        }
    }
}

impl fmt::Debug for PlanInput<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanInput")
            .field("model", &self.model)
            .field("options", self.options)
            .field("stored", &self.stored.len())
            .field("request_scoped", &self.request_scoped.len())
            .field("system", &self.system.len())
            .field("api_key_hash", &self.api_key_hash)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}
