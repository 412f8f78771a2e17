//! The credential an attempt uses (or an exclusion names), by its place in the planner's input.

use super::health::HealthKey;
use super::input::CredentialId;
use crate::provider::ProviderSlug;
use std::fmt;

/// The credential an attempt uses. Indexes point into the slices of [`super::PlanInput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource<'a> {
    Byok { id: &'a CredentialId, index: usize },
    RequestScoped { provider: ProviderSlug, index: usize },
    System { index: usize },
}

impl<'a> CredentialSource<'a> {
    /// For `x-keyway-credential`: the stored id, `request` or `system`.
    pub fn header_value(&self) -> &'a str {
        match self {
            CredentialSource::Byok { id, .. } => id.as_str(),
            CredentialSource::RequestScoped { .. } => "request",
            CredentialSource::System { .. } => "system",
        }
    }

    /// The caller's own key (stored or request-scoped): billed as BYOK, `x-keyway-byok: true`.
    pub fn is_byok(&self) -> bool {
        !matches!(self, CredentialSource::System { .. })
    }

    /// Where to record the attempt's outcome; request-scoped keys have no lasting health.
    pub fn health_key(&self) -> Option<HealthKey<'a>> {
        match self {
            CredentialSource::Byok { id, .. } => Some(HealthKey::Byok(id.as_str())),
            CredentialSource::RequestScoped { .. } => None,
            CredentialSource::System { index } => Some(HealthKey::System(*index)),
        }
    }
}

impl fmt::Display for CredentialSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Byok { id, .. } => write!(f, "byok:{id}"),
            CredentialSource::RequestScoped { provider, index } => write!(f, "request:{provider}#{index}"),
            CredentialSource::System { index } => write!(f, "system#{index}"),
        }
    }
}

