//! `GET /v1/credits` and `GET /v1/generation?id=` in the Vercel SDK's shapes (`getCredits()`,
//! `getGenerationInfo()`), from the same ledger and generations as `/api/v1/credits` and
//! `/api/v1/generation` (which keep OpenRouter's shapes).

use crate::auth::AnyKey;
use crate::error::ApiError;
use crate::render::iso;
use crate::state::SharedState;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use keyway_core::pricing::Charge;
use keyway_core::ProviderSlug;
use keyway_store::GenerationRow;
use serde::Deserialize;
use serde_json::json;

/// Micro-units as a decimal string of whole units (`1500000` -> `"1.5"`), sign kept.
fn decimal(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let s = format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" { "0".into() } else { s.to_owned() }
}

/// `{balance, total_used}`: the calling key's workspace, as decimal strings of the account currency.
pub async fn credits(State(state): State<SharedState>, AnyKey(key): AnyKey) -> impl IntoResponse {
    let b = state.billing.balance(&key.workspace_id, chrono::Utc::now().timestamp_millis());
    Json(json!({"balance": decimal(b.balance_micros), "total_used": decimal(b.usage_micros)}))
}

#[derive(Debug, Deserialize, Default)]
pub struct GenerationQuery {
    id: Option<String>,
}

fn usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// The SDK's generation object: every field it requires is present and typed as it parses them.
pub fn generation_json(g: &GenerationRow) -> serde_json::Value {
    let charged = Charge::charged(g.cost_micros.max(0) as u64, g.fee_micros.max(0) as u64, g.is_byok) as i64;
    let provider_name = g.provider.as_deref().and_then(ProviderSlug::parse_alias).map(ProviderSlug::display_name).or(g.provider.as_deref()).unwrap_or("");
    json!({
        "id": g.id,
        "total_cost": usd(charged),
        "market_cost": usd(g.cost_micros),
        "gateway_cost": usd(g.fee_micros),
        "upstream_inference_cost": usd(g.cost_micros),
        "usage": usd(charged),
        "created_at": iso(g.created_at),
        "model": g.model.as_deref().unwrap_or(&g.requested_model),
        "is_byok": g.is_byok,
        "provider_name": provider_name,
        "streamed": g.streamed,
        "finish_reason": g.finish_reason.as_deref().unwrap_or(""),
        "latency": g.latency_ms,
        "generation_time": g.ttft_ms.map(|t| g.latency_ms.saturating_sub(t)).unwrap_or(g.latency_ms),
        "native_tokens_prompt": g.prompt_tokens,
        "native_tokens_completion": g.completion_tokens,
        // Keyway's ledger keeps no reasoning count; the answer's usage carried it.
        "native_tokens_reasoning": 0,
        "native_tokens_cached": g.cached_tokens,
        "native_tokens_cache_creation": g.cache_write_tokens,
        "billable_web_search_calls": 0,
        // Keyway's own.
        "provider": g.provider,
        "credential_id": g.credential_id,
        "status": g.status,
        "cost_micros": g.cost_micros,
        "fee_micros": g.fee_micros,
    })
}

/// `{data: {...}}` for a generation of the caller's workspace (an admin key: any).
pub async fn generation(State(state): State<SharedState>, AnyKey(key): AnyKey, Query(q): Query<GenerationQuery>) -> Result<impl IntoResponse, ApiError> {
    let id = q.id.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::BadRequest("`id` is required: /v1/generation?id=gen-...".into()))?;
    let scope = key.workspace_scope();
    let g = state.store.get_generation(scope, &id).await.map_err(|e| match e {
        keyway_store::StoreError::NotFound => ApiError::NotFound(format!("generation `{id}` not found (it is written a moment after the request ends)")),
        other => other.into(),
    })?;
    Ok(Json(json!({"data": generation_json(&g)})))
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(1_500_000), "1.5");
        assert_eq!(decimal(-250), "-0.00025");
    }
}
