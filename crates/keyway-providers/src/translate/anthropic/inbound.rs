//! The inbound directions: an Anthropic Messages request (from an Anthropic SDK or Claude Code)
//! -> the OpenAI-shaped internal request, and an OpenAI `chat.completion` -> an Anthropic message.

use super::response::stop_reason;
use crate::error::ProviderError;
use crate::translate::{invalid_request, invalid_response, usage_from_openai_json, TranslateError};
use keyway_core::Usage;
use serde_json::{json, Map, Value};

type R<T> = Result<T, TranslateError>;

/// Translates an Anthropic Messages body into an OpenAI chat body. `model` is kept as given
/// (the gateway resolves it); Anthropic-only fields without an OpenAI meaning (`top_k`,
/// `thinking`, `service_tier`, server tools' settings) are dropped. `max_tokens` stays
/// `max_tokens`, the name every OpenAI-compatible provider knows.
pub fn anthropic_request_to_openai(body: &Map<String, Value>) -> R<Map<String, Value>> {
    translate(body, false)
}

/// As [`anthropic_request_to_openai`], but what has no OpenAI form (server tools, server tool
/// blocks, unknown block types, media other providers can't fetch) is left out instead of
/// refused; the reason comes back alongside when something was. The gateway routes on this and
/// lets only an Anthropic upstream (which is sent the original body) serve such a request.
pub fn anthropic_request_to_openai_lossy(body: &Map<String, Value>) -> R<(Map<String, Value>, Option<String>)> {
    match translate(body, false) {
        Ok(o) => Ok((o, None)),
        Err(strict) => translate(body, true).map(|o| (o, Some(strict.to_string()))),
    }
}

fn translate(body: &Map<String, Value>, lossy: bool) -> R<Map<String, Value>> {
    let model = body.get("model").and_then(Value::as_str).ok_or_else(|| invalid_request("`model` is required"))?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_request("`messages` must be an array"))?;
    let mut out = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = system_message(body.get("system"))? {
        out.push(system);
    }
    for (i, m) in messages.iter().enumerate() {
        match m.get("role").and_then(Value::as_str) {
            Some("user") => user_messages(m.get("content"), i, &mut out, lossy)?,
            Some("assistant") => out.push(assistant_message(m.get("content"), i, lossy)?),
            _ => return Err(invalid_request(format!("messages.{i}.role must be `user` or `assistant`"))),
        }
    }

    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert("messages".into(), Value::Array(out));
    if let Some(n) = body.get("max_tokens").filter(|v| !v.is_null()) {
        o.insert("max_tokens".into(), n.clone());
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            o.insert(k.into(), v.clone());
        }
    }
    if let Some(stop) = body.get("stop_sequences").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        o.insert("stop".into(), Value::Array(stop.clone()));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        o.insert("stream".into(), json!(true));
        o.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = body.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        o.insert("user".into(), json!(user));
    }
    tools(body, &mut o, lossy)?;
    Ok(o)
}

fn system_message(system: Option<&Value>) -> R<Option<Value>> {
    match system {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!({"role": "system", "content": s}))),
        Some(Value::Array(blocks)) => {
            // Keep parts when they carry cache_control, so that an Anthropic upstream still caches.
            if blocks.iter().any(|b| b.get("cache_control").is_some()) {
                let parts = blocks.iter().map(|b| text_part(b, "system")).collect::<R<Vec<_>>>()?;
                return Ok(Some(json!({"role": "system", "content": parts})));
            }
            let texts = blocks
                .iter()
                .map(|b| b.get("text").and_then(Value::as_str).ok_or_else(|| invalid_request("`system` blocks must be text")))
                .collect::<R<Vec<_>>>()?;
            Ok(Some(json!({"role": "system", "content": texts.join("\n\n")})))
        }
        Some(_) => Err(invalid_request("`system` must be a string or a list of text blocks")),
    }
}

fn text_part(b: &Value, at: &str) -> R<Value> {
    let text = b
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_request(format!("{at}: a text block needs `text`")))?;
    let mut p = json!({"type": "text", "text": text});
    if let Some(cc) = b.get("cache_control") {
        p["cache_control"] = cc.clone();
    }
    Ok(p)
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, as OpenAI wants them
/// right after the assistant's calls), the rest one user message.
fn user_messages(content: Option<&Value>, i: usize, out: &mut Vec<Value>, lossy: bool) -> R<()> {
    let blocks = match content {
        Some(Value::String(s)) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => return Err(invalid_request(format!("messages.{i}.content must be a string or a list of blocks"))),
    };
    let at = format!("messages.{i}");
    let mut parts = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let id = b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_request(format!("{at}: tool_result needs `tool_use_id`")))?;
                let mut texts = Vec::new();
                match b.get("content") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => texts.push(s.clone()),
                    Some(Value::Array(inner)) => {
                        for c in inner {
                            match c.get("type").and_then(Value::as_str) {
                                Some("text") => texts.push(c.get("text").and_then(Value::as_str).unwrap_or_default().to_owned()),
                                // OpenAI tool messages hold text only: the image goes to the user message after.
                                Some("image") => match media_part(c, &at) {
                                    Ok(p) => parts.push(p),
                                    Err(_) if lossy => {}
                                    Err(e) => return Err(e),
                                },
                                _ if lossy => {}
                                _ => return Err(invalid_request(format!("{at}: tool_result content must be text or images"))),
                            }
                        }
                    }
                    Some(_) => return Err(invalid_request(format!("{at}: tool_result content must be a string or blocks"))),
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": texts.join("\n")}));
            }
            Some("text") => parts.push(text_part(b, &at)?),
            Some("image") | Some("document") => match media_part(b, &at) {
                Ok(p) => parts.push(p),
                Err(_) if lossy => {}
                Err(e) => return Err(e),
            },
            Some(_) if lossy => {}
            Some(other) => return Err(invalid_request(format!("{at}: content block `{other}` is not supported"))),
            None => return Err(invalid_request(format!("{at}: a content block needs `type`"))),
        }
    }
    match parts.as_slice() {
        [] => {}
        [only] if only.get("type").and_then(Value::as_str) == Some("text") && only.get("cache_control").is_none() => {
            out.push(json!({"role": "user", "content": only["text"]}));
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

/// An image or document block -> an `image_url` or `file` part.
fn media_part(b: &Value, at: &str) -> R<Value> {
    let src = b.get("source").ok_or_else(|| invalid_request(format!("{at}: a media block needs `source`")))?;
    let is_image = b.get("type").and_then(Value::as_str) == Some("image");
    let s = |k: &str| src.get(k).and_then(Value::as_str);
    let mut part = match (s("type"), is_image) {
        (Some("base64"), true) => {
            json!({"type": "image_url", "image_url": {"url": format!("data:{};base64,{}", s("media_type").unwrap_or("image/png"), s("data").unwrap_or_default())}})
        }
        (Some("url"), true) => json!({"type": "image_url", "image_url": {"url": s("url").unwrap_or_default()}}),
        (Some("base64"), false) => json!({"type": "file", "file": {
            "filename": b.get("title").and_then(Value::as_str).unwrap_or("document.pdf"),
            "file_data": format!("data:{};base64,{}", s("media_type").unwrap_or("application/pdf"), s("data").unwrap_or_default())}}),
        (Some("text"), false) => json!({"type": "text", "text": s("data").unwrap_or_default()}),
        _ => return Err(invalid_request(format!("{at}: this media source can't be sent to an OpenAI-style provider"))),
    };
    if let Some(cc) = b.get("cache_control") {
        part["cache_control"] = cc.clone();
    }
    Ok(part)
}

fn assistant_message(content: Option<&Value>, i: usize, lossy: bool) -> R<Value> {
    let blocks = match content {
        Some(Value::String(s)) => return Ok(json!({"role": "assistant", "content": s})),
        Some(Value::Array(b)) => b,
        _ => return Err(invalid_request(format!("messages.{i}.content must be a string or a list of blocks"))),
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            // Thinking blocks are Anthropic's own and signed; other providers can't take them.
            Some("thinking") | Some("redacted_thinking") => {}
            Some(_) if lossy => {}
            Some(other) => return Err(invalid_request(format!("messages.{i}: content block `{other}` is not supported"))),
            None => return Err(invalid_request(format!("messages.{i}: a content block needs `type`"))),
        }
    }
    let mut m = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    Ok(m)
}

fn tools(body: &Map<String, Value>, o: &mut Map<String, Value>, lossy: bool) -> R<()> {
    let Some(list) = body.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        // Server tools (`web_search_20250305`, `bash_20250124`, ...) run inside Anthropic only.
        if let Some(ty) = t.get("type").and_then(Value::as_str).filter(|ty| *ty != "custom") {
            if lossy {
                continue;
            }
            return Err(invalid_request(format!("tools.{i}: server tool `{ty}` can't be served by other providers")));
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_request(format!("tools.{i}.name is required")))?;
        let mut f = json!({"name": name, "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"}))});
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            f["description"] = json!(d);
        }
        out.push(json!({"type": "function", "function": f}));
    }
    if out.is_empty() {
        return Ok(());
    }
    o.insert("tools".into(), Value::Array(out));
    if let Some(c) = body.get("tool_choice").filter(|c| !c.is_null()) {
        let choice = match c.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                let name = c.get("name").and_then(Value::as_str).ok_or_else(|| invalid_request("tool_choice.name is required"))?;
                json!({"type": "function", "function": {"name": name}})
            }
            _ => return Err(invalid_request("tool_choice.type must be auto, any, tool or none")),
        };
        o.insert("tool_choice".into(), choice);
        if c.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
            o.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    Ok(())
}

/// Translates an OpenAI `chat.completion` into an Anthropic message.
pub fn openai_response_to_anthropic(body: &Value) -> R<Value> {
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| invalid_response("chat.completion without choices"))?;
    let m = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(t) = m.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for tc in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": tc.get("id").cloned().unwrap_or(Value::Null),
            "name": tc.pointer("/function/name").cloned().unwrap_or(Value::Null),
            "input": tool_input(tc.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("")),
        }));
    }
    let usage = body.get("usage").and_then(usage_from_openai_json).unwrap_or_default();
    Ok(json!({
        "id": message_id(body.get("id").and_then(Value::as_str).unwrap_or_default()),
        "type": "message",
        "role": "assistant",
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason").and_then(Value::as_str)),
        "stop_sequence": null,
        "usage": anthropic_usage_json(&usage),
    }))
}

/// Tool arguments as the object Anthropic clients expect; arguments a model left unfinished
/// (cut by `length`) can't be parsed and become `{}`.
pub(super) fn tool_input(args: &str) -> Value {
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

pub(super) fn message_id(id: &str) -> String {
    if id.is_empty() {
        // Anthropic's SDKs expect some id; upstreams that send none get a fixed one.
        "msg_keyway".to_owned()
    } else if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
    }
}

/// [`Usage`] in Anthropic's shape (its `input_tokens` excludes cached tokens).
pub(super) fn anthropic_usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens + u.cache_write_tokens),
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
    })
}

/// The Anthropic error `type` for a final error (what Anthropic's SDKs switch on).
pub fn anthropic_error_type(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::RateLimited { .. } => "rate_limit_error",
        ProviderError::QuotaExhausted { .. } => "billing_error",
        ProviderError::Auth { status: 403, .. } => "permission_error",
        ProviderError::Auth { .. } => "authentication_error",
        ProviderError::BadRequest { status: 404, .. } => "not_found_error",
        ProviderError::BadRequest { status: 413, .. } => "request_too_large",
        ProviderError::BadRequest { .. } | ProviderError::Unsupported(_) => "invalid_request_error",
        ProviderError::Upstream5xx { status: 529, .. } => "overloaded_error",
        ProviderError::Upstream5xx { .. }
        | ProviderError::Timeout(_)
        | ProviderError::Connect(_)
        | ProviderError::Protocol(_) => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"}}`: the body of an error answer and the data of a
/// stream `error` event. The caller scrubs secrets from `message` first, as for any error.
pub fn anthropic_error_body(e: &ProviderError, message: &str) -> Value {
    json!({"type": "error", "error": {"type": anthropic_error_type(e), "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn lossy_translation_leaves_out_server_tools_and_blocks_and_says_why() {
        let body = obj(json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}, {"name": "f", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "find it"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "text", "text": "found"}]},
                {"role": "user", "content": "thanks"}]}));
        assert!(anthropic_request_to_openai(&body).is_err());
        let (o, why) = anthropic_request_to_openai_lossy(&body).unwrap();
        assert!(why.unwrap().contains("server_tool_use"), "the first thing without an OpenAI form is named");
        assert_eq!(o["tools"], json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]));
        assert_eq!(o["messages"][1], json!({"role": "assistant", "content": "found"}));

        // A faithful translation says nothing; a broken body is still refused.
        let plain = obj(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(anthropic_request_to_openai_lossy(&plain).unwrap().1, None);
        let broken = obj(json!({"model": "m", "messages": [{"role": "system", "content": "x"}]}));
        assert!(anthropic_request_to_openai_lossy(&broken).is_err());
    }
}
