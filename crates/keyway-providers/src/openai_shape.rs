//! OpenAI chat shapes shared by every translation and adapter (Gemini, Vertex, Bedrock, Anthropic):
//! reading the request's messages and parameters, and building `chat.completion` and
//! `chat.completion.chunk` objects. Imports no adapter and no translation.

use crate::error::ProviderError;
use crate::types::StreamEvent;
use crate::usage::openai_usage_json;
use base64::Engine;
use bytes::Bytes;
use keyway_core::Usage;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The id, model and timestamp every chunk of one response repeats.
#[derive(Debug, Clone)]
pub struct ChunkMaker {
    pub id: String,
    pub model: String,
    pub created: i64,
}

impl ChunkMaker {
    pub fn new(model: &str) -> Self {
        Self { id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()), model: model.to_owned(), created: chrono::Utc::now().timestamp() }
    }

    /// One `chat.completion.chunk` with a single choice.
    pub fn chunk(&self, delta: Value, finish: Option<&str>) -> StreamEvent {
        let v = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                       "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        let content = chunk_has_content(&v);
        StreamEvent::Chunk { json: Bytes::from(v.to_string()), content, shape: None }
    }

    /// The trailing usage chunk OpenAI sends with `stream_options.include_usage` (empty choices).
    pub fn usage_chunk(&self, u: &Usage) -> StreamEvent {
        let v = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                       "choices": [], "usage": openai_usage_json(u)});
        StreamEvent::Chunk { json: Bytes::from(v.to_string()), content: false, shape: None }
    }

    /// A whole `chat.completion`.
    pub fn completion(&self, message: Value, finish: &str, usage: Option<&Usage>) -> Value {
        let mut v = json!({"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                           "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}]});
        if let Some(u) = usage {
            v["usage"] = openai_usage_json(u);
        }
        v
    }
}

/// An assistant message from collected text and tool calls (OpenAI puts `null` content beside tool calls).
pub fn assistant_message(text: &str, reasoning: &str, tool_calls: Vec<Value>) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) };
    m.insert("content".into(), content);
    if !reasoning.is_empty() {
        m.insert("reasoning".into(), json!(reasoning));
    }
    if !tool_calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    Value::Object(m)
}

/// One OpenAI `tool_calls` entry.
pub fn tool_call(id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// A part of a message's `content`, as the translating adapters need it.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text { text: String, cache: bool },
    /// A `data:` URL, decoded and checked: media type and base64 payload.
    Inline { mime: String, base64: String },
    /// Any other image URL.
    Url(String),
}

/// `content` as a string or an array of parts -> [`Part`]s. Unknown part types are an error,
/// so that nothing the client sent is dropped silently.
pub fn content_parts(content: Option<&Value>) -> Result<Vec<Part>, ProviderError> {
    let cache = |p: &Value| p.get("cache_control").is_some_and(|c| !c.is_null());
    match content {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![Part::Text { text: s.clone(), cache: false }]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(Part::Text { text: p.get("text").and_then(Value::as_str).unwrap_or("").to_owned(), cache: cache(p) }),
                Some("image_url") => {
                    let url = p
                        .pointer("/image_url/url")
                        .or_else(|| p.get("image_url"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad_request("an image_url part needs `image_url.url`"))?;
                    Ok(match parse_data_url(url)? {
                        Some((mime, base64)) => Part::Inline { mime, base64 },
                        None => Part::Url(url.to_owned()),
                    })
                }
                Some(other) => Err(ProviderError::Unsupported(format!("content part type `{other}` is not supported by this provider"))),
                None => Err(bad_request("each content part needs a `type`")),
            })
            .collect(),
        Some(_) => Err(bad_request("`content` must be a string or an array of parts")),
    }
}

/// The text of a message's content (tool results, system prompts), parts joined.
pub fn content_text(content: Option<&Value>) -> Result<String, ProviderError> {
    let mut out = String::new();
    for p in content_parts(content)? {
        match p {
            Part::Text { text, .. } => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&text);
            }
            _ => return Err(ProviderError::Unsupported("only text is supported in system and tool messages".into())),
        }
    }
    Ok(out)
}

/// `data:image/png;base64,....` -> `(image/png, payload)`; `None` for other URLs. The payload is
/// decoded once to refuse a corrupt one here rather than upstream.
pub fn parse_data_url(url: &str) -> Result<Option<(String, String)>, ProviderError> {
    let Some(rest) = url.strip_prefix("data:") else { return Ok(None) };
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad_request("a data URL needs a `,`"))?;
    let mime = meta
        .strip_suffix(";base64")
        .ok_or_else(|| ProviderError::Unsupported("only base64 data URLs are supported".into()))?;
    if mime.is_empty() || !mime.contains('/') {
        return Err(bad_request("a data URL needs a media type"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad_request("the data URL's base64 payload does not decode"))?;
    Ok(Some((mime.to_ascii_lowercase(), data.trim().to_owned())))
}

pub fn bad_request(message: &str) -> ProviderError {
    ProviderError::BadRequest { status: 400, message: message.to_owned(), body: None }
}

/// `max_completion_tokens` (current) or `max_tokens` (legacy).
pub fn max_tokens(body: &Map<String, Value>) -> Option<u64> {
    body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).and_then(Value::as_u64)
}

/// `stop` as a string or a list.
pub fn stop_sequences(body: &Map<String, Value>) -> Vec<String> {
    match body.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => vec![],
    }
}

/// Tool-call id -> function name, from the assistant turns (tool results name only the id).
pub fn tool_call_names(messages: &[Value]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for m in messages {
        for c in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(name)) = (c.get("id").and_then(Value::as_str), c.pointer("/function/name").and_then(Value::as_str)) {
                out.insert(id.to_owned(), name.to_owned());
            }
        }
    }
    out
}

/// A tool call's `arguments` string as a JSON object (providers that take structured input).
pub fn arguments_object(args: Option<&Value>) -> Result<Value, ProviderError> {
    match args {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|_| bad_request("tool call `arguments` is not valid JSON")),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(bad_request("tool call `arguments` must be a JSON string")),
    }
}

/// Whether a chunk carries output a client would see (and so forbids a silent retry).
pub fn chunk_has_content(chunk: &Value) -> bool {
    chunk.get("choices").and_then(Value::as_array).is_some_and(|choices| {
        choices.iter().any(|c| {
            let d = c.get("delta");
            let text = d.and_then(|d| d.get("content")).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
            let tools = d.and_then(|d| d.get("tool_calls")).is_some_and(|t| !t.is_null());
            let refusal = d.and_then(|d| d.get("refusal")).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
            let finish = c.get("finish_reason").is_some_and(|f| !f.is_null());
            text || tools || refusal || finish
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(parse_data_url("data:image/PNG;base64,aGk=").ok().flatten(), Some(("image/png".into(), "aGk=".into())));
        assert_eq!(parse_data_url("https://x/y.png").ok().flatten(), None);
        assert!(parse_data_url("data:image/png;base64,@@@").is_err());
        assert!(parse_data_url("data:text/plain,hi").is_err());
    }

    #[test]
    fn parts_and_text() {
        let c = json!([{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}, {"type": "image_url", "image_url": {"url": "https://i/x.png"}}]);
        let parts = content_parts(Some(&c)).unwrap();
        assert_eq!(parts[0], Part::Text { text: "a".into(), cache: true });
        assert_eq!(parts[1], Part::Url("https://i/x.png".into()));
        assert!(content_parts(Some(&json!([{"type": "audio"}]))).is_err());
        assert_eq!(content_text(Some(&json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]))).unwrap(), "a\nb");
    }
}
