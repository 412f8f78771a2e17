//! The BYOK object (`/api/v1/byok` and the dashboard's credential list).

use super::iso;
use crate::state::SharedState;
use keyway_store::ByokRecord;
use serde_json::{json, Value};

/// OpenRouter writes "no restriction" as `null`; Keyway stores it as an empty list.
fn allow_list(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// The BYOK object as OpenRouter's API and SDKs shape it (every key their models require:
/// `allowed_*` lists are `null` when unrestricted, `declared_region` and `declared_zdr` always
/// present), plus Keyway's own fields (`always_use`, `model_mappings`, `health`, `updated_at`).
pub fn byok_json(r: &ByokRecord, state: &SharedState) -> Value {
    let health = state.health.snapshot(&r.id);
    json!({
        "id": r.id,
        "workspace_id": r.workspace_id,
        "provider": r.provider.as_str(),
        "name": r.name,
        "label": r.label,
        "disabled": r.disabled,
        "is_fallback": r.is_fallback,
        "is_required": r.always_use,
        "always_use": r.always_use,
        "is_byok_only": r.is_byok_only,
        "sort_order": r.sort_order,
        "allowed_models": allow_list(&r.allowed_models),
        "allowed_api_key_hashes": allow_list(&r.allowed_api_key_hashes),
        "allowed_user_ids": allow_list(&r.allowed_user_ids),
        "model_mappings": r.model_mappings,
        "declared_region": r.declared_region,
        "declared_zdr": r.declared_zdr,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
        "health": health,
    })
}
