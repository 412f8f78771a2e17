//! Anthropic Messages response -> OpenAI `chat.completion`, plus the mappings shared by the
//! stream translators (usage, stop reasons, error events).

use crate::error::ProviderError;
use crate::translate::{invalid_response, openai_usage_json, TranslateError};
use keyway_core::Usage;
use serde_json::{json, Value};

/// Translates a whole Anthropic message into an OpenAI `chat.completion` created at `created`
/// (Unix seconds; passed in so that the translation stays pure).
pub fn anthropic_response_to_openai(msg: &Value, created: i64) -> Result<(Value, Usage), TranslateError> {
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_response("Anthropic message without a `content` list"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("thinking") => reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {"name": b.get("name").cloned().unwrap_or(Value::Null), "arguments": input.to_string()},
                }));
            }
            // Redacted thinking, server tool blocks, ...: nothing an OpenAI client can show.
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        message["reasoning"] = Value::String(reasoning);
    }
    let usage = msg.get("usage").map(anthropic_usage).unwrap_or_default();
    let body = json!({
        "id": msg.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": created,
        "model": msg.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(msg.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": openai_usage_json(&usage),
    });
    Ok((body, usage))
}

/// Anthropic's `usage`: its `input_tokens` excludes cache reads and writes; OpenAI's
/// `prompt_tokens` includes them.
pub fn anthropic_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (read, write) = (n("cache_read_input_tokens"), n("cache_creation_input_tokens"));
    Usage {
        prompt_tokens: n("input_tokens") + read + write,
        completion_tokens: n("output_tokens"),
        cached_tokens: read,
        cache_write_tokens: write,
    }
}

/// Anthropic `stop_reason` -> OpenAI `finish_reason` (null while unknown).
pub fn finish_reason(stop_reason: Option<&str>) -> Value {
    match stop_reason {
        None => Value::Null,
        Some("max_tokens") | Some("model_context_window_exceeded") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        // end_turn, stop_sequence, pause_turn and anything newer.
        Some(_) => json!("stop"),
    }
}

/// OpenAI `finish_reason` -> Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// An Anthropic error object (`{"type":"error","error":{"type","message"}}`, as a body or as a
/// stream `error` event) -> the router's error class.
pub fn anthropic_error(v: &Value) -> ProviderError {
    let e = v.get("error").unwrap_or(v);
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
    let message = e.get("message").and_then(Value::as_str).unwrap_or(kind).to_owned();
    match kind {
        "rate_limit_error" => ProviderError::RateLimited { status: 429, retry_after: None, message, body: None },
        "overloaded_error" => ProviderError::Upstream5xx { status: 529, message },
        "authentication_error" => ProviderError::Auth { status: 401, message, body: None },
        "permission_error" => ProviderError::Auth { status: 403, message, body: None },
        "invalid_request_error" => ProviderError::BadRequest { status: 400, message, body: None },
        "not_found_error" => ProviderError::BadRequest { status: 404, message, body: None },
        "request_too_large" => ProviderError::BadRequest { status: 413, message, body: None },
        "timeout_error" => ProviderError::Timeout(crate::error::TimeoutKind::Idle),
        _ => ProviderError::Upstream5xx { status: 500, message },
    }
}
