//! The API-key object (`/api/v1/keys` and the dashboard's key list).

use super::iso;
use keyway_store::{ApiKeyRecord, Limits};
use serde_json::{json, Value};

/// OpenRouter's one credit `limit` (USD) and its `limit_reset`, read from Keyway's budgets:
/// the monthly budget if set, else the daily one.
pub fn openrouter_limit(l: &Limits) -> (Option<f64>, Option<&'static str>) {
    match (l.budget_monthly_micros, l.budget_daily_micros) {
        (Some(m), _) => (Some(m as f64 / 1e6), Some("monthly")),
        (None, Some(d)) => (Some(d as f64 / 1e6), Some("daily")),
        (None, None) => (None, None),
    }
}

/// The API-key object as OpenRouter's SDKs require it (usage counters in USD, `limit`,
/// `limit_remaining`, `limit_reset`, `include_byok_in_limit`, ...), plus Keyway's own
/// (`id`, `kind`, `limits`). Keyway does not yet keep per-key spend, so usage reads 0.
pub fn key_json(k: &ApiKeyRecord) -> Value {
    let (limit, limit_reset) = openrouter_limit(&k.limits);
    json!({
        "id": k.id,
        "hash": k.hash,
        "name": k.name,
        "label": k.label,
        "workspace_id": k.workspace_id,
        "kind": k.kind.as_str(),
        "role": k.role.as_str(),
        "disabled": k.disabled,
        "limits": k.limits,
        "limit": limit,
        "limit_remaining": limit,
        "limit_reset": limit_reset,
        "include_byok_in_limit": true,
        "usage": 0.0,
        "usage_daily": 0.0,
        "usage_weekly": 0.0,
        "usage_monthly": 0.0,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "creator_user_id": null,
        "external_user": null,
        "last_used_at": null,
        "expires_at": null,
        "created_at": iso(k.created_at),
        "updated_at": iso(k.updated_at),
    })
}
