//! An OpenAI answer -> the SDK's generate result (`LanguageModelV4GenerateResult`) and
//! embedding result, with the provider metadata that says what served it.

use crate::translate::{invalid_response, TranslateError};
use keyway_core::Usage;
use serde_json::{json, Map, Value};

/// What served a request, for `providerMetadata.gateway` (Vercel's routing and cost fields)
/// and `providerMetadata.keyway` (Keyway's own names).
#[derive(Debug, Clone, Default)]
pub struct ServedBy {
    pub generation_id: String,
    /// The model the client asked for.
    pub requested_model: String,
    /// The catalog slug that answered (differs on a `models` fallback).
    pub model: String,
    /// Provider slug (`anthropic`, `amazon-bedrock`, ...).
    pub provider: String,
    /// Stored credential id, `request` (request-scoped) or `system`.
    pub credential: String,
    pub byok: bool,
    pub attempts: usize,
    /// Catalog price of the usage, when the catalog prices the endpoint.
    pub cost_micros: Option<u64>,
}

impl ServedBy {
    /// `providerMetadata` for a result or a `finish` part.
    pub fn provider_metadata(&self) -> Value {
        let credential_type = if self.byok { "byok" } else { "system" };
        let cost = self.cost_micros.map(usd_string);
        json!({
            "gateway": {
                "routing": {
                    "originalModelId": self.requested_model,
                    "resolvedProvider": self.provider,
                    "finalProvider": self.provider,
                    "resolvedModelId": self.model,
                    "credentialType": credential_type,
                    "attempts": self.attempts,
                },
                "cost": cost,
                "generationId": self.generation_id,
            },
            "keyway": {
                "provider": self.provider,
                "model": self.model,
                "credentialId": self.credential,
                "byok": self.byok,
                "costMicros": self.cost_micros,
                "generationId": self.generation_id,
                "attempts": self.attempts,
            },
        })
    }
}

/// Micro-USD as Vercel writes costs: a decimal string of dollars.
fn usd_string(micros: u64) -> String {
    let s = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.to_owned() }
}

/// An OpenAI `finish_reason` -> the SDK's `{unified, raw}`.
pub fn finish_reason(raw: Option<&str>) -> Value {
    let unified = match raw {
        Some("stop" | "end_turn" | "stop_sequence") => "stop",
        Some("length" | "max_tokens") => "length",
        Some("tool_calls" | "function_call" | "tool_use") => "tool-calls",
        Some("content_filter") => "content-filter",
        Some("error") => "error",
        _ => "other",
    };
    json!({"unified": unified, "raw": raw})
}

/// The SDK's usage object from an OpenAI `usage` (which alone carries reasoning tokens), else
/// from Keyway's parsed [`Usage`]. OpenAI's prompt count includes cached tokens; the SDK's
/// `noCache` doesn't.
pub fn vercel_usage(openai: Option<&Value>, parsed: Option<Usage>) -> Value {
    let from_json = openai.filter(|u| u.is_object()).and_then(crate::translate::usage_from_openai_json);
    let Some(u) = from_json.or(parsed) else {
        return json!({
            "inputTokens": {"total": null, "noCache": null, "cacheRead": null, "cacheWrite": null},
            "outputTokens": {"total": null, "text": null, "reasoning": null},
        });
    };
    let reasoning = openai
        .and_then(|v| v.pointer("/completion_tokens_details/reasoning_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(u.completion_tokens);
    let no_cache = u.prompt_tokens.saturating_sub(u.cached_tokens).saturating_sub(u.cache_write_tokens);
    let mut out = json!({
        "inputTokens": {"total": u.prompt_tokens, "noCache": no_cache, "cacheRead": u.cached_tokens, "cacheWrite": u.cache_write_tokens},
        "outputTokens": {"total": u.completion_tokens, "text": u.completion_tokens - reasoning, "reasoning": reasoning},
    });
    if let Some(raw) = openai.filter(|u| u.is_object()) {
        out["raw"] = raw.clone();
    }
    out
}

/// An OpenAI `chat.completion` -> the SDK's generate result: reasoning, text and tool-call
/// content parts, `finishReason`, `usage`, `providerMetadata`.
pub fn openai_response_to_vercel(body: &Value, served: &ServedBy) -> Result<Value, TranslateError> {
    let choice = body.get("choices").and_then(|c| c.get(0)).ok_or_else(|| invalid_response("no choices in the answer"))?;
    let message = choice.get("message").ok_or_else(|| invalid_response("the choice has no message"))?;
    let mut content = Vec::new();
    let reasoning = message.get("reasoning").or_else(|| message.get("reasoning_content")).and_then(Value::as_str).unwrap_or_default();
    if !reasoning.is_empty() {
        content.push(json!({"type": "reasoning", "text": reasoning}));
    }
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        // Some upstreams answer a list of text parts.
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    };
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for tc in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let f = tc.get("function");
        content.push(json!({
            "type": "tool-call",
            "toolCallId": tc.get("id").and_then(Value::as_str).unwrap_or_default(),
            "toolName": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default(),
            "input": f.and_then(|f| f.get("arguments")).and_then(Value::as_str).filter(|a| !a.is_empty()).unwrap_or("{}"),
        }));
    }
    let mut result = Map::new();
    result.insert("content".into(), Value::Array(content));
    result.insert("finishReason".into(), finish_reason(choice.get("finish_reason").and_then(Value::as_str)));
    result.insert("usage".into(), vercel_usage(body.get("usage"), None));
    result.insert("providerMetadata".into(), served.provider_metadata());
    result.insert("response".into(), json!({"id": served.generation_id, "modelId": served.model}));
    result.insert("warnings".into(), json!([]));
    Ok(Value::Object(result))
}

/// An OpenAI embeddings list -> `{embeddings, usage: {tokens}, providerMetadata}`.
pub fn openai_embeddings_to_vercel(body: &Value, served: &ServedBy) -> Result<Value, TranslateError> {
    let data = body.get("data").and_then(Value::as_array).ok_or_else(|| invalid_response("no `data` in the embeddings answer"))?;
    let mut rows: Vec<(u64, Value)> = Vec::with_capacity(data.len());
    for (i, d) in data.iter().enumerate() {
        let v = d.get("embedding").filter(|e| e.is_array()).ok_or_else(|| invalid_response("an embedding is not a list of numbers"))?;
        rows.push((d.get("index").and_then(Value::as_u64).unwrap_or(i as u64), v.clone()));
    }
    // The SDK pairs embeddings with its values by position.
    rows.sort_by_key(|(i, _)| *i);
    let tokens = body.pointer("/usage/prompt_tokens").or_else(|| body.pointer("/usage/total_tokens")).and_then(Value::as_u64);
    Ok(json!({
        "embeddings": rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "usage": tokens.map(|t| json!({"tokens": t})),
        "providerMetadata": served.provider_metadata(),
        "warnings": [],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> ServedBy {
        ServedBy {
            generation_id: "gen-1".into(),
            requested_model: "anthropic/claude-sonnet-4".into(),
            model: "anthropic/claude-sonnet-4".into(),
            provider: "anthropic".into(),
            credential: "request".into(),
            byok: true,
            attempts: 1,
            cost_micros: Some(1234),
        }
    }

    #[test]
    fn a_completion_becomes_a_generate_result() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": "hi", "reasoning": "think",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"a\":1}"}}]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 3}}});
        let r = openai_response_to_vercel(&body, &served()).unwrap();
        assert_eq!(r["content"][0], json!({"type": "reasoning", "text": "think"}));
        assert_eq!(r["content"][1], json!({"type": "text", "text": "hi"}));
        assert_eq!(r["content"][2], json!({"type": "tool-call", "toolCallId": "c1", "toolName": "w", "input": "{\"a\":1}"}));
        assert_eq!(r["finishReason"], json!({"unified": "tool-calls", "raw": "tool_calls"}));
        assert_eq!(r["usage"]["inputTokens"], json!({"total": 10, "noCache": 6, "cacheRead": 4, "cacheWrite": 0}));
        assert_eq!(r["usage"]["outputTokens"], json!({"total": 7, "text": 4, "reasoning": 3}));
        assert_eq!(r["providerMetadata"]["gateway"]["cost"], "0.001234");
        assert_eq!(r["providerMetadata"]["gateway"]["routing"]["credentialType"], "byok");
        assert_eq!(r["providerMetadata"]["keyway"]["credentialId"], "request");
    }

    #[test]
    fn finish_reasons_map_to_the_sdk_names() {
        for (raw, unified) in [("stop", "stop"), ("length", "length"), ("content_filter", "content-filter"), ("weird", "other")] {
            assert_eq!(finish_reason(Some(raw))["unified"], unified);
        }
        assert_eq!(finish_reason(None), json!({"unified": "other", "raw": null}));
    }

    #[test]
    fn usd_strings_are_exact() {
        assert_eq!(usd_string(0), "0");
        assert_eq!(usd_string(1_500_000), "1.5");
        assert_eq!(usd_string(7), "0.000007");
    }

    #[test]
    fn embeddings_keep_the_value_order() {
        let body = json!({"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}], "usage": {"prompt_tokens": 3}});
        let r = openai_embeddings_to_vercel(&body, &served()).unwrap();
        assert_eq!(r["embeddings"], json!([[1.0], [2.0]]));
        assert_eq!(r["usage"], json!({"tokens": 3}));
        assert!(openai_embeddings_to_vercel(&json!({}), &served()).is_err());
    }
}
