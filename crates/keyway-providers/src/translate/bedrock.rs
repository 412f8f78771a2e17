//! OpenAI chat <-> Bedrock Converse (request body, whole response, usage, stop reasons).

use crate::error::ProviderError;
use crate::openai_shape::{
    arguments_object, assistant_message, bad_request, content_parts, content_text, max_tokens, stop_sequences, tool_call,
    ChunkMaker, Part,
};
use keyway_core::Usage;
use serde_json::{json, Map, Value};

/// An OpenAI chat body -> a Converse request body (the model id goes in the path).
pub fn request(body: &Map<String, Value>) -> Result<Value, ProviderError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad_request("`messages` must be a non-empty array"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    let mut has_tool_history = false;
    for m in messages {
        let (role, blocks) = match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                for p in content_parts(m.get("content"))? {
                    match p {
                        Part::Text { text, cache } => {
                            system.push(json!({"text": text}));
                            if cache {
                                system.push(cache_point());
                            }
                        }
                        _ => return Err(ProviderError::Unsupported("system messages take text only".into())),
                    }
                }
                continue;
            }
            "user" => ("user", user_blocks(m.get("content"))?),
            "assistant" => {
                has_tool_history |= m.get("tool_calls").is_some_and(|t| !t.is_null());
                ("assistant", assistant_blocks(m)?)
            }
            "tool" => {
                has_tool_history = true;
                ("user", vec![tool_result(m)?])
            }
            other => return Err(bad_request(&format!("unknown message role `{other}`"))),
        };
        if blocks.is_empty() {
            continue;
        }
        // Converse wants user/assistant turns to alternate: merge neighbours of one role.
        match turns.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(c) = last["content"].as_array_mut() {
                    c.extend(blocks);
                }
            }
            _ => turns.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(n) = max_tokens(body) {
        inference.insert("maxTokens".into(), json!(n));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = body.get(from).filter(|v| v.is_number()) {
            inference.insert(to.into(), v.clone());
        }
    }
    let stops = stop_sequences(body);
    if !stops.is_empty() {
        inference.insert("stopSequences".into(), json!(stops));
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tc) = tool_config(body, has_tool_history)? {
        out.insert("toolConfig".into(), tc);
    }
    Ok(Value::Object(out))
}

fn cache_point() -> Value {
    json!({"cachePoint": {"type": "default"}})
}

/// Converse has no "none": with `tool_choice: none` the tools are left out, unless earlier turns
/// used tools (Converse then requires the tool config to be present).
fn tool_config(body: &Map<String, Value>, has_tool_history: bool) -> Result<Option<Value>, ProviderError> {
    let Some(tools) = body.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let choice = body.get("tool_choice");
    let none = choice.and_then(Value::as_str) == Some("none");
    if none && !has_tool_history {
        return Ok(None);
    }
    let specs = tools
        .iter()
        .map(|t| {
            let f = t.get("function").ok_or_else(|| ProviderError::Unsupported("only `function` tools are supported".into()))?;
            let mut spec = Map::new();
            spec.insert("name".into(), f.get("name").cloned().ok_or_else(|| bad_request("a tool needs a name"))?);
            if let Some(d) = f.get("description") {
                spec.insert("description".into(), d.clone());
            }
            let schema = f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            spec.insert("inputSchema".into(), json!({"json": schema}));
            Ok(json!({"toolSpec": spec}))
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    let mut tc = json!({"tools": specs});
    let choice = match choice {
        _ if none => None,
        Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::Object(o)) => o.get("function").and_then(|f| f.get("name")).map(|n| json!({"tool": {"name": n}})),
        _ => None,
    };
    if let Some(c) = choice {
        tc["toolChoice"] = c;
    }
    Ok(Some(tc))
}

fn image_format(mime: &str) -> Result<&'static str, ProviderError> {
    match mime {
        "image/png" => Ok("png"),
        "image/jpeg" | "image/jpg" => Ok("jpeg"),
        "image/gif" => Ok("gif"),
        "image/webp" => Ok("webp"),
        other => Err(ProviderError::Unsupported(format!("Bedrock does not take images of type `{other}`"))),
    }
}

fn user_blocks(content: Option<&Value>) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::new();
    for p in content_parts(content)? {
        match p {
            Part::Text { text, cache } => {
                out.push(json!({"text": text}));
                if cache {
                    out.push(cache_point());
                }
            }
            // A blob in Converse's JSON protocol is its base64 text.
            Part::Inline { mime, base64 } => out.push(json!({"image": {"format": image_format(&mime)?, "source": {"bytes": base64}}})),
            Part::Url(_) => {
                return Err(ProviderError::Unsupported("Bedrock takes images only as base64 data URLs".into()));
            }
        }
    }
    Ok(out)
}

fn assistant_blocks(m: &Value) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::new();
    let text = content_text(m.get("content"))?;
    if !text.is_empty() {
        out.push(json!({"text": text}));
    }
    for c in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let id = c.get("id").and_then(Value::as_str).ok_or_else(|| bad_request("a tool call needs an id"))?;
        let name = c.pointer("/function/name").and_then(Value::as_str).ok_or_else(|| bad_request("a tool call needs a function name"))?;
        let input = arguments_object(c.pointer("/function/arguments"))?;
        out.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
    }
    Ok(out)
}

fn tool_result(m: &Value) -> Result<Value, ProviderError> {
    let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| bad_request("a tool message needs `tool_call_id`"))?;
    let text = content_text(m.get("content"))?;
    let content = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => json!([{"json": v}]),
        _ => json!([{"text": text}]),
    };
    Ok(json!({"toolResult": {"toolUseId": id, "content": content}}))
}

/// Converse `usage`; Bedrock counts cache reads and writes apart from `inputTokens`, Keyway's
/// [`Usage`] counts them inside `prompt_tokens`.
pub fn usage(u: &Value) -> Option<Usage> {
    let u = u.as_object()?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (read, write) = (n("cacheReadInputTokens"), n("cacheWriteInputTokens"));
    Some(Usage {
        prompt_tokens: n("inputTokens") + read + write,
        completion_tokens: n("outputTokens"),
        cached_tokens: read,
        cache_write_tokens: write,
    })
}

pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// A Converse response -> a `chat.completion`.
pub fn response(v: &Value, model: &str) -> Result<(Value, Option<Usage>), ProviderError> {
    let content = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Protocol("Converse response without output.message.content".into()))?;
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for block in content {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tu) = block.get("toolUse") {
            let id = tu.get("toolUseId").and_then(Value::as_str).unwrap_or("");
            let name = tu.get("name").and_then(Value::as_str).unwrap_or("");
            let args = tu.get("input").cloned().unwrap_or_else(|| json!({}));
            calls.push(tool_call(id, name, &args.to_string()));
        } else if let Some(t) = block.pointer("/reasoningContent/reasoningText/text").and_then(Value::as_str) {
            reasoning.push_str(t);
        }
    }
    let usage = v.get("usage").and_then(usage);
    let finish = finish_reason(v.get("stopReason").and_then(Value::as_str).unwrap_or("end_turn"));
    let body = ChunkMaker::new(model).completion(assistant_message(&text, &reasoning, calls), finish, usage.as_ref());
    Ok((body, usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_translation() {
        let b = json!({
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]},
                {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "done"},
                {"role": "user", "content": "and?"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "max_completion_tokens": 5, "top_p": 0.9, "stop": ["x"],
        });
        let r = request(b.as_object().unwrap()).unwrap();
        assert_eq!(r["system"], json!([{"text": "sys"}, {"cachePoint": {"type": "default"}}]));
        assert_eq!(r["messages"][0]["content"][1], json!({"image": {"format": "png", "source": {"bytes": "aGk="}}}));
        assert_eq!(r["messages"][1]["content"][0], json!({"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}));
        // the tool result and the next user text share one user turn
        assert_eq!(r["messages"][2]["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(r["messages"][2]["content"][0]["toolResult"]["content"], json!([{"text": "done"}]));
        assert_eq!(r["inferenceConfig"], json!({"maxTokens": 5, "topP": 0.9, "stopSequences": ["x"]}));
        assert_eq!(r["toolConfig"]["toolChoice"], json!({"tool": {"name": "f"}}));
        assert_eq!(r["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"], json!({"json": {"type": "object"}}));
        let url = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
        assert!(matches!(request(url.as_object().unwrap()), Err(ProviderError::Unsupported(_))));
    }

    #[test]
    fn response_translation() {
        let v = json!({"output": {"message": {"role": "assistant", "content": [{"text": "ok"}, {"toolUse": {"toolUseId": "t", "name": "f", "input": {"x": 1}}}]}},
                       "stopReason": "tool_use", "usage": {"inputTokens": 5, "outputTokens": 2, "cacheReadInputTokens": 3, "cacheWriteInputTokens": 1}});
        let (b, u) = response(&v, "m").unwrap();
        assert_eq!(b["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(b["choices"][0]["message"]["tool_calls"][0]["id"], "t");
        assert_eq!(u, Some(Usage { prompt_tokens: 9, completion_tokens: 2, cached_tokens: 3, cache_write_tokens: 1 }));
        assert_eq!(b["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("guardrail_intervened"), "content_filter");
        assert_eq!(finish_reason("end_turn"), "stop");
    }
}
