//! The SDK's language-model call options (`LanguageModelV4CallOptions`) -> an OpenAI chat body.

use crate::translate::{invalid_request, TranslateError};
use serde_json::{json, Map, Value};

type R<T> = Result<T, TranslateError>;

/// Translates the body of `POST {base}/language-model` into an OpenAI chat body for `model`
/// (the `ai-language-model-id` header). `providerOptions.gateway` and
/// `providerOptions.bedrock.region` are carried over for routing; the Anthropic and OpenAI
/// options with an OpenAI-body meaning are mapped; other providers' options are dropped, as
/// the SDK's own providers ignore options addressed to another provider.
pub fn vercel_request_to_openai(options: &Map<String, Value>, model: &str, stream: bool) -> R<Map<String, Value>> {
    let prompt = options
        .get("prompt")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_request("`prompt` must be a list of messages"))?;
    let mut messages = Vec::with_capacity(prompt.len());
    for (i, m) in prompt.iter().enumerate() {
        message(m, i, &mut messages)?;
    }
    if messages.is_empty() {
        return Err(invalid_request("`prompt` must hold at least one message"));
    }
    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert("messages".into(), Value::Array(messages));
    let copy = |o: &mut Map<String, Value>, from: &str, to: &str| -> R<()> {
        match options.get(from) {
            None | Some(Value::Null) => Ok(()),
            Some(v @ Value::Number(_)) => {
                o.insert(to.into(), v.clone());
                Ok(())
            }
            Some(_) => Err(invalid_request(format!("`{from}` must be a number"))),
        }
    };
    copy(&mut o, "maxOutputTokens", "max_tokens")?;
    copy(&mut o, "temperature", "temperature")?;
    copy(&mut o, "topP", "top_p")?;
    copy(&mut o, "topK", "top_k")?;
    copy(&mut o, "presencePenalty", "presence_penalty")?;
    copy(&mut o, "frequencyPenalty", "frequency_penalty")?;
    copy(&mut o, "seed", "seed")?;
    match options.get("stopSequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(s)) if s.iter().all(Value::is_string) => {
            if !s.is_empty() {
                o.insert("stop".into(), Value::Array(s.clone()));
            }
        }
        Some(_) => return Err(invalid_request("`stopSequences` must be a list of strings")),
    }
    response_format(options.get("responseFormat"), &mut o)?;
    tools(options, &mut o)?;
    match options.get("reasoning").and_then(Value::as_str) {
        None | Some("provider-default") => {}
        // OpenAI's largest effort is `xhigh`; the SDK's `max` asks for the most there is.
        Some("max") => {
            o.insert("reasoning_effort".into(), json!("xhigh"));
        }
        Some(level) => {
            o.insert("reasoning_effort".into(), json!(level));
        }
    }
    provider_options(options.get("providerOptions"), &mut o)?;
    if stream {
        o.insert("stream".into(), json!(true));
        o.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(o)
}

/// The body of `POST {base}/embedding-model` (`{values, dimensions?, providerOptions?}`) -> an
/// OpenAI embeddings body for `model` (the `ai-model-id` header).
pub fn vercel_embedding_to_openai(body: &Map<String, Value>, model: &str) -> R<Map<String, Value>> {
    let values = match body.get("values") {
        Some(Value::Array(v)) if !v.is_empty() && v.iter().all(Value::is_string) => v.clone(),
        _ => return Err(invalid_request("`values` must be a non-empty list of strings")),
    };
    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert("input".into(), Value::Array(values));
    match body.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Number(_)) => {
            o.insert("dimensions".into(), v.clone());
        }
        Some(_) => return Err(invalid_request("`dimensions` must be a number")),
    }
    provider_options(body.get("providerOptions"), &mut o)?;
    Ok(o)
}

fn provider_options(po: Option<&Value>, o: &mut Map<String, Value>) -> R<()> {
    let po = match po {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid_request("`providerOptions` must be an object")),
    };
    // Routing: read by the planner from the body as the OpenAI routes read it.
    let mut routing = Map::new();
    if let Some(g) = po.get("gateway") {
        routing.insert("gateway".into(), g.clone());
    }
    if let Some(region) = po.get("bedrock").and_then(|b| b.get("region")) {
        routing.insert("bedrock".into(), json!({"region": region}));
    }
    if !routing.is_empty() {
        o.insert("providerOptions".into(), Value::Object(routing));
    }
    if let Some(thinking) = po.get("anthropic").and_then(|a| a.get("thinking")).and_then(Value::as_object) {
        let mut t = Map::new();
        for (k, v) in thinking {
            // The SDK spells Anthropic's fields in camelCase.
            let key = if k == "budgetTokens" { "budget_tokens" } else { k.as_str() };
            t.insert(key.to_owned(), v.clone());
        }
        o.insert("thinking".into(), Value::Object(t));
    }
    if let Some(openai) = po.get("openai").and_then(Value::as_object) {
        for (from, to) in [("reasoningEffort", "reasoning_effort"), ("parallelToolCalls", "parallel_tool_calls"), ("user", "user"), ("serviceTier", "service_tier")] {
            if let Some(v) = openai.get(from).filter(|v| !v.is_null()) {
                o.insert(to.into(), v.clone());
            }
        }
    }
    Ok(())
}

fn response_format(rf: Option<&Value>, o: &mut Map<String, Value>) -> R<()> {
    let Some(rf) = rf.filter(|v| !v.is_null()) else { return Ok(()) };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(()),
        Some("json") => {
            let value = match rf.get("schema").filter(|s| !s.is_null()) {
                None => json!({"type": "json_object"}),
                Some(schema) => {
                    let mut js = json!({"name": rf.get("name").and_then(Value::as_str).unwrap_or("response"), "schema": schema});
                    if let Some(d) = rf.get("description").and_then(Value::as_str) {
                        js["description"] = json!(d);
                    }
                    json!({"type": "json_schema", "json_schema": js})
                }
            };
            o.insert("response_format".into(), value);
            Ok(())
        }
        _ => Err(invalid_request("`responseFormat.type` must be \"text\" or \"json\"")),
    }
}

fn tools(options: &Map<String, Value>, o: &mut Map<String, Value>) -> R<()> {
    let list = match options.get("tools") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(l)) => l,
        Some(_) => return Err(invalid_request("`tools` must be a list")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = t.get("name").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("tools.{i}.name is required")))?;
                let mut f = json!({"name": name, "parameters": t.get("inputSchema").cloned().unwrap_or_else(|| json!({"type": "object"}))});
                if let Some(d) = t.get("description").and_then(Value::as_str) {
                    f["description"] = json!(d);
                }
                if let Some(s) = t.get("strict").and_then(Value::as_bool) {
                    f["strict"] = json!(s);
                }
                out.push(json!({"type": "function", "function": f}));
            }
            Some("provider") => {
                let id = t.get("id").and_then(Value::as_str).unwrap_or("?");
                return Err(invalid_request(format!("tools.{i}: provider-executed tool `{id}` is not available through Keyway; use a function tool")));
            }
            _ => return Err(invalid_request(format!("tools.{i}.type must be \"function\""))),
        }
    }
    if !out.is_empty() {
        o.insert("tools".into(), Value::Array(out));
    }
    let choice = match options.get("toolChoice") {
        None | Some(Value::Null) => return Ok(()),
        Some(c) => c,
    };
    let value = match choice.get("type").and_then(Value::as_str) {
        Some(t @ ("auto" | "none" | "required")) => json!(t),
        Some("tool") => {
            let name = choice.get("toolName").and_then(Value::as_str).ok_or_else(|| invalid_request("`toolChoice.toolName` is required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(invalid_request("`toolChoice.type` must be auto, none, required or tool")),
    };
    o.insert("tool_choice".into(), value);
    Ok(())
}

fn message(m: &Value, i: usize, out: &mut Vec<Value>) -> R<()> {
    let at = format!("prompt.{i}");
    let role = m.get("role").and_then(Value::as_str);
    if role == Some("system") {
        let text = m.get("content").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.content must be a string")))?;
        out.push(json!({"role": "system", "content": text}));
        return Ok(());
    }
    let parts = m.get("content").and_then(Value::as_array).ok_or_else(|| invalid_request(format!("{at}.content must be a list of parts")))?;
    match role {
        Some("user") => {
            let mut content = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                let at = format!("{at}.content.{j}");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => content.push(json!({"type": "text", "text": text_of(p, &at)?})),
                    Some("file") => content.push(file_part(p, &at)?),
                    _ => return Err(invalid_request(format!("{at}: a user part must be text or file"))),
                }
            }
            out.push(json!({"role": "user", "content": simplify(content)}));
        }
        Some("assistant") => out.push(assistant(parts, &at)?),
        Some("tool") => {
            for (j, p) in parts.iter().enumerate() {
                let at = format!("{at}.content.{j}");
                match p.get("type").and_then(Value::as_str) {
                    Some("tool-result") => tool_result(p, &at, out)?,
                    // Approvals are settled by the SDK before the call; nothing for the model.
                    Some("tool-approval-response") => {}
                    _ => return Err(invalid_request(format!("{at}: a tool part must be a tool-result"))),
                }
            }
        }
        _ => return Err(invalid_request(format!("{at}.role must be system, user, assistant or tool"))),
    }
    Ok(())
}

/// One text part is sent as a plain string, which every OpenAI-compatible upstream takes.
fn simplify(content: Vec<Value>) -> Value {
    match content.as_slice() {
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => only["text"].clone(),
        _ => Value::Array(content),
    }
}

fn text_of<'a>(p: &'a Value, at: &str) -> R<&'a str> {
    p.get("text").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.text must be a string")))
}

/// A file part -> `image_url` (images) or `file` (documents) with a data URL; a text file's
/// text as a text part. The SDK sends inline bytes as base64 and URLs as strings.
fn file_part(p: &Value, at: &str) -> R<Value> {
    let media = p.get("mediaType").and_then(Value::as_str).unwrap_or("application/octet-stream");
    let data = p.get("data").ok_or_else(|| invalid_request(format!("{at}.data is required")))?;
    let url = match (data.get("type").and_then(Value::as_str), data) {
        (Some("data"), d) => {
            let b64 = d.get("data").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.data.data must be base64")))?;
            format!("data:{media};base64,{b64}")
        }
        (Some("url"), d) => d.get("url").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.data.url must be a URL")))?.to_owned(),
        (Some("text"), d) => {
            let text = d.get("text").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.data.text must be a string")))?;
            return Ok(json!({"type": "text", "text": text}));
        }
        (Some("reference"), _) => return Err(invalid_request(format!("{at}: provider file references can't be resolved by Keyway; send the file's bytes"))),
        // Older SDKs sent the base64 string or URL directly.
        (None, Value::String(s)) if s.contains("://") || s.starts_with("data:") => s.clone(),
        (None, Value::String(s)) => format!("data:{media};base64,{s}"),
        _ => return Err(invalid_request(format!("{at}.data must be inline data, a URL or text"))),
    };
    if media.starts_with("image/") {
        return Ok(json!({"type": "image_url", "image_url": {"url": url}}));
    }
    if !url.starts_with("data:") {
        return Err(invalid_request(format!("{at}: a {media} file must be sent as data, not a URL")));
    }
    let filename = p.get("filename").and_then(Value::as_str).unwrap_or("file");
    Ok(json!({"type": "file", "file": {"filename": filename, "file_data": url}}))
}

fn assistant(parts: &[Value], at: &str) -> R<Value> {
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for (j, p) in parts.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match p.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(text_of(p, &at)?),
            Some("reasoning") => reasoning.push_str(text_of(p, &at)?),
            Some("tool-call") => {
                // Provider-executed calls ran upstream already; their results aren't the model's input.
                if p.get("providerExecuted").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let id = p.get("toolCallId").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.toolCallId is required")))?;
                let name = p.get("toolName").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.toolName is required")))?;
                let args = match p.get("input") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "{}".to_owned(),
                };
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}));
            }
            // Files, custom and provider-executed results an assistant turn may hold have no
            // OpenAI form in an assistant message.
            Some("file" | "reasoning-file" | "custom" | "tool-result") => {}
            _ => return Err(invalid_request(format!("{at}: unknown assistant part"))),
        }
    }
    let mut m = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !reasoning.is_empty() {
        m["reasoning"] = json!(reasoning);
    }
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    Ok(m)
}

/// A tool result -> a `tool` message (text only, as OpenAI holds it); images it returns follow
/// in a user message.
fn tool_result(p: &Value, at: &str, out: &mut Vec<Value>) -> R<()> {
    let id = p.get("toolCallId").and_then(Value::as_str).ok_or_else(|| invalid_request(format!("{at}.toolCallId is required")))?;
    let output = p.get("output").ok_or_else(|| invalid_request(format!("{at}.output is required")))?;
    let mut media = Vec::new();
    let content = match output.get("type").and_then(Value::as_str) {
        Some("text" | "error-text") => output.get("value").and_then(Value::as_str).unwrap_or_default().to_owned(),
        Some("json" | "error-json") => output.get("value").map(Value::to_string).unwrap_or_else(|| "null".into()),
        Some("execution-denied") => output.get("reason").and_then(Value::as_str).unwrap_or("The tool call was denied.").to_owned(),
        Some("content") => {
            let mut texts = Vec::new();
            for (k, c) in output.get("value").and_then(Value::as_array).into_iter().flatten().enumerate() {
                match c.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(c.get("text").and_then(Value::as_str).unwrap_or_default().to_owned()),
                    Some("file") => media.push(file_part(c, &format!("{at}.output.value.{k}"))?),
                    _ => {}
                }
            }
            texts.join("\n")
        }
        _ => return Err(invalid_request(format!("{at}.output.type is not one the SDK defines"))),
    };
    out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
    if !media.is_empty() {
        out.push(json!({"role": "user", "content": media}));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_full_prompt_becomes_openai_messages() {
        let body = obj(json!({
            "prompt": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "file", "mediaType": "image/png", "data": {"type": "data", "data": "iVBOR"}}]},
                {"role": "assistant", "content": [{"type": "reasoning", "text": "hmm"}, {"type": "tool-call", "toolCallId": "c1", "toolName": "weather", "input": {"city": "Paris"}}]},
                {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "weather", "output": {"type": "json", "value": {"t": 21}}}]}
            ],
            "maxOutputTokens": 50, "temperature": 0.2, "stopSequences": ["END"],
            "tools": [{"type": "function", "name": "weather", "description": "d", "inputSchema": {"type": "object"}}],
            "toolChoice": {"type": "tool", "toolName": "weather"},
            "providerOptions": {"gateway": {"order": ["anthropic"]}, "anthropic": {"thinking": {"type": "enabled", "budgetTokens": 1024}}}
        }));
        let o = vercel_request_to_openai(&body, "openai/gpt-4o-mini", true).unwrap_or_default();
        assert_eq!(o["messages"][0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(o["messages"][1]["content"][1], json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}));
        assert_eq!(o["messages"][2]["reasoning"], "hmm");
        assert_eq!(o["messages"][2]["content"], Value::Null);
        assert_eq!(o["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(o["messages"][3], json!({"role": "tool", "tool_call_id": "c1", "content": "{\"t\":21}"}));
        assert_eq!(o["max_tokens"], 50);
        assert_eq!(o["stop"], json!(["END"]));
        assert_eq!(o["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
        assert_eq!(o["providerOptions"], json!({"gateway": {"order": ["anthropic"]}}));
        assert_eq!(o["thinking"], json!({"type": "enabled", "budget_tokens": 1024}));
        assert_eq!(o["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn json_response_format_becomes_json_schema() {
        let body = obj(json!({"prompt": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
            "responseFormat": {"type": "json", "schema": {"type": "object"}, "name": "recipe"}}));
        let o = vercel_request_to_openai(&body, "m", false).unwrap_or_default();
        assert_eq!(o["response_format"], json!({"type": "json_schema", "json_schema": {"name": "recipe", "schema": {"type": "object"}}}));
        assert_eq!(o["messages"][0]["content"], "x");
        assert!(o.get("stream").is_none());
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        for (body, needle) in [
            (json!({}), "`prompt`"),
            (json!({"prompt": []}), "at least one"),
            (json!({"prompt": [{"role": "robot", "content": []}]}), "prompt.0.role"),
            (json!({"prompt": [{"role": "user", "content": [{"type": "file", "mediaType": "application/pdf", "data": {"type": "url", "url": "https://x/y.pdf"}}]}]}), "not a URL"),
            (json!({"prompt": [{"role": "user", "content": "hi"}]}), "prompt.0.content"),
            (json!({"prompt": [{"role": "user", "content": [{"type": "text", "text": "x"}]}], "tools": [{"type": "provider", "id": "openai.web_search", "name": "s", "args": {}}]}), "openai.web_search"),
            (json!({"prompt": [{"role": "user", "content": [{"type": "text", "text": "x"}]}], "temperature": "hot"}), "`temperature`"),
        ] {
            match vercel_request_to_openai(&obj(body), "m", false) {
                Err(TranslateError::InvalidRequest(m)) => assert!(m.contains(needle), "{m} lacks {needle}"),
                other => panic!("expected an invalid request naming {needle}, got {other:?}"),
            }
        }
    }

    #[test]
    fn embeddings_take_values() {
        let o = vercel_embedding_to_openai(&obj(json!({"values": ["a", "b"], "dimensions": 8})), "openai/text-embedding-3-small").unwrap_or_default();
        assert_eq!(o["input"], json!(["a", "b"]));
        assert_eq!(o["dimensions"], 8);
        assert!(vercel_embedding_to_openai(&obj(json!({"values": []})), "m").is_err());
    }
}
