//! Route planning: which (provider endpoint x credential) attempts a request makes, in which order.
//!
//! The gateway calls [`RoutingOptions::extract`] on the request body (removing the routing fields
//! so they never reach an upstream), gathers the credential metadata it has cached, and calls
//! [`plan`]. The result is a [`RoutePlan`]: an ordered list of [`Attempt`]s that the gateway's
//! attempt loop walks until one succeeds. After each attempt the loop feeds the outcome to
//! [`HealthTable::record`], which the next plan reads.
//!
//! Everything here is pure: no I/O, no clock reads (`now` is an argument), so every rule is a
//! table test in `route/tests/`. The rules, with examples, are in `docs/routing.md`.
//!
//! ```
//! use keyway_core::catalog::Catalog;
//! use keyway_core::route::{plan, CredentialMeta, PlanInput, RoutingOptions, SystemCredential};
//! use keyway_core::ProviderSlug;
//!
//! let catalog = Catalog::builtin().unwrap();
//! let mut body = serde_json::json!({"model": "openai/gpt-4o-mini", "messages": [],
//!     "provider": {"order": ["azure"]}});
//! let options = RoutingOptions::extract(body.as_object_mut().unwrap()).unwrap();
//! assert!(body.get("provider").is_none()); // never forwarded upstream
//! let stored = [CredentialMeta::new("cred-1", ProviderSlug::OpenAi)];
//! let system = [SystemCredential::new(ProviderSlug::Azure)];
//! let now = std::time::SystemTime::now();
//! let input = PlanInput { stored: &stored, system: &system,
//!     ..PlanInput::new("openai/gpt-4o-mini", &options, &catalog, now) };
//! let route = plan(&input).unwrap();
//! // The BYOK key comes first even though `order` puts azure first; then azure's system key.
//! assert_eq!(route.explain_compact(), ["openai:byok:cred-1", "azure:system#0"]);
//! ```

mod error;
mod health;
mod input;
mod options;
mod plan;
mod price;

#[cfg(test)]
mod tests;

pub use error::RouteError;
pub use health::{
    CredentialHealth, FailureKind, HealthKey, HealthPolicy, HealthSource, HealthTable, NoHealth,
    Outcome,
};
pub use input::{
    CredentialId, CredentialMeta, EndpointStats, NoStats, PlanInput, RequestScopedCredential,
    StatsSource, StatsTable, SystemCredential,
};
pub use options::{
    requested_parameters, requested_parameters_of, DataCollection, RequestByok, RoutingOptions,
    SortBy,
};
pub use price::MaxPrice;
pub use plan::{plan, Attempt, CredentialSource, RoutePlan, Section, SkippedModel};
