//! OpenAI `chat.completion.chunk`s -> the SDK's stream parts (`LanguageModelV4StreamPart`):
//! `stream-start`, `response-metadata`, `reasoning-*`, `text-*`, `tool-input-*`, `tool-call`,
//! then one `finish` with usage and provider metadata.

use super::response::{finish_reason, vercel_usage, ServedBy};
use keyway_core::Usage;
use serde_json::{json, Value};

struct ToolCall {
    index: u64,
    id: String,
    name: String,
    args: String,
}

/// One stream's translation state. Feed it every chunk ([`Self::push_chunk`]) and the parsed
/// usage ([`Self::push_usage`]); [`Self::finish`] closes open parts and ends the stream.
pub struct OpenAiStreamToVercel {
    generation_id: String,
    model: String,
    started: bool,
    /// The open text or reasoning part's id; a new one when the other kind interrupts it.
    text: Option<String>,
    reasoning: Option<String>,
    parts_opened: usize,
    tools: Vec<ToolCall>,
    finish_reason: Option<String>,
    usage_json: Option<Value>,
    usage: Option<Usage>,
}

impl OpenAiStreamToVercel {
    pub fn new(generation_id: &str, model: &str) -> Self {
        Self {
            generation_id: generation_id.to_owned(),
            model: model.to_owned(),
            started: false,
            text: None,
            reasoning: None,
            parts_opened: 0,
            tools: Vec::new(),
            finish_reason: None,
            usage_json: None,
            usage: None,
        }
    }

    fn start(&mut self, out: &mut Vec<Value>) {
        if !self.started {
            self.started = true;
            out.push(json!({"type": "stream-start", "warnings": []}));
            out.push(json!({"type": "response-metadata", "id": self.generation_id, "modelId": self.model}));
        }
    }

    fn next_id(&mut self, kind: &str) -> String {
        self.parts_opened += 1;
        format!("{kind}-{}", self.parts_opened - 1)
    }

    fn close_text(&mut self, out: &mut Vec<Value>) {
        if let Some(id) = self.text.take() {
            out.push(json!({"type": "text-end", "id": id}));
        }
    }

    fn close_reasoning(&mut self, out: &mut Vec<Value>) {
        if let Some(id) = self.reasoning.take() {
            out.push(json!({"type": "reasoning-end", "id": id}));
        }
    }

    /// The parts one upstream chunk yields (possibly none).
    pub fn push_chunk(&mut self, chunk: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        self.start(&mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage_json = Some(u.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else { return out };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(f.to_owned());
        }
        let Some(delta) = choice.get("delta") else { return out };
        let reasoning = delta.get("reasoning").or_else(|| delta.get("reasoning_content")).and_then(Value::as_str).unwrap_or_default();
        if !reasoning.is_empty() {
            self.close_text(&mut out);
            let id = match &self.reasoning {
                Some(id) => id.clone(),
                None => {
                    let id = self.next_id("reasoning");
                    out.push(json!({"type": "reasoning-start", "id": id}));
                    self.reasoning = Some(id.clone());
                    id
                }
            };
            out.push(json!({"type": "reasoning-delta", "id": id, "delta": reasoning}));
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.close_reasoning(&mut out);
            let id = match &self.text {
                Some(id) => id.clone(),
                None => {
                    let id = self.next_id("text");
                    out.push(json!({"type": "text-start", "id": id}));
                    self.text = Some(id.clone());
                    id
                }
            };
            out.push(json!({"type": "text-delta", "id": id, "delta": text}));
        }
        for (pos, tc) in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let index = tc.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let f = tc.get("function");
            let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or_default();
            let known = self.tools.iter().position(|t| t.index == index);
            let slot = match known {
                Some(i) => i,
                None => {
                    self.close_text(&mut out);
                    self.close_reasoning(&mut out);
                    let id = tc.get("id").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("call-{}-{index}", self.generation_id));
                    let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default().to_owned();
                    out.push(json!({"type": "tool-input-start", "id": id, "toolName": name}));
                    self.tools.push(ToolCall { index, id, name, args: String::new() });
                    self.tools.len() - 1
                }
            };
            if !args.is_empty() {
                if let Some(t) = self.tools.get_mut(slot) {
                    t.args.push_str(args);
                    out.push(json!({"type": "tool-input-delta", "id": t.id, "delta": args}));
                }
            }
        }
        out
    }

    /// Keyway's parsed usage (adapters that translate a provider's stream report it this way).
    pub fn push_usage(&mut self, u: Usage) {
        self.usage = Some(u);
    }

    /// Closes what is open, emits the complete tool calls and the `finish` part.
    pub fn finish(&mut self, served: &ServedBy) -> Vec<Value> {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close_reasoning(&mut out);
        self.close_text(&mut out);
        for t in self.tools.drain(..) {
            out.push(json!({"type": "tool-input-end", "id": t.id}));
            let input = if t.args.is_empty() { "{}".to_owned() } else { t.args };
            out.push(json!({"type": "tool-call", "toolCallId": t.id, "toolName": t.name, "input": input}));
        }
        out.push(json!({
            "type": "finish",
            "finishReason": finish_reason(self.finish_reason.as_deref()),
            "usage": vercel_usage(self.usage_json.as_ref(), self.usage),
            "providerMetadata": served.provider_metadata(),
        }));
        out
    }

    /// The usage seen so far (for the cost in the `finish` part).
    pub fn usage(&self) -> Option<Usage> {
        self.usage_json.as_ref().and_then(crate::translate::usage_from_openai_json).or(self.usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn types(parts: &[Value]) -> Vec<&str> {
        parts.iter().map(|p| p["type"].as_str().unwrap_or("?")).collect()
    }

    #[test]
    fn text_and_reasoning_stream_as_open_delta_close() {
        let mut s = OpenAiStreamToVercel::new("gen-1", "m");
        let mut all = s.push_chunk(&chunk(json!({"role": "assistant", "reasoning": "hm"}), None));
        all.extend(s.push_chunk(&chunk(json!({"content": "Hel"}), None)));
        all.extend(s.push_chunk(&chunk(json!({"content": "lo"}), Some("stop"))));
        all.extend(s.push_chunk(&json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})));
        all.extend(s.finish(&ServedBy::default()));
        assert_eq!(
            types(&all),
            ["stream-start", "response-metadata", "reasoning-start", "reasoning-delta", "reasoning-end", "text-start", "text-delta", "text-delta", "text-end", "finish"]
        );
        assert_eq!(all[6]["id"], all[5]["id"]);
        let finish = &all[9];
        assert_eq!(finish["finishReason"]["unified"], "stop");
        assert_eq!(finish["usage"]["inputTokens"]["total"], 3);
        assert_eq!(finish["usage"]["outputTokens"]["total"], 2);
    }

    #[test]
    fn tool_calls_stream_their_input_then_the_whole_call() {
        let mut s = OpenAiStreamToVercel::new("gen-1", "m");
        let mut all = s.push_chunk(&chunk(json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "w", "arguments": ""}}]}), None));
        all.extend(s.push_chunk(&chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), None)));
        all.extend(s.push_chunk(&chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Some("tool_calls"))));
        s.push_usage(Usage { prompt_tokens: 5, completion_tokens: 1, ..Usage::default() });
        all.extend(s.finish(&ServedBy::default()));
        assert_eq!(types(&all), ["stream-start", "response-metadata", "tool-input-start", "tool-input-delta", "tool-input-delta", "tool-input-end", "tool-call", "finish"]);
        assert_eq!(all[6], json!({"type": "tool-call", "toolCallId": "c1", "toolName": "w", "input": "{\"a\":1}"}));
        assert_eq!(all[7]["finishReason"]["unified"], "tool-calls");
        assert_eq!(all[7]["usage"]["inputTokens"]["total"], 5);
    }
}
