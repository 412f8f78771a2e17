//! What is known about one request once it ends: the record the usage writer stores, metrics
//! count and billing charges. A leaf: it imports none of them.

use keyway_core::Usage;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttemptRecord {
    pub provider: String,
    pub model: String,
    pub credential_id: String,
    /// HTTP-ish status of the attempt (200 on success).
    pub status: u16,
    /// The error class (`rate_limited`, `auth`, `upstream_5xx`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The upstream's message, secrets scrubbed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub latency_ms: u64,
}

/// Everything known about one request once it ends. (`Default` is for fixtures: the request
/// path spells every field out in `proxy::request::open_record`.)
#[derive(Debug, Clone, Default)]
pub struct GenerationRecord {
    pub id: String,
    pub workspace_id: String,
    pub api_key_hash: String,
    pub user: Option<String>,
    /// The model the client asked for.
    pub requested_model: String,
    /// The model that served (differs with `models` fallback); None when nothing served.
    pub model: Option<String>,
    pub provider: Option<String>,
    pub credential_id: Option<String>,
    pub is_byok: bool,
    pub streamed: bool,
    pub status: u16,
    pub usage: Option<Usage>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub attempts: Vec<AttemptRecord>,
    pub finish_reason: Option<String>,
    pub app_referer: Option<String>,
    pub app_title: Option<String>,
    pub created_at_ms: i64,
    pub cost_micros: u64,
    pub fee_micros: u64,
    /// The route plan (`crate::explain`): candidates and exclusions, as JSON text with its id.
    pub route_plan: Option<std::sync::Arc<keyway_store::RoutePlan>>,
}

#[cfg(test)]
impl GenerationRecord {
    /// A 200 for `openai/gpt-4o-mini` that names no provider, credential or usage: tests
    /// override what they look at.
    pub(crate) fn for_test(id: &str, workspace_id: &str) -> Self {
        Self {
            id: id.into(),
            workspace_id: workspace_id.into(),
            api_key_hash: "h".into(),
            requested_model: "openai/gpt-4o-mini".into(),
            status: 200,
            latency_ms: 1,
            ..Self::default()
        }
    }
}
