//! `POST /v1/messages`: Anthropic's Messages API on Keyway (the Anthropic SDK, Claude Code).
//! The request is translated to Keyway's internal OpenAI form and routed like any other, so any
//! provider can serve it (the answer translated back, streams included). The client's own body
//! travels with it: an attempt on Anthropic sends that natively and its answer comes back as
//! Anthropic sent it, so extended thinking (signed blocks included), `top_k`, `service_tier`,
//! cache breakpoints, server tools and `stop_sequence` survive.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::proxy::stream::Dialect;
use crate::proxy::{proxy_with, Answer, Operation, Served};
use crate::state::SharedState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyway_core::ProviderSlug;
use keyway_providers::translate::anthropic::{anthropic_request_to_openai_lossy, openai_response_to_anthropic, OpenAiStreamToAnthropic};
use keyway_providers::AnthropicNative;
use serde_json::{Map, Value};

/// Routing fields Keyway reads; Anthropic's schema has no place for them, so they're carried over.
const ROUTING_FIELDS: [&str; 4] = ["provider", "models", "providerOptions", "route"];

/// Anthropic clients name models by Anthropic's ids (`claude-sonnet-4-5`); find the catalog slug.
fn gateway_model(state: &SharedState, model: &str) -> String {
    if model.contains('/') {
        return model.to_owned();
    }
    state
        .catalog
        .models()
        .iter()
        .find(|m| m.endpoint(ProviderSlug::Anthropic).is_some_and(|e| e.model_id == model) || m.id.strip_prefix("anthropic/") == Some(model))
        .map(|m| m.id.clone())
        .unwrap_or_else(|| format!("anthropic/{model}"))
}

pub async fn messages(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(ApiError::BadRequest("`model` is required".into())),
    };
    let (mut openai, native_only) = anthropic_request_to_openai_lossy(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut native = body;
    for f in ROUTING_FIELDS {
        if let Some(v) = native.remove(f) {
            openai.insert(f.to_owned(), v);
        }
    }
    let beta = headers.get("anthropic-beta").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let native = AnthropicNative { body: native, beta, native_only };
    let slug = gateway_model(&state, &model);
    openai.insert("model".into(), Value::String(slug.clone()));
    match proxy_with(state, caller, &headers, openai.into(), Operation::Chat, Some(native)).await? {
        Served::Anthropic(Answer::Complete { headers, body }) => Ok(message_response(headers, body.into_value(), model)),
        Served::OpenAi(Answer::Complete { headers, body }) => {
            let msg = openai_response_to_anthropic(&body.into_value()).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(message_response(headers, msg, model))
        }
        Served::Anthropic(Answer::Stream { headers, stream }) => Ok(stream.respond(Dialect::AnthropicNative { model }, headers)),
        Served::OpenAi(Answer::Stream { headers, stream }) => {
            Ok(stream.respond(Dialect::Anthropic(Box::new(OpenAiStreamToAnthropic::new(&model))), headers))
        }
        Served::Failed(r) => Ok(r),
    }
}

/// A Messages answer showing the model the client asked for.
fn message_response(headers: HeaderMap, mut msg: Value, model: String) -> Response {
    if let Some(o) = msg.as_object_mut() {
        o.insert("model".into(), Value::String(model));
    }
    (headers, Json(msg)).into_response()
}
