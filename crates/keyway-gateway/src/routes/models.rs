//! `GET /v1/models`: the catalog as OpenRouter's model objects, with Keyway's prices in micros.

use crate::state::SharedState;
use crate::error::ApiError;
use crate::extract::Query;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use keyway_core::catalog::{Endpoint, Model};
use serde::Deserialize;
use serde_json::{json, Value};

/// USD per token as OpenRouter writes it: a decimal string.
fn per_token(micros_per_mtok: u64) -> String {
    // micro-USD per million tokens = 1e-12 USD per token.
    let v = micros_per_mtok as f64 / 1e12;
    let s = format!("{v:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.to_owned() }
}

/// OpenRouter's pricing object: its optional price strings are absent (never `null`) when
/// Keyway has no price, as its SDKs require.
fn pricing(e: &Endpoint) -> Value {
    let mut p = json!({
        "prompt": per_token(e.input_per_mtok_micros),
        "completion": per_token(e.output_per_mtok_micros),
        "request": format!("{}", e.per_request_micros as f64 / 1e6),
        "image": "0",
        "web_search": "0",
        "internal_reasoning": "0",
        "input_per_mtok_micros": e.input_per_mtok_micros,
        "output_per_mtok_micros": e.output_per_mtok_micros,
        "cached_input_per_mtok_micros": e.cached_input_per_mtok_micros,
    });
    if let (Some(o), Some(c)) = (p.as_object_mut(), e.cached_input_per_mtok_micros) {
        o.insert("input_cache_read".into(), Value::String(per_token(c)));
    }
    p
}

/// A model with no endpoint still needs a pricing object in OpenRouter's shape.
fn no_pricing() -> Value {
    json!({"prompt": "0", "completion": "0"})
}

pub fn model_json(m: &Model) -> Value {
    let head = m.headline();
    let modality = format!("{}->{}", m.input_modalities.join("+"), m.output_modalities.join("+"));
    json!({
        "id": m.id,
        "canonical_slug": m.id,
        "name": m.name,
        "object": "model",
        "created": m.created,
        "owned_by": m.id.split('/').next().unwrap_or(""),
        "description": m.name,
        "context_length": m.context_length,
        "hugging_face_id": null,
        "architecture": {
            "modality": modality,
            "input_modalities": m.input_modalities,
            "output_modalities": m.output_modalities,
            "tokenizer": "Other",
            "instruct_type": null,
        },
        "pricing": head.map(pricing).unwrap_or_else(no_pricing),
        "top_provider": {"context_length": m.context_length, "max_completion_tokens": null, "is_moderated": false},
        "per_request_limits": null,
        "supported_parameters": m.supported_parameters,
        "default_parameters": null,
        "supported_voices": null,
        "links": {"details": format!("/api/v1/models/{}/endpoints", m.id)},
        "providers": m.endpoints.iter().map(|e| json!({
            "provider": e.provider.as_str(),
            "name": e.provider.display_name(),
            "model_id": e.model_id,
            "pricing": pricing(e),
        })).collect::<Vec<_>>(),
    })
}

/// `offset` and `limit` as OpenRouter's SDKs page the model list (no limit: everything).
#[derive(Debug, Deserialize, Default)]
pub struct ModelListParams {
    pub offset: Option<String>,
    pub limit: Option<String>,
}

/// Public like OpenAI's and OpenRouter's model lists: no key needed to read prices.
/// Also OpenRouter's list envelope: `total_count` and `links.next`.
#[utoipa::path(get, operation_id = "models_list", path = "/api/v1/models", tag = "catalog", security(()),
    params(
        ("offset" = Option<i64>, Query, minimum = 0, description = "Models to skip"),
        ("limit" = Option<i64>, Query, minimum = 0, description = "Page size (default: everything)"),
    ),
    responses((status = 200, description = "The model catalog", body = crate::api_schema::ModelList), crate::api_schema::Errors))]
pub async fn list(State(state): State<SharedState>, Query(q): Query<ModelListParams>) -> Result<impl IntoResponse, ApiError> {
    let number = |v: &Option<String>, name: &str| -> Result<Option<usize>, ApiError> {
        match v.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s.parse::<usize>().map(Some).map_err(|_| ApiError::BadRequest(format!("`{name}` must be a whole number >= 0"))),
        }
    };
    let offset = number(&q.offset, "offset")?.unwrap_or(0);
    let limit = number(&q.limit, "limit")?;
    let models = state.catalog.models();
    let total = models.len();
    let data: Vec<Value> = models.iter().skip(offset).take(limit.unwrap_or(usize::MAX)).map(model_json).collect();
    let next_offset = offset.saturating_add(data.len());
    let next = (limit.is_some() && next_offset < total).then(|| format!("/api/v1/models?offset={next_offset}&limit={}", limit.unwrap_or(0)));
    Ok(Json(json!({"object": "list", "data": data, "total_count": total, "links": {"next": next}})))
}

/// `GET /api/v1/providers`: the providers Keyway can route to, as OpenRouter lists them.
#[utoipa::path(get, operation_id = "models_providers", path = "/api/v1/providers", tag = "catalog", security(()),
    responses((status = 200, description = "Providers Keyway can route to", body = crate::api_schema::ProviderList)))]
pub async fn providers() -> impl IntoResponse {
    let data: Vec<Value> = keyway_core::ProviderSlug::ALL
        .iter()
        .map(|p| json!({"slug": p.as_str(), "name": p.display_name(), "privacy_policy_url": null, "terms_of_service_url": null, "status_page_url": null}))
        .collect();
    Json(json!({"data": data}))
}
