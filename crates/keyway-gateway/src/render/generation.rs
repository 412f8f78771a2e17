//! The generation object (`/api/v1/generation` and the dashboard's request log).

use super::iso;
use crate::billing::usd;
use keyway_core::pricing::Charge;
use keyway_core::ProviderSlug;
use keyway_store::GenerationRow;
use serde_json::{json, Value};

fn provider_name(slug: Option<&str>) -> Option<&'static str> {
    slug.and_then(ProviderSlug::parse_alias).map(ProviderSlug::display_name)
}

pub fn generation_json(g: &GenerationRow) -> Value {
    // Stored as the usage module's `AttemptRecord` list; read back as plain JSON.
    let attempts: Vec<Value> = serde_json::from_str(&g.attempts).unwrap_or_default();
    let charged = Charge::charged(g.cost_micros.max(0) as u64, g.fee_micros.max(0) as u64, g.is_byok) as i64;
    let served = g.provider.is_some();
    let tokens = |n: i64| if g.has_usage { json!(n) } else { Value::Null };
    let generation_time = match (served, g.ttft_ms) {
        (true, Some(t)) => json!(g.latency_ms.saturating_sub(t)),
        _ => Value::Null,
    };
    let provider_responses: Vec<Value> = attempts
        .iter()
        .map(|a| {
            let mut r = json!({
                "model_permaslug": a["model"],
                "status": a["status"],
                "latency": a["latency_ms"],
                "is_byok": a["credential_id"].as_str().is_some_and(|c| c != "system"),
            });
            // The TypeScript SDK accepts the key absent but not null.
            if let (Some(name), Some(o)) = (provider_name(a["provider"].as_str()), r.as_object_mut()) {
                o.insert("provider_name".into(), json!(name));
            }
            r
        })
        .collect();
    let mut v = json!({
        "id": g.id,
        "upstream_id": null,
        "total_cost": usd(charged),
        "cache_discount": null,
        "upstream_inference_cost": if g.is_byok { json!(usd(g.cost_micros)) } else { Value::Null },
        "created_at": iso(g.created_at),
        "model": g.model.as_deref().unwrap_or(&g.requested_model),
        "app_id": null,
        "streamed": g.streamed,
        "cancelled": g.status == 499,
        "provider_name": provider_name(g.provider.as_deref()),
        "latency": g.latency_ms,
        "moderation_latency": null,
        "generation_time": generation_time,
        "finish_reason": g.finish_reason,
        "native_finish_reason": g.finish_reason,
        "tokens_prompt": tokens(g.prompt_tokens),
        "tokens_completion": tokens(g.completion_tokens),
        "native_tokens_prompt": tokens(g.prompt_tokens),
        "native_tokens_completion": tokens(g.completion_tokens),
        "native_tokens_completion_images": null,
        "native_tokens_reasoning": null,
        "native_tokens_cached": tokens(g.cached_tokens),
        "num_media_prompt": null,
        "num_input_audio_prompt": null,
        "num_media_completion": null,
        "num_search_results": null,
        "origin": g.app_referer.as_deref().unwrap_or(""),
        "usage": usd(charged),
        "is_byok": g.is_byok,
        "external_user": g.user_id,
        "api_type": "completions",
        "router": null,
        "provider_responses": provider_responses,
    });
    // Keys OpenRouter's SDKs require that Keyway has no value for.
    let required = json!({
        "data_region": "global",
        "num_fetches": null,
        "preset_id": null,
        "service_tier": null,
        "web_search_engine": null,
        "user_agent": null,
    });
    // Keyway's own (a second literal: one would exceed json!'s recursion limit).
    let own = json!({
        "requested_model": g.requested_model,
        "provider": g.provider,
        "status": g.status,
        "credential_id": g.credential_id,
        "api_key_hash": g.api_key_hash,
        "workspace_id": g.workspace_id,
        "cost_micros": g.cost_micros,
        "fee_micros": g.fee_micros,
        "charged_micros": charged,
        "ttft_ms": g.ttft_ms,
        "cache_write_tokens": tokens(g.cache_write_tokens),
        "attempts": attempts,
        // Stored as `crate::explain`'s JSON text; read back as plain JSON.
        "route_plan": g.route_plan.as_deref().and_then(|p| serde_json::from_str::<Value>(&p.text).ok()),
        "http_referer": g.app_referer,
        "app_title": g.app_title,
    });
    if let (Some(o), Value::Object(required), Value::Object(own)) = (v.as_object_mut(), required, own) {
        o.extend(required);
        o.extend(own);
    }
    v
}
