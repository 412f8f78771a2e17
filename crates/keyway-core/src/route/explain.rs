//! Why a credential or a provider is not in a plan: the planner's exclusions, typed.
//!
//! [`explain`] runs the one planner ([`super::plan`]) with its exclusion log switched on and
//! returns, beside the plan, every credential or provider it left out with the rule that did
//! it. The log is built only when asked for: [`super::plan`] passes no log, so the request path
//! pays one branch per left-out credential and allocates nothing for it. Reasons are an enum;
//! each renders to a stable `code` (for clients and tests) and a human `message`.

use super::error::usd;
use super::source::CredentialSource;
use crate::provider::ProviderSlug;
use std::time::SystemTime;

/// The rule that left a credential (or a whole provider) out of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExclusionReason {
    /// `provider.only` (or `providerOptions.gateway.only`) does not name the provider.
    NotInOnly,
    /// `provider.ignore` names the provider.
    Ignored,
    /// The provider's price is over `provider.max_price` (its prices, micro-USD per million
    /// tokens, and per request).
    OverMaxPrice { prompt_micros: u64, completion_micros: u64, request_micros: u64 },
    /// `provider.allow_fallbacks: false` and an earlier provider (or one named in `order`) serves.
    NoFallbacks,
    /// The stored key is disabled.
    Disabled,
    /// The key's account is out of money or quota; it is left out until `until` (then rechecked).
    QuotaExhausted { until: SystemTime },
    /// The key is assigned to other Keyway API keys (`allowed_api_key_hashes`).
    NotAssignedToKey,
    /// The key is limited to other users (`allowed_user_ids`).
    NotAssignedToUser,
    /// The key is limited to other models (`allowed_models`, or an Azure deployment list without it).
    ModelNotAllowed,
    /// Bedrock: no key set for the request's region, or the model is not offered there.
    NoRegion,
    /// `provider.zdr` is on and the key is not declared zero-data-retention.
    NotZdr,
    /// `provider.zdr` or `data_collection: "deny"`, and the operator did not mark the system
    /// credential zero-data-retention.
    SystemNotZdr,
    /// An always-use or byok-only key of the workspace pins the provider: no system credential.
    PinnedByByok,
    /// The request brought its own keys and the operator adds no system credential after them.
    NoSystemAfterRequestKeys,
    /// The request brought its own keys (`providerOptions.gateway.byok`): stored keys step aside.
    ReplacedByRequestKeys,
}

impl ExclusionReason {
    /// A stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            ExclusionReason::NotInOnly => "not_in_only",
            ExclusionReason::Ignored => "ignored",
            ExclusionReason::OverMaxPrice { .. } => "over_max_price",
            ExclusionReason::NoFallbacks => "no_fallbacks",
            ExclusionReason::Disabled => "disabled",
            ExclusionReason::QuotaExhausted { .. } => "quota_exhausted",
            ExclusionReason::NotAssignedToKey => "not_assigned_to_key",
            ExclusionReason::NotAssignedToUser => "not_assigned_to_user",
            ExclusionReason::ModelNotAllowed => "model_not_allowed",
            ExclusionReason::NoRegion => "no_region",
            ExclusionReason::NotZdr => "not_zdr",
            ExclusionReason::SystemNotZdr => "system_not_zdr",
            ExclusionReason::PinnedByByok => "pinned_by_byok",
            ExclusionReason::NoSystemAfterRequestKeys => "no_system_after_request_keys",
            ExclusionReason::ReplacedByRequestKeys => "replaced_by_request_keys",
        }
    }

    /// What a person reads; says what to change where something can be changed.
    pub fn message(&self) -> String {
        match self {
            ExclusionReason::NotInOnly => "provider.only does not name this provider".to_owned(),
            ExclusionReason::Ignored => "provider.ignore names this provider".to_owned(),
            ExclusionReason::OverMaxPrice { prompt_micros, completion_micros, request_micros } => format!(
                "over provider.max_price (prompt {}/M, completion {}/M, request {})",
                usd(*prompt_micros),
                usd(*completion_micros),
                usd(*request_micros)
            ),
            ExclusionReason::NoFallbacks => {
                "provider.allow_fallbacks is false and an earlier provider serves the request".to_owned()
            }
            ExclusionReason::Disabled => "the key is disabled".to_owned(),
            ExclusionReason::QuotaExhausted { .. } => {
                "the key's account is out of quota or credit; it is tried again after `until`, or at once when an owner re-enables it"
                    .to_owned()
            }
            ExclusionReason::NotAssignedToKey => "the key is assigned to other API keys".to_owned(),
            ExclusionReason::NotAssignedToUser => "the key is limited to other users".to_owned(),
            ExclusionReason::ModelNotAllowed => "the key is limited to other models".to_owned(),
            ExclusionReason::NoRegion => {
                "no key set for the request's region, or the model is not offered in it".to_owned()
            }
            ExclusionReason::NotZdr => "provider.zdr is on and the key is not declared zero-data-retention".to_owned(),
            ExclusionReason::SystemNotZdr => {
                "the operator did not mark this system credential zero-data-retention (provider.zdr / data_collection: deny)"
                    .to_owned()
            }
            ExclusionReason::PinnedByByok => {
                "an always-use or byok-only key pins this provider to the workspace's own keys".to_owned()
            }
            ExclusionReason::NoSystemAfterRequestKeys => {
                "the operator adds no system credential after request-scoped keys".to_owned()
            }
            ExclusionReason::ReplacedByRequestKeys => {
                "the request brought its own keys (providerOptions.gateway.byok), which replace stored ones".to_owned()
            }
        }
    }
}

/// One credential (or, with `credential: None`, one whole provider) left out of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exclusion<'a> {
    /// The model slug being planned (a `models` fallback may differ from the body's `model`).
    pub model: &'a str,
    pub provider: ProviderSlug,
    pub credential: Option<CredentialSource<'a>>,
    pub reason: ExclusionReason,
}

/// The exclusion log the planner writes to; `None` when nobody asked (the request path).
pub(crate) struct Log<'a>(pub(crate) Option<Vec<Exclusion<'a>>>);

impl<'a> Log<'a> {
    /// Records an exclusion; the closure runs only when logging is on.
    #[inline]
    pub(crate) fn note(&mut self, f: impl FnOnce() -> Exclusion<'a>) {
        if let Some(log) = self.0.as_mut() {
            log.push(f());
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }
}
