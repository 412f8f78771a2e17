//! OpenAI `chat.completion.chunk`s -> Anthropic stream events, for `POST /v1/messages` clients.

use super::inbound::{anthropic_usage_json, message_id};
use super::response::stop_reason;
use crate::translate::usage_from_openai_json;
use keyway_core::Usage;
use serde_json::{json, Value};

/// One Anthropic SSE event: (`event:` name, `data:` JSON).
pub type AnthropicEvent = (&'static str, Value);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool_use block fed by the OpenAI tool call with this index.
    Tool(u64),
}

/// Feed every upstream chunk to [`Self::push_chunk`] (and [`Self::push_usage`] for usage that
/// arrives apart), then call [`Self::finish`] once the upstream stream ends.
#[derive(Debug, Clone)]
pub struct OpenAiStreamToAnthropic {
    model: String,
    started: bool,
    /// The open content block and its Anthropic index.
    open: Option<(u64, Block)>,
    next_index: u64,
    /// OpenAI tool-call indexes already given a block (a later fragment can't reopen it).
    seen_tools: Vec<u64>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    finished: bool,
}

impl OpenAiStreamToAnthropic {
    /// `model` is shown in `message_start` (the slug the client asked for).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            seen_tools: Vec::new(),
            finish_reason: None,
            usage: None,
            finished: false,
        }
    }

    /// Translates one OpenAI chunk (already parsed) into zero or more Anthropic events.
    pub fn push_chunk(&mut self, chunk: &Value) -> Vec<AnthropicEvent> {
        let mut out = Vec::new();
        self.start(chunk.get("id").and_then(Value::as_str).unwrap_or_default(), &mut out);
        if let Some(u) = chunk.get("usage").and_then(usage_from_openai_json) {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else {
            return out;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let index = self.ensure_open(Block::Text, || json!({"type": "text", "text": ""}), &mut out);
            out.push(("content_block_delta", json!({"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "text_delta", "text": text}})));
        }
        for tc in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let tool = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
            if self.open.map(|(_, b)| b) != Some(Block::Tool(tool)) {
                if self.seen_tools.contains(&tool) {
                    // Interleaved fragments of an earlier call: its block is closed already.
                    tracing::warn!(tool, "dropping an out-of-order tool call fragment");
                    continue;
                }
                self.seen_tools.push(tool);
                let id = tc.get("id").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("toolu_{tool}"));
                let name = tc.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_owned();
                self.ensure_open(Block::Tool(tool), || json!({"type": "tool_use", "id": id, "name": name, "input": {}}), &mut out);
            }
            if let (Some(args), Some((index, _))) =
                (tc.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()), self.open)
            {
                out.push(("content_block_delta", json!({"type": "content_block_delta", "index": index,
                                                         "delta": {"type": "input_json_delta", "partial_json": args}})));
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            // The final usage chunk may still follow: message_delta waits for `finish`.
            self.finish_reason = Some(f.to_owned());
        }
        out
    }

    /// Usage reported apart from the chunks (`StreamEvent::Usage`); it wins over chunk usage.
    pub fn push_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// Closes the open block and ends the message (`message_delta`, `message_stop`). Idempotent.
    pub fn finish(&mut self) -> Vec<AnthropicEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.finished = true;
        self.start("", &mut out);
        self.close(&mut out);
        let usage = anthropic_usage_json(&self.usage.unwrap_or_default());
        out.push(("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref()), "stop_sequence": null},
            "usage": usage})));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }

    fn start(&mut self, id: &str, out: &mut Vec<AnthropicEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(("message_start", json!({"type": "message_start", "message": {
            "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            // OpenAI reports usage only at the end; the real counts come in message_delta.
            "usage": {"input_tokens": 0, "output_tokens": 0}}})));
    }

    fn ensure_open(&mut self, kind: Block, block: impl FnOnce() -> Value, out: &mut Vec<AnthropicEvent>) -> u64 {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": block()})));
        index
    }

    fn close(&mut self, out: &mut Vec<AnthropicEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }
}
