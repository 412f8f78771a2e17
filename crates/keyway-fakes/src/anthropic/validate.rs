//! The checks Anthropic's API makes on a Messages body, with its error wording, so that a
//! translation bug shows up as the 400 the real API would answer.

use serde_json::{Map, Value};

type R = Result<(), String>;

/// Top-level fields the Messages API accepts; anything else is refused.
const FIELDS: [&str; 17] = [
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers",
    "context_management",
];

pub fn request(req: &Value) -> R {
    let Some(body) = req.as_object() else {
        return Err("body must be a JSON object".into());
    };
    if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("{k}: Extra inputs are not permitted"));
    }
    if body.get("model").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("model: Field required".into());
    }
    match body.get("max_tokens") {
        None => return Err("max_tokens: Field required".into()),
        Some(v) if v.as_u64().is_none_or(|n| n < 1) => return Err("max_tokens: Input should be a valid integer greater than 0".into()),
        _ => {}
    }
    if let Some(t) = body.get("temperature") {
        if t.as_f64().is_none_or(|t| !(0.0..=1.0).contains(&t)) {
            return Err("temperature: Input should be less than or equal to 1".into());
        }
    }
    if let Some(s) = body.get("stop_sequences") {
        if !s.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return Err("stop_sequences: Input should be a valid list of strings".into());
        }
    }
    if let Some(m) = body.get("metadata") {
        if let Some(k) = m.as_object().and_then(|m| m.keys().find(|k| *k != "user_id")) {
            return Err(format!("metadata.{k}: Extra inputs are not permitted"));
        }
    }
    if let Some(t) = body.get("service_tier") {
        if !matches!(t.as_str(), Some("auto" | "standard_only")) {
            return Err("service_tier: Input should be 'auto' or 'standard_only'".into());
        }
    }
    let thinking = thinking(body)?;
    system(body)?;
    tools(body)?;
    messages(body)?;
    if thinking {
        final_assistant_starts_with_thinking(body)?;
    }
    Ok(())
}

/// The fake's signature of a thinking text (the real API's is opaque; it checks it the same way).
pub fn signature(thinking: &str) -> String {
    // FNV-1a: stable, and any change to the text changes it.
    let h = thinking.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("EqQBfake{h:016x}")
}

/// `thinking`: `{"type":"enabled","budget_tokens":N}` with 1024 <= N < max_tokens, or disabled.
/// Returns whether it is enabled.
fn thinking(body: &Map<String, Value>) -> Result<bool, String> {
    let Some(t) = body.get("thinking") else { return Ok(false) };
    match t.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(false),
        Some("enabled") => {
            let budget = t.get("budget_tokens").and_then(Value::as_u64).ok_or("thinking.enabled.budget_tokens: Field required")?;
            if budget < 1024 {
                return Err("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".into());
            }
            if body.get("max_tokens").and_then(Value::as_u64).is_some_and(|m| budget >= m) {
                return Err("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size".into());
            }
            if body.get("temperature").and_then(Value::as_f64).is_some_and(|t| t != 1.0) {
                return Err("`temperature` may only be set to 1 when thinking is enabled or in interleaved thinking mode. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility".into());
            }
            Ok(true)
        }
        _ => Err("thinking: Input tag does not match any of the expected tags: 'disabled', 'enabled'".into()),
    }
}

/// With thinking on, the assistant turn that made the last tool calls must start with its
/// thinking block (the client sends it back): what breaks when a gateway drops thinking blocks.
fn final_assistant_starts_with_thinking(body: &Map<String, Value>) -> R {
    let Some(msgs) = body.get("messages").and_then(Value::as_array) else { return Ok(()) };
    let Some((i, last)) = msgs.iter().enumerate().rev().find(|(_, m)| m.get("role").and_then(Value::as_str) == Some("assistant")) else {
        return Ok(());
    };
    let Some(blocks) = last.get("content").and_then(Value::as_array) else { return Ok(()) };
    if !blocks.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("tool_use")) {
        return Ok(());
    }
    match blocks.first().and_then(|b| b.get("type")).and_then(Value::as_str) {
        Some("thinking" | "redacted_thinking") => Ok(()),
        other => Err(format!(
            "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
            other.unwrap_or("none")
        )),
    }
}

fn system(body: &Map<String, Value>) -> R {
    match body.get("system") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => blocks.iter().enumerate().try_for_each(|(i, b)| {
            if b.get("type").and_then(Value::as_str) == Some("text") && b.get("text").is_some_and(Value::is_string) {
                Ok(())
            } else {
                Err(format!("system.{i}: Input should be a valid text block"))
            }
        }),
        Some(_) => Err("system: Input should be a valid string or list of text blocks".into()),
    }
}

fn tools(body: &Map<String, Value>) -> R {
    for (i, t) in body.get("tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if t.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(format!("tools.{i}.name: Field required"));
        }
        // Server tools (`web_search_20250305`, ...) take their own settings and no input_schema.
        if t.get("type").and_then(Value::as_str).is_some_and(|ty| ty != "custom") {
            continue;
        }
        if t.pointer("/input_schema/type").and_then(Value::as_str) != Some("object") {
            return Err(format!("tools.{i}.input_schema.type: Input should be 'object'"));
        }
        if let Some(k) = t.as_object().and_then(|o| o.keys().find(|k| !["name", "description", "input_schema", "cache_control", "type"].contains(&k.as_str()))) {
            return Err(format!("tools.{i}.{k}: Extra inputs are not permitted"));
        }
    }
    if let Some(c) = body.get("tool_choice") {
        match c.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => {}
            Some("tool") if c.get("name").is_some_and(Value::is_string) => {}
            _ => return Err("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'".into()),
        }
        if body.get("tools").is_none() {
            return Err("tool_choice may only be specified while providing tools.".into());
        }
    }
    Ok(())
}

fn messages(body: &Map<String, Value>) -> R {
    let msgs = match body.get("messages") {
        None => return Err("messages: Field required".into()),
        Some(Value::Array(m)) if m.is_empty() => return Err("messages: at least one message is required".into()),
        Some(Value::Array(m)) => m,
        Some(_) => return Err("messages: Input should be a valid list".into()),
    };
    let mut prev: Option<&str> = None;
    let mut pending_tool_uses: Vec<&str> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "assistant")) => r,
            Some(other) => return Err(format!("messages.{i}.role: Input should be 'user' or 'assistant' (got {other:?})")),
            None => return Err(format!("messages.{i}.role: Field required")),
        };
        if prev.is_none() && role != "user" {
            return Err("messages: first message must use the \"user\" role".into());
        }
        if prev == Some(role) {
            return Err(format!("messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row"));
        }
        prev = Some(role);
        let blocks: Vec<&Value> = match m.get("content") {
            Some(Value::String(s)) if s.is_empty() && role == "user" => {
                return Err(format!("messages.{i}: user messages must have non-empty content"))
            }
            Some(Value::String(_)) => Vec::new(),
            Some(Value::Array(b)) if b.is_empty() => return Err(format!("messages.{i}: all messages must have non-empty content")),
            Some(Value::Array(b)) => b.iter().collect(),
            _ => return Err(format!("messages.{i}.content: Field required")),
        };
        let mut results: Vec<&str> = Vec::new();
        let mut uses: Vec<&str> = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            block(b, role, i, j, &mut results, &mut uses)?;
        }
        if let Some(missing) = pending_tool_uses.iter().find(|id| !results.contains(id)) {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
            ));
        }
        if let Some(extra) = results.iter().find(|id| !pending_tool_uses.contains(id)) {
            return Err(format!(
                "messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: {extra}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            ));
        }
        pending_tool_uses = uses;
    }
    Ok(())
}

fn block<'a>(b: &'a Value, role: &str, i: usize, j: usize, results: &mut Vec<&'a str>, uses: &mut Vec<&'a str>) -> R {
    let at = format!("messages.{i}.content.{j}");
    match (b.get("type").and_then(Value::as_str), role) {
        (Some("text"), _) => match b.get("text").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(()),
            Some(_) => Err(format!("{at}: text content blocks must be non-empty")),
            None => Err(format!("{at}.text: Field required")),
        },
        (Some("image" | "document"), "user") => {
            let src = b.get("source");
            match src.and_then(|s| s.get("type")).and_then(Value::as_str) {
                Some("base64") if src.and_then(|s| s.get("media_type")).is_some() && src.and_then(|s| s.get("data")).is_some() => Ok(()),
                Some("url") if src.and_then(|s| s.get("url")).is_some_and(Value::is_string) => Ok(()),
                Some("text") if b.get("type").and_then(Value::as_str) == Some("document") => Ok(()),
                _ => Err(format!("{at}.source: Input tag does not match any of the expected tags: 'base64', 'url'")),
            }
        }
        (Some("tool_result"), "user") => match b.get("tool_use_id").and_then(Value::as_str) {
            Some(id) => {
                results.push(id);
                Ok(())
            }
            None => Err(format!("{at}.tool_use_id: Field required")),
        },
        (Some("tool_use"), "assistant") => {
            let (Some(id), Some(_), Some(true)) =
                (b.get("id").and_then(Value::as_str), b.get("name").and_then(Value::as_str), b.get("input").map(Value::is_object))
            else {
                return Err(format!("{at}: tool_use blocks need `id`, `name` and an object `input`"));
            };
            uses.push(id);
            Ok(())
        }
        (Some("thinking"), "assistant") => {
            let (Some(text), Some(sig)) = (b.get("thinking").and_then(Value::as_str), b.get("signature").and_then(Value::as_str)) else {
                return Err(format!("{at}: thinking blocks need `thinking` and `signature`"));
            };
            if sig != signature(text) {
                return Err(format!("{at}: Invalid `signature` in `thinking` block"));
            }
            Ok(())
        }
        // Server tool calls and their results, both in the assistant's turn.
        (Some("server_tool_use" | "web_search_tool_result" | "web_fetch_tool_result" | "code_execution_tool_result"), "assistant") => Ok(()),
        (Some("redacted_thinking"), "assistant") if b.get("data").is_some_and(Value::is_string) => Ok(()),
        (Some("redacted_thinking"), "assistant") => Err(format!("{at}.data: Field required")),
        (Some(t), _) => Err(format!("{at}: block type `{t}` is not allowed in a {role} message")),
        (None, _) => Err(format!("{at}.type: Field required")),
    }
}
