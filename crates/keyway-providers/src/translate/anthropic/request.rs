//! OpenAI chat request -> Anthropic Messages request.
//!
//! Anthropic rejects unknown fields, so the body is rebuilt field by field: what has an Anthropic
//! equivalent is mapped, OpenAI-only fields (`n`, `logprobs`, `response_format`, ...) are dropped.

use crate::translate::{invalid_request, TranslateError};
use serde_json::{json, Map, Value};

/// `max_tokens` is required by Anthropic; OpenAI clients often leave it out.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

type R<T> = Result<T, TranslateError>;

/// Translates an OpenAI chat body into an Anthropic Messages body for upstream model `model`.
pub fn openai_request_to_anthropic(body: &Map<String, Value>, model: &str) -> R<Map<String, Value>> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_request("`messages` must be an array"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_request(format!("messages[{i}].role is required")))?;
        match role {
            // Anthropic has no mid-conversation system turn: every system text goes to `system`.
            "system" | "developer" => system.extend(system_blocks(m.get("content"), i)?),
            "user" => push(&mut out, "user", user_content(m.get("content"), i)?),
            "assistant" => {
                if let Some(c) = assistant_content(m, i)? {
                    push(&mut out, "assistant", c);
                }
            }
            "tool" => push(&mut out, "user", Value::Array(vec![tool_result(m, i)?])),
            other => return Err(invalid_request(format!("messages[{i}].role `{other}` is not supported"))),
        }
    }
    if out.is_empty() {
        return Err(invalid_request("`messages` must hold at least one user or assistant message"));
    }

    let mut a = Map::new();
    a.insert("model".into(), json!(model));
    a.insert("max_tokens".into(), json!(max_tokens(body)?));
    if let Some(s) = system_value(system) {
        a.insert("system".into(), s);
    }
    a.insert(
        "messages".into(),
        Value::Array(out.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect()),
    );
    tools(body, &mut a)?;
    if let Some(stop) = stop_sequences(body.get("stop"))? {
        a.insert("stop_sequences".into(), stop);
    }
    if let Some(t) = body.get("temperature").filter(|v| !v.is_null()) {
        let f = t.as_f64().ok_or_else(|| invalid_request("`temperature` must be a number"))?;
        // OpenAI allows 0..=2, Anthropic 0..=1: clamp rather than have the upstream refuse.
        a.insert("temperature".into(), if f > 1.0 { json!(1) } else { t.clone() });
    }
    for k in ["top_p", "top_k", "thinking"] {
        // `top_k` and `thinking` are Anthropic's own; OpenRouter-style clients send them as is.
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            a.insert(k.into(), v.clone());
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        a.insert("stream".into(), json!(true));
    }
    if let Some(user) = body.get("user").and_then(Value::as_str).filter(|u| !u.is_empty()) {
        a.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(a)
}

/// Appends a turn, merging it into the previous one when the role repeats: Anthropic wants
/// alternating turns, and consecutive `tool` answers must become one user turn.
fn push(out: &mut Vec<(&'static str, Value)>, role: &'static str, content: Value) {
    if let Some((last_role, last)) = out.last_mut() {
        if *last_role == role {
            let mut blocks = into_blocks(std::mem::take(last));
            blocks.extend(into_blocks(content));
            *last = Value::Array(blocks);
            return;
        }
    }
    out.push((role, content));
}

fn into_blocks(content: Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn max_tokens(body: &Map<String, Value>) -> R<u64> {
    for k in ["max_completion_tokens", "max_tokens"] {
        match body.get(k) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => return Ok(n),
                _ => return Err(invalid_request(format!("`{k}` must be a positive integer"))),
            },
        }
    }
    Ok(DEFAULT_MAX_TOKENS)
}

fn stop_sequences(stop: Option<&Value>) -> R<Option<Value>> {
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(a)) if a.is_empty() => Ok(None),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(Some(Value::Array(a.clone()))),
        Some(_) => Err(invalid_request("`stop` must be a string or a list of strings")),
    }
}

/// Plain text joins into one string; any `cache_control` keeps the block form so it survives.
fn system_value(blocks: Vec<Value>) -> Option<Value> {
    if blocks.is_empty() {
        return None;
    }
    if blocks.iter().any(|b| b.get("cache_control").is_some()) {
        return Some(Value::Array(blocks));
    }
    let texts: Vec<&str> = blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    Some(Value::String(texts.join("\n\n")))
}

fn system_blocks(content: Option<&Value>, i: usize) -> R<Vec<Value>> {
    match content {
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => text_block(p, i),
                _ => Err(invalid_request(format!("messages[{i}]: system messages may hold only text"))),
            })
            .collect(),
        _ => Err(invalid_request(format!("messages[{i}].content must be a string or a list of parts"))),
    }
}

fn text_block(p: &Value, i: usize) -> R<Value> {
    let text = p
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_request(format!("messages[{i}]: a text part needs `text`")))?;
    let mut b = json!({"type": "text", "text": text});
    copy_cache_control(p, &mut b);
    Ok(b)
}

/// OpenRouter lets clients mark parts with Anthropic's `cache_control`; keep it.
fn copy_cache_control(from: &Value, to: &mut Value) {
    if let (Some(cc), Some(o)) = (from.get("cache_control"), to.as_object_mut()) {
        o.insert("cache_control".into(), cc.clone());
    }
}

fn user_content(content: Option<&Value>, i: usize) -> R<Value> {
    match content {
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts.iter().map(|p| part(p, i)).collect::<R<Vec<_>>>().map(Value::Array),
        _ => Err(invalid_request(format!("messages[{i}].content must be a string or a list of parts"))),
    }
}

fn part(p: &Value, i: usize) -> R<Value> {
    let mut block = match p.get("type").and_then(Value::as_str) {
        Some("text") => return text_block(p, i),
        Some("image_url") => {
            let url = match p.get("image_url") {
                Some(Value::String(u)) => Some(u.as_str()),
                Some(o) => o.get("url").and_then(Value::as_str),
                None => None,
            }
            .ok_or_else(|| invalid_request(format!("messages[{i}]: an image_url part needs `image_url.url`")))?;
            json!({"type": "image", "source": url_source(url, i)?})
        }
        Some("file") => {
            let data = p
                .pointer("/file/file_data")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_request(format!("messages[{i}]: only inline `file.file_data` files can be sent to Anthropic")))?;
            json!({"type": "document", "source": url_source(data, i)?})
        }
        Some(other) => return Err(invalid_request(format!("messages[{i}]: content part `{other}` is not supported by Anthropic"))),
        None => return Err(invalid_request(format!("messages[{i}]: a content part needs `type`"))),
    };
    copy_cache_control(p, &mut block);
    Ok(block)
}

/// `data:<media>;base64,<data>` -> a base64 source; an http(s) URL -> a url source.
fn url_source(url: &str, i: usize) -> R<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid_request(format!("messages[{i}]: malformed data URL")))?;
        let media = meta
            .strip_suffix(";base64")
            .ok_or_else(|| invalid_request(format!("messages[{i}]: data URLs must be base64-encoded")))?;
        return Ok(json!({"type": "base64", "media_type": media, "data": data}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(invalid_request(format!("messages[{i}]: a URL must be http(s) or a data URL")))
}

/// The assistant turn as Anthropic content; `None` when it holds nothing (Anthropic refuses empty turns).
fn assistant_content(m: &Value, i: usize) -> R<Option<Value>> {
    let mut blocks = Vec::new();
    match m.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let has_tools = m.get("tool_calls").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
            if !has_tools {
                return Ok((!s.is_empty()).then(|| Value::String(s.clone())));
            }
            if !s.is_empty() {
                blocks.push(json!({"type": "text", "text": s}));
            }
        }
        Some(Value::Array(parts)) => {
            for p in parts {
                let text = match p.get("type").and_then(Value::as_str) {
                    Some("text") => p.get("text"),
                    Some("refusal") => p.get("refusal"),
                    _ => return Err(invalid_request(format!("messages[{i}]: assistant parts must be text or refusal"))),
                };
                let text = text.and_then(Value::as_str).unwrap_or_default();
                if !text.is_empty() {
                    let mut b = json!({"type": "text", "text": text});
                    copy_cache_control(p, &mut b);
                    blocks.push(b);
                }
            }
        }
        Some(_) => return Err(invalid_request(format!("messages[{i}].content must be a string or a list of parts"))),
    }
    for tc in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let id = tc.get("id").and_then(Value::as_str);
        let name = tc.pointer("/function/name").and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err(invalid_request(format!("messages[{i}]: a tool call needs `id` and `function.name`")));
        };
        let args = tc.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("");
        let input = if args.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str::<Value>(args) {
                Ok(v @ Value::Object(_)) => v,
                _ => return Err(invalid_request(format!("messages[{i}]: tool call `{id}` arguments are not a JSON object"))),
            }
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok((!blocks.is_empty()).then_some(Value::Array(blocks)))
}

fn tool_result(m: &Value, i: usize) -> R<Value> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_request(format!("messages[{i}]: a tool message needs `tool_call_id`")))?;
    let content = match m.get("content") {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => Value::Array(parts.iter().map(|p| part(p, i)).collect::<R<Vec<_>>>()?),
        Some(_) => return Err(invalid_request(format!("messages[{i}].content must be a string or a list of parts"))),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

fn tools(body: &Map<String, Value>, a: &mut Map<String, Value>) -> R<()> {
    let Some(list) = body.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) else {
        // `tool_choice` without tools means nothing to Anthropic (and it would refuse it).
        return Ok(());
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str).is_some_and(|ty| ty != "function") {
            return Err(invalid_request(format!("tools[{i}]: only function tools can be sent to Anthropic")));
        }
        let f = t.get("function").ok_or_else(|| invalid_request(format!("tools[{i}].function is required")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_request(format!("tools[{i}].function.name is required")))?;
        let mut tool = json!({"name": name});
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            tool["description"] = json!(d);
        }
        tool["input_schema"] = match f.get("parameters") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => json!({"type": "object", "properties": {}}),
        };
        copy_cache_control(t, &mut tool);
        out.push(tool);
    }
    a.insert("tools".into(), Value::Array(out));

    let mut choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => return Err(invalid_request(format!("`tool_choice` `{other}` is not supported"))),
        }),
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_request("`tool_choice` object needs `function.name`"))?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if body.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c.get("type").and_then(Value::as_str) != Some("none") {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice {
        a.insert("tool_choice".into(), c);
    }
    Ok(())
}
