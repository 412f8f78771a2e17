//! OpenAI chat <-> Gemini `generateContent`, for AI Studio and Vertex alike.

use crate::openai_shape::{
    arguments_object, assistant_message, bad_request, content_parts, content_text, max_tokens, stop_sequences, tool_call,
    tool_call_names, ChunkMaker, Part,
};
use crate::error::ProviderError;
use crate::stream::Translate;
use crate::sse::SseEvent;
use crate::types::StreamEvent;
use keyway_core::Usage;
use serde_json::{json, Map, Value};

/// An OpenAI chat body -> a Gemini `GenerateContentRequest`.
pub fn request(body: &Map<String, Value>) -> Result<Value, ProviderError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad_request("`messages` must be a non-empty array"))?;
    let names = tool_call_names(messages);
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let (role, parts) = match role {
            "system" | "developer" => {
                system.push(json!({"text": content_text(m.get("content"))?}));
                continue;
            }
            "user" => ("user", user_parts(m.get("content"))?),
            "assistant" => ("model", assistant_parts(m)?),
            "tool" => ("user", vec![function_response(m, &names)?]),
            other => return Err(bad_request(&format!("unknown message role `{other}`"))),
        };
        if parts.is_empty() {
            continue;
        }
        // Gemini wants turns to alternate; consecutive tool results belong in one turn.
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(p) = last["parts"].as_array_mut() {
                    p.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let tool_choice = body.get("tool_choice");
    if let Some(tools) = body.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        let decls = tools
            .iter()
            .map(|t| {
                let f = t.get("function").ok_or_else(|| ProviderError::Unsupported("only `function` tools are supported".into()))?;
                let mut d = Map::new();
                d.insert("name".into(), f.get("name").cloned().ok_or_else(|| bad_request("a tool needs a name"))?);
                if let Some(desc) = f.get("description") {
                    d.insert("description".into(), desc.clone());
                }
                if let Some(p) = f.get("parameters") {
                    d.insert("parameters".into(), schema(p));
                }
                Ok(Value::Object(d))
            })
            .collect::<Result<Vec<_>, ProviderError>>()?;
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let config = match tool_choice {
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            _ => None,
        };
        if let Some(c) = config {
            out.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
        }
    }
    let mut gen = Map::new();
    if let Some(n) = max_tokens(body) {
        gen.insert("maxOutputTokens".into(), json!(n));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                       ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")] {
        if let Some(v) = body.get(from).filter(|v| v.is_number()) {
            gen.insert(to.into(), v.clone());
        }
    }
    let stops = stop_sequences(body);
    if !stops.is_empty() {
        gen.insert("stopSequences".into(), json!(stops));
    }
    match body.get("response_format").and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_object") => {
            gen.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            gen.insert("responseMimeType".into(), json!("application/json"));
            if let Some(s) = body.get("response_format").and_then(|f| f.pointer("/json_schema/schema")) {
                gen.insert("responseSchema".into(), schema(s));
            }
        }
        _ => {}
    }
    if !gen.is_empty() {
        out.insert("generationConfig".into(), Value::Object(gen));
    }
    Ok(Value::Object(out))
}

/// Gemini's `Schema` is an OpenAPI subset: drop the JSON-Schema keywords it refuses.
fn schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "additionalProperties" | "strict" | "$id"))
                .map(|(k, v)| (k.clone(), schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(schema).collect()),
        other => other.clone(),
    }
}

fn user_parts(content: Option<&Value>) -> Result<Vec<Value>, ProviderError> {
    content_parts(content)?
        .into_iter()
        .map(|p| {
            Ok(match p {
                Part::Text { text, .. } => json!({"text": text}),
                Part::Inline { mime, base64 } => json!({"inlineData": {"mimeType": mime, "data": base64}}),
                Part::Url(url) => json!({"fileData": {"mimeType": mime_from_url(&url), "fileUri": url}}),
            })
        })
        .collect()
}

fn mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

fn assistant_parts(m: &Value) -> Result<Vec<Value>, ProviderError> {
    let mut parts = Vec::new();
    let text = content_text(m.get("content"))?;
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    for c in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let name = c.pointer("/function/name").and_then(Value::as_str).ok_or_else(|| bad_request("a tool call needs a function name"))?;
        let args = arguments_object(c.pointer("/function/arguments"))?;
        parts.push(json!({"functionCall": {"name": name, "args": args}}));
    }
    Ok(parts)
}

fn function_response(m: &Value, names: &std::collections::HashMap<String, String>) -> Result<Value, ProviderError> {
    let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .or_else(|| names.get(id).map(String::as_str))
        .ok_or_else(|| bad_request("a tool message must answer a tool call made earlier in `messages`"))?;
    let text = content_text(m.get("content"))?;
    // `response` must be an object: a JSON object result goes as is, anything else is wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => json!({"content": v}),
        Err(_) => json!({"content": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// `usageMetadata` -> [`Usage`]; thinking tokens are billed as output.
pub fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usageMetadata")?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: n("promptTokenCount"),
        completion_tokens: n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cached_tokens: n("cachedContentTokenCount"),
        cache_write_tokens: 0,
    })
}

pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// A whole `GenerateContentResponse` -> a `chat.completion`.
pub fn response(v: &Value, model: &str) -> Result<(Value, Option<Usage>), ProviderError> {
    if let Some(err) = stream_error(v) {
        return Err(err);
    }
    let maker = ChunkMaker::new(model);
    let usage = usage(v);
    let cand = v.pointer("/candidates/0");
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for p in cand.and_then(|c| c.pointer("/content/parts")).and_then(Value::as_array).into_iter().flatten() {
        if let Some(fc) = p.get("functionCall") {
            calls.push(function_call(fc, calls.len()));
        } else if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                reasoning.push_str(t);
            } else {
                text.push_str(t);
            }
        }
    }
    let finish = match cand.and_then(|c| c.get("finishReason")).and_then(Value::as_str) {
        Some(r) => finish_reason(r, !calls.is_empty()),
        // No candidate at all: the prompt itself was blocked.
        None if v.pointer("/promptFeedback/blockReason").is_some() => "content_filter",
        None => finish_reason("STOP", !calls.is_empty()),
    };
    let body = maker.completion(assistant_message(&text, &reasoning, calls), finish, usage.as_ref());
    Ok((body, usage))
}

fn function_call(fc: &Value, index: usize) -> Value {
    let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
    let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
    let id = fc.get("id").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("call_{index}"));
    tool_call(&id, name, &args.to_string())
}

/// An `{"error": {code, message, status}}` object (a whole body, or an SSE event after a 200).
pub fn stream_error(v: &Value) -> Option<ProviderError> {
    let e = v.get("error")?;
    let message = e.get("message").and_then(Value::as_str).unwrap_or("upstream error").to_owned();
    let code = e.get("code").and_then(Value::as_u64).unwrap_or(500);
    let status = e.get("status").and_then(Value::as_str).unwrap_or("");
    Some(match (code, status) {
        (429, _) | (_, "RESOURCE_EXHAUSTED") => ProviderError::RateLimited { status: 429, retry_after: None, message, body: None },
        (401 | 403, _) | (_, "UNAUTHENTICATED" | "PERMISSION_DENIED") => ProviderError::Auth { status: code.clamp(401, 403) as u16, message, body: None },
        (400..=499, _) => ProviderError::BadRequest { status: code as u16, message, body: None },
        _ => ProviderError::Upstream5xx { status: 502, message },
    })
}

/// Gemini SSE events (`data: GenerateContentResponse`) -> OpenAI chunks.
pub struct StreamTranslator {
    maker: ChunkMaker,
    started: bool,
    tool_calls: usize,
    finished: bool,
    usage: Option<Usage>,
}

impl StreamTranslator {
    pub fn new(model: &str) -> Self {
        Self { maker: ChunkMaker::new(model), started: false, tool_calls: 0, finished: false, usage: None }
    }
}

impl Translate for StreamTranslator {
    type Item = SseEvent;

    fn item(&mut self, ev: SseEvent) -> Vec<Result<StreamEvent, ProviderError>> {
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => return vec![Err(ProviderError::Protocol(format!("invalid JSON in stream: {e}")))],
        };
        if let Some(err) = stream_error(&v) {
            return vec![Err(err)];
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(Ok(self.maker.chunk(json!({"role": "assistant", "content": ""}), None)));
        }
        // Usage arrives cumulatively; keep the last and report it once at the end.
        if let Some(u) = usage(&v) {
            self.usage = Some(u);
        }
        let cand = v.pointer("/candidates/0");
        for p in cand.and_then(|c| c.pointer("/content/parts")).and_then(Value::as_array).into_iter().flatten() {
            if let Some(fc) = p.get("functionCall") {
                let mut call = function_call(fc, self.tool_calls);
                call["index"] = json!(self.tool_calls);
                self.tool_calls += 1;
                out.push(Ok(self.maker.chunk(json!({"tool_calls": [call]}), None)));
            } else if let Some(t) = p.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let key = if p.get("thought").and_then(Value::as_bool) == Some(true) { "reasoning" } else { "content" };
                out.push(Ok(self.maker.chunk(json!({ key: t }), None)));
            }
        }
        let reason = cand.and_then(|c| c.get("finishReason")).and_then(Value::as_str);
        let blocked = cand.is_none() && v.pointer("/promptFeedback/blockReason").is_some();
        if !self.finished && (reason.is_some() || blocked) {
            self.finished = true;
            let finish = if blocked { "content_filter" } else { finish_reason(reason.unwrap_or("STOP"), self.tool_calls > 0) };
            out.push(Ok(self.maker.chunk(json!({}), Some(finish))));
        }
        out
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, ProviderError>> {
        if !self.finished {
            return vec![Err(ProviderError::Protocol("stream ended before a finish reason".into()))];
        }
        match self.usage.take() {
            Some(u) => vec![Ok(self.maker.usage_chunk(&u)), Ok(StreamEvent::Usage(u))],
            None => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn request_translation() {
        let b = body(json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "weather?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\":21}"},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "additionalProperties": false, "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required", "max_tokens": 10, "temperature": 0.5, "stop": "END",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "$schema": "x"}}},
        }));
        let r = request(&b).unwrap();
        assert_eq!(r["systemInstruction"], json!({"parts": [{"text": "be brief"}]}));
        assert_eq!(r["contents"][0]["parts"][1], json!({"inlineData": {"mimeType": "image/png", "data": "aGk="}}));
        assert_eq!(r["contents"][1], json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}));
        assert_eq!(r["contents"][2]["parts"][0], json!({"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}));
        assert!(r.pointer("/tools/0/functionDeclarations/0/parameters/additionalProperties").is_none());
        assert_eq!(r["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
        assert_eq!(r["generationConfig"]["maxOutputTokens"], 10);
        assert_eq!(r["generationConfig"]["stopSequences"], json!(["END"]));
        assert_eq!(r["generationConfig"]["responseSchema"], json!({"type": "object"}));
    }

    #[test]
    fn response_translation() {
        let v = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP"}],
                       "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "cachedContentTokenCount": 4, "thoughtsTokenCount": 2}});
        let (b, u) = response(&v, "gemini-x").unwrap();
        assert_eq!(b["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(b["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(u, Some(Usage { prompt_tokens: 10, completion_tokens: 5, cached_tokens: 4, cache_write_tokens: 0 }));
        let safety = json!({"candidates": [{"content": {"parts": []}, "finishReason": "SAFETY"}]});
        assert_eq!(response(&safety, "m").unwrap().0["choices"][0]["finish_reason"], "content_filter");
        let max = json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]});
        assert_eq!(response(&max, "m").unwrap().0["choices"][0]["finish_reason"], "length");
    }
}
