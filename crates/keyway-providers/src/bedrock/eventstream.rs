//! ConverseStream's answer: AWS event-stream binary frames, decoded incrementally, and their
//! events (`messageStart`, `contentBlockDelta`, ..., exceptions) translated to OpenAI chunks.
//!
//! A frame is `total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | crc u32`.
//! Bytes arrive split anywhere; the decoder waits for a whole frame, then lets
//! `aws_smithy_eventstream::frame::read_message_from` check both CRCs and parse it.

use crate::translate::bedrock::{finish_reason, usage};
use crate::error::ProviderError;
use crate::openai_shape::ChunkMaker;
use crate::stream::Translate;
use crate::types::StreamEvent;
use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, BytesMut};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Frames larger than this are refused before buffering them (AWS caps messages at 16 MiB).
pub const MAX_FRAME: u32 = 24 * 1024 * 1024;
const PRELUDE: usize = 12;
const MIN_FRAME: u32 = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event-stream frame length {0} is out of bounds")]
    Length(u32),
    #[error("invalid event-stream frame: {0}")]
    Invalid(String),
    #[error("event stream ended inside a frame")]
    Truncated,
}

impl From<FrameError> for ProviderError {
    fn from(e: FrameError) -> Self {
        ProviderError::Protocol(e.to_string())
    }
}

/// Feed with [`EventStreamDecoder::push`], drain with [`EventStreamDecoder::next_message`].
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
}

impl EventStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if the buffered bytes hold one.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buf.len() < PRELUDE {
            return Ok(None);
        }
        let total = (&self.buf[..4]).get_u32();
        // Refuse a nonsense length now rather than buffering up to it.
        if !(MIN_FRAME..=MAX_FRAME).contains(&total) {
            self.buf.clear();
            return Err(FrameError::Length(total));
        }
        if self.buf.len() < total as usize {
            return Ok(None);
        }
        let frame = self.buf.split_to(total as usize).freeze();
        read_message_from(frame).map(Some).map_err(|e| FrameError::Invalid(e.to_string()))
    }

    /// At end of input: leftover bytes mean the stream was cut inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
        HeaderValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

/// One decoded ConverseStream frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event { kind: String, payload: Value },
    /// A modelled exception (`:message-type: exception`), or an unmodelled `error` frame.
    Exception { kind: String, message: String },
}

impl Frame {
    pub fn parse(m: &Message) -> Result<Frame, ProviderError> {
        let payload = || -> Value { serde_json::from_slice(m.payload()).unwrap_or(Value::Null) };
        match header(m, ":message-type") {
            Some("event") => {
                let kind = header(m, ":event-type").unwrap_or("").to_owned();
                let payload = serde_json::from_slice(m.payload())
                    .map_err(|e| ProviderError::Protocol(format!("invalid JSON in `{kind}` event: {e}")))?;
                Ok(Frame::Event { kind, payload })
            }
            Some("exception") => {
                let p = payload();
                let message = p.get("message").or_else(|| p.get("Message")).and_then(Value::as_str).unwrap_or("").to_owned();
                Ok(Frame::Exception { kind: header(m, ":exception-type").unwrap_or("exception").to_owned(), message })
            }
            Some("error") => Ok(Frame::Exception {
                kind: header(m, ":error-code").unwrap_or("error").to_owned(),
                message: header(m, ":error-message").unwrap_or("").to_owned(),
            }),
            other => Err(ProviderError::Protocol(format!("event-stream frame with message type {other:?}"))),
        }
    }
}

/// Bedrock's exception names -> the router's classes.
pub fn exception_error(kind: &str, message: String) -> ProviderError {
    let lower = kind.to_ascii_lowercase();
    let message = if message.is_empty() { kind.to_owned() } else { message };
    if lower.contains("throttling") || lower.contains("toomanyrequests") {
        ProviderError::RateLimited { status: 429, retry_after: None, message, body: None }
    } else if lower.contains("validation") {
        ProviderError::BadRequest { status: 400, message, body: None }
    } else if lower.contains("accessdenied") {
        ProviderError::Auth { status: 403, message, body: None }
    } else {
        // serviceUnavailable, internalServer, modelStreamError, and anything new.
        ProviderError::Upstream5xx { status: 502, message }
    }
}

/// ConverseStream events -> OpenAI chunks.
pub struct StreamTranslator {
    maker: ChunkMaker,
    /// Converse content block index -> OpenAI tool-call index.
    tools: HashMap<u64, usize>,
    started: bool,
    stopped: bool,
}

impl StreamTranslator {
    pub fn new(model: &str) -> Self {
        Self { maker: ChunkMaker::new(model), tools: HashMap::new(), started: false, stopped: false }
    }

    fn start(&mut self, out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        if !self.started {
            self.started = true;
            out.push(Ok(self.maker.chunk(json!({"role": "assistant", "content": ""}), None)));
        }
    }

    fn event(&mut self, kind: &str, p: &Value) -> Vec<Result<StreamEvent, ProviderError>> {
        let mut out = Vec::new();
        let block = p.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "messageStart" => self.start(&mut out),
            "contentBlockStart" => {
                self.start(&mut out);
                if let Some(tu) = p.pointer("/start/toolUse") {
                    let index = self.tools.len();
                    self.tools.insert(block, index);
                    let id = tu.get("toolUseId").and_then(Value::as_str).unwrap_or("");
                    let name = tu.get("name").and_then(Value::as_str).unwrap_or("");
                    out.push(Ok(self.maker.chunk(
                        json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                        None,
                    )));
                }
            }
            "contentBlockDelta" => {
                self.start(&mut out);
                let delta = p.get("delta");
                if let Some(t) = delta.and_then(|d| d.get("text")).and_then(Value::as_str) {
                    out.push(Ok(self.maker.chunk(json!({"content": t}), None)));
                } else if let Some(input) = delta.and_then(|d| d.pointer("/toolUse/input")).and_then(Value::as_str) {
                    match self.tools.get(&block) {
                        Some(index) => out.push(Ok(self.maker.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": input}}]}), None))),
                        None => out.push(Err(ProviderError::Protocol("toolUse delta for a block that never started".into()))),
                    }
                } else if let Some(t) = delta.and_then(|d| d.pointer("/reasoningContent/text")).and_then(Value::as_str) {
                    out.push(Ok(self.maker.chunk(json!({"reasoning": t}), None)));
                }
            }
            "messageStop" => {
                self.start(&mut out);
                self.stopped = true;
                let reason = finish_reason(p.get("stopReason").and_then(Value::as_str).unwrap_or("end_turn"));
                out.push(Ok(self.maker.chunk(json!({}), Some(reason))));
            }
            "metadata" => {
                if let Some(u) = p.get("usage").and_then(usage) {
                    out.push(Ok(self.maker.usage_chunk(&u)));
                    out.push(Ok(StreamEvent::Usage(u)));
                }
            }
            // contentBlockStop and events added later carry nothing a chat client needs.
            _ => {}
        }
        out
    }
}

impl Translate for StreamTranslator {
    type Item = Message;

    fn item(&mut self, m: Message) -> Vec<Result<StreamEvent, ProviderError>> {
        match Frame::parse(&m) {
            Err(e) => vec![Err(e)],
            Ok(Frame::Exception { kind, message }) => vec![Err(exception_error(&kind, message))],
            Ok(Frame::Event { kind, payload }) => self.event(&kind, &payload),
        }
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, ProviderError>> {
        if self.stopped {
            vec![]
        } else {
            vec![Err(ProviderError::Protocol("event stream ended before messageStop".into()))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    fn frame(kind: &str, payload: Value) -> Vec<u8> {
        let m = Message::new(payload.to_string().into_bytes())
            .add_header(Header::new(":event-type", HeaderValue::String(kind.to_owned().into())))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    #[test]
    fn decodes_byte_by_byte() {
        let mut bytes = frame("messageStart", json!({"role": "assistant"}));
        bytes.extend(frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "hi"}})));
        let mut d = EventStreamDecoder::new();
        let mut got = vec![];
        for b in &bytes {
            d.push(&[*b]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(Frame::parse(&m).unwrap());
            }
        }
        assert!(d.finish().is_ok());
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Frame::Event { kind: "contentBlockDelta".into(), payload: json!({"contentBlockIndex": 0, "delta": {"text": "hi"}}) });
    }

    #[test]
    fn refuses_bad_lengths_and_truncation() {
        let mut d = EventStreamDecoder::new();
        d.push(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(d.next_message(), Err(FrameError::Length(_))));
        let mut d = EventStreamDecoder::new();
        d.push(&frame("messageStart", json!({}))[..20]);
        assert!(matches!(d.next_message(), Ok(None)));
        assert_eq!(d.finish(), Err(FrameError::Truncated));
    }

    #[test]
    fn exceptions_map_to_classes() {
        assert!(matches!(exception_error("throttlingException", "slow".into()), ProviderError::RateLimited { .. }));
        assert!(matches!(exception_error("validationException", "bad".into()), ProviderError::BadRequest { .. }));
        assert!(matches!(exception_error("modelStreamErrorException", "x".into()), ProviderError::Upstream5xx { .. }));
        assert!(matches!(exception_error("serviceUnavailableException", "x".into()), ProviderError::Upstream5xx { .. }));
        assert!(matches!(exception_error("internalServerException", "x".into()), ProviderError::Upstream5xx { .. }));
    }
}
