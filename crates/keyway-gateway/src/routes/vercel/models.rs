//! `POST /v1/ai/language-model`, `POST /v1/ai/embedding-model`, `GET /v1/ai/config`.

use super::{check_version, header};
use crate::auth::{AnyKey, Caller};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::proxy::stream::Dialect;
use crate::proxy::{proxy, Answer, Operation, Served};
use crate::state::SharedState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyway_core::pricing::{cost_micros, Prices};
use keyway_core::route::{plan, PlanInput, RoutingOptions};
use keyway_core::ProviderSlug;
use keyway_providers::translate::usage_from_openai_json;
use keyway_providers::translate::vercel::{
    openai_embeddings_to_vercel, openai_response_to_vercel, vercel_embedding_to_openai, vercel_request_to_openai, OpenAiStreamToVercel, ServedBy,
};
use serde_json::{json, Map, Value};
use std::time::SystemTime;

/// A model id the planner can't resolve is the SDK's "model not found" (a 404 naming it),
/// rather than the OpenAI routes' 400.
fn known_model(state: &SharedState, model: &str) -> Result<(), ApiError> {
    let resolvable = state.catalog.get(model).is_some()
        || model.split_once('/').is_some_and(|(p, rest)| !rest.is_empty() && ProviderSlug::parse_alias(p).is_some());
    if resolvable {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "model `{model}` is not in Keyway's catalog; use an id from gateway.getAvailableModels(), or `provider/model-id` for one the catalog does not list"
        )))
    }
}

fn model_header(h: &HeaderMap, name: &str) -> Result<String, ApiError> {
    header(h, name).filter(|m| !m.is_empty()).map(str::to_owned).ok_or_else(|| ApiError::BadRequest(format!("the `{name}` header is required")))
}

/// What served the request, read back from the attempt loop's `x-keyway-*` headers.
fn served_by(h: &HeaderMap, requested: &str) -> ServedBy {
    let get = |n: &str| header(h, n).unwrap_or_default().to_owned();
    ServedBy {
        generation_id: get("x-keyway-generation-id"),
        requested_model: requested.to_owned(),
        model: get("x-keyway-model"),
        provider: get("x-keyway-provider"),
        credential: get("x-keyway-credential"),
        byok: header(h, "x-keyway-byok") == Some("true"),
        attempts: header(h, "x-keyway-attempts").and_then(|a| a.parse().ok()).unwrap_or(1),
        cost_micros: None,
    }
}

/// The serving endpoint's catalog prices (none for a slug the catalog doesn't list).
fn prices(state: &SharedState, served: &ServedBy) -> Option<Prices> {
    let provider = ProviderSlug::parse_alias(&served.provider)?;
    state.catalog.get(&served.model)?.endpoint(provider).map(Prices::from)
}

pub async fn language_model(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    check_version(&headers, "ai-language-model-specification-version")?;
    let model = model_header(&headers, "ai-language-model-id")?;
    let stream = match header(&headers, "ai-language-model-streaming") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::BadRequest("`ai-language-model-streaming` must be true or false".into())),
    };
    let openai = vercel_request_to_openai(&body, &model, stream).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    known_model(&state, &model)?;
    match proxy(state.clone(), caller, &headers, openai.into(), Operation::Chat).await? {
        Served::OpenAi(Answer::Complete { headers: h, body }) | Served::Anthropic(Answer::Complete { headers: h, body }) => {
            let body = body.into_value();
            let mut served = served_by(&h, &model);
            let usage = body.get("usage").and_then(usage_from_openai_json);
            served.cost_micros = prices(&state, &served).zip(usage).map(|(p, u)| cost_micros(&u, &p));
            let result = openai_response_to_vercel(&body, &served).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((h, Json(result)).into_response())
        }
        Served::OpenAi(Answer::Stream { headers: h, stream }) | Served::Anthropic(Answer::Stream { headers: h, stream }) => {
            let served = served_by(&h, &model);
            let conv = OpenAiStreamToVercel::new(&served.generation_id, &served.model);
            Ok(stream.respond(Dialect::Vercel { conv: Box::new(conv), served: Box::new(served) }, h))
        }
        Served::Failed(r) => Ok(r),
    }
}

pub async fn embedding_model(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    check_version(&headers, "ai-embedding-model-specification-version")?;
    let model = model_header(&headers, "ai-model-id")?;
    let openai = vercel_embedding_to_openai(&body, &model).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    known_model(&state, &model)?;
    match proxy(state.clone(), caller, &headers, openai.into(), Operation::Embeddings).await? {
        Served::OpenAi(Answer::Complete { headers: h, body }) | Served::Anthropic(Answer::Complete { headers: h, body }) => {
            let body = body.into_value();
            let mut served = served_by(&h, &model);
            let usage = body.get("usage").and_then(usage_from_openai_json);
            served.cost_micros = prices(&state, &served).zip(usage).map(|(p, u)| cost_micros(&u, &p));
            let result = openai_embeddings_to_vercel(&body, &served).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((h, Json(result)).into_response())
        }
        Served::OpenAi(Answer::Stream { .. }) | Served::Anthropic(Answer::Stream { .. }) => Err(ApiError::Internal("an embeddings request was answered with a stream".into())),
        Served::Failed(r) => Ok(r),
    }
}

/// USD per token as a decimal string (the SDK's `pricing.input` / `output`).
fn per_token(micros_per_mtok: u64) -> String {
    let s = format!("{:.12}", micros_per_mtok as f64 / 1e12);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.to_owned() }
}

/// `GET /v1/ai/config`: the catalog models this key can be routed to right now (a stored BYOK
/// key of its workspace or a system credential serves one of their providers, under the
/// credentials' model and key restrictions), in `getAvailableModels()`'s shape.
pub async fn config(State(state): State<SharedState>, AnyKey(caller): AnyKey) -> Result<Response, ApiError> {
    let stored = state.credentials.get(&state.store, &caller.workspace_id).await?;
    let options = RoutingOptions::default();
    let now = SystemTime::now();
    let mut models = Vec::new();
    for m in state.catalog.models() {
        let routable = plan(&PlanInput {
            stored: &stored.metas,
            system: &state.system_metas,
            system_after_request_scoped: state.config.security.system_after_request_keys,
            api_key_hash: Some(&caller.hash),
            health: &state.health,
            stats: &state.stats,
            ..PlanInput::new(&m.id, &options, &state.catalog, now)
        })
        .is_ok_and(|p| !p.attempts.is_empty());
        if !routable {
            continue;
        }
        let embedding = m.output_modalities.iter().any(|o| o == "embeddings");
        let pricing = m.headline().map(|e| {
            let mut p = json!({"input": per_token(e.input_per_mtok_micros), "output": per_token(e.output_per_mtok_micros)});
            if let Some(c) = e.cached_input_per_mtok_micros {
                p["input_cache_read"] = json!(per_token(c));
            }
            p
        });
        let owner = m.id.split_once('/').map(|(p, _)| p).unwrap_or(&m.id);
        models.push(json!({
            "id": m.id,
            "name": m.name,
            "description": null,
            "pricing": pricing,
            "specification": {"specificationVersion": "v4", "provider": owner, "modelId": m.id},
            "modelType": if embedding { "embedding" } else { "language" },
            "context_window": m.context_length,
            "providers": m.endpoints.iter().map(|e| e.provider.as_str()).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({"models": models})).into_response())
}
