//! Anthropic stream events -> OpenAI `chat.completion.chunk`s.

use super::response::{anthropic_error, anthropic_usage, finish_reason};
use crate::error::ProviderError;
use crate::translate::openai_usage_json;
use crate::types::StreamEvent;
use bytes::Bytes;
use serde_json::{json, Value};

type Item = Result<StreamEvent, ProviderError>;

/// The state one Anthropic stream needs: ids from `message_start`, which content blocks are
/// tool calls, and the usage counts spread over `message_start` and `message_delta`.
#[derive(Debug, Clone, Default)]
pub struct AnthropicStreamToOpenAi {
    created: i64,
    id: String,
    model: String,
    /// (Anthropic content-block index, OpenAI tool-call index).
    tool_blocks: Vec<(u64, usize)>,
    usage: Value,
    /// The role chunk owed since `message_start`: sent just before the first output, so that an
    /// `error` event right after `message_start` is the stream's first item.
    role_pending: bool,
    stopped: bool,
}

impl AnthropicStreamToOpenAi {
    /// `created` (Unix seconds) stamps every chunk.
    pub fn new(created: i64) -> Self {
        Self { created, usage: json!({}), ..Self::default() }
    }

    /// Whether `message_stop` arrived: a stream that ends before it was cut.
    pub fn is_complete(&self) -> bool {
        self.stopped
    }

    /// The error to report when the upstream stream ends here, if ending here is wrong.
    pub fn finish(&self) -> Option<ProviderError> {
        (!self.stopped).then(|| ProviderError::Protocol("Anthropic stream ended before `message_stop`".into()))
    }

    /// Translates one SSE event (`event` is its name, `data` its JSON).
    pub fn push(&mut self, event: &str, data: &str) -> Vec<Item> {
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => return vec![Err(ProviderError::Protocol(format!("invalid JSON in Anthropic stream: {e}")))],
        };
        self.push_value(event, &v)
    }

    /// As [`Self::push`], with the data already parsed.
    pub fn push_value(&mut self, event: &str, v: &Value) -> Vec<Item> {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
        match kind {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                self.id = m.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                self.model = m.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
                if let Some(u) = m.get("usage") {
                    self.merge_usage(u);
                }
                self.role_pending = true;
                Vec::new()
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let tool_index = self.tool_blocks.len();
                        self.tool_blocks.push((index, tool_index));
                        let call = json!({"index": tool_index, "id": block.get("id"), "type": "function",
                                          "function": {"name": block.get("name"), "arguments": ""}});
                        self.chunk(json!({"tool_calls": [call]}), Value::Null)
                    }
                    Some("text") => match block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                        Some(t) => self.chunk(json!({"content": t}), Value::Null),
                        None => Vec::new(),
                    },
                    _ => Vec::new(),
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta").unwrap_or(&Value::Null);
                let s = |k: &str| d.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => s("text").map(|t| json!({"content": t})),
                    Some("thinking_delta") => s("thinking").map(|t| json!({"reasoning": t})),
                    Some("input_json_delta") => match self.tool_blocks.iter().find(|(b, _)| *b == index) {
                        Some((_, tool_index)) => s("partial_json")
                            .map(|p| json!({"tool_calls": [{"index": tool_index, "function": {"arguments": p}}]})),
                        None => return vec![Err(ProviderError::Protocol(format!("input_json_delta for block {index}, which is not a tool_use")))],
                    },
                    // signature_delta, citations_delta: nothing for an OpenAI client.
                    _ => None,
                }
                .map(|delta| self.chunk(delta, Value::Null))
                .unwrap_or_default()
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.merge_usage(u);
                }
                let reason = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                let mut out = match reason {
                    Some(_) => self.chunk(json!({}), finish_reason(reason)),
                    None => self.role_chunk(),
                };
                let usage = anthropic_usage(&self.usage);
                let mut last = self.chunk_value(None, Value::Null);
                last["usage"] = openai_usage_json(&usage);
                out.push(to_event(&last, false));
                out.push(Ok(StreamEvent::Usage(usage)));
                out
            }
            "message_stop" => {
                self.stopped = true;
                Vec::new()
            }
            "error" => vec![Err(anthropic_error(v))],
            // ping, content_block_stop, and event types Anthropic may add later.
            _ => Vec::new(),
        }
    }

    /// `message_delta` counts are cumulative and may repeat `message_start`'s: later values win.
    fn merge_usage(&mut self, u: &Value) {
        if let (Some(dst), Some(src)) = (self.usage.as_object_mut(), u.as_object()) {
            for (k, v) in src {
                if v.is_u64() {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
    }

    fn chunk_value(&self, delta: Option<Value>, finish: Value) -> Value {
        let choices = match delta {
            Some(d) => json!([{"index": 0, "delta": d, "logprobs": null, "finish_reason": finish}]),
            None => json!([]),
        };
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": choices})
    }

    /// An output chunk (content = true), preceded by the owed role chunk.
    fn chunk(&mut self, delta: Value, finish: Value) -> Vec<Item> {
        let mut out = self.role_chunk();
        out.push(to_event(&self.chunk_value(Some(delta), finish), true));
        out
    }

    fn role_chunk(&mut self) -> Vec<Item> {
        if !std::mem::take(&mut self.role_pending) {
            return Vec::new();
        }
        vec![to_event(&self.chunk_value(Some(json!({"role": "assistant", "content": ""})), Value::Null), false)]
    }
}

fn to_event(v: &Value, content: bool) -> Item {
    serde_json::to_vec(v)
        .map(|b| StreamEvent::Chunk { json: Bytes::from(b), content, shape: None })
        .map_err(|e| ProviderError::Protocol(e.to_string()))
}
