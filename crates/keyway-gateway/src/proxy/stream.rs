//! Streaming answers: hold back chunks without content until the first content chunk (so an
//! early error event can still fall back), then forward every chunk the moment it arrives, in
//! the caller's dialect (OpenAI chunks, or Anthropic Messages events).

use crate::state::SharedState;
use crate::usage::GenerationRecord;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use keyway_providers::translate::anthropic::{anthropic_error_body, finish_reason, AnthropicEvent, OpenAiStreamToAnthropic};
use keyway_providers::translate::vercel::{OpenAiStreamToVercel, ServedBy};
use keyway_providers::{ChunkShape, ChunkStream, ProviderError, StreamEvent};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Instant;

/// Reads until the first chunk with content (or the end). An error before that is the attempt's.
pub async fn peek(mut s: ChunkStream) -> Result<(Vec<StreamEvent>, ChunkStream), ProviderError> {
    let mut buf = Vec::new();
    loop {
        match s.next().await {
            None => return Ok((buf, s)),
            Some(Err(e)) => return Err(e),
            Some(Ok(ev)) => {
                let content = matches!(ev, StreamEvent::Chunk { content: true, .. });
                buf.push(ev);
                if content {
                    return Ok((buf, s));
                }
            }
        }
    }
}

pub struct StreamContext {
    pub generation_id: String,
    pub model: String,
    pub provider_name: &'static str,
    pub started: Instant,
    pub state: SharedState,
    pub record: GenerationRecord,
    /// Secrets of the serving credential, scrubbed from a late error message.
    pub secrets: Vec<String>,
    /// The client asked for `stream_options.include_usage` (Keyway always asks upstream).
    pub include_usage: bool,
    /// The serving endpoint's prices, to charge the generation when the stream ends.
    pub prices: Option<keyway_core::pricing::Prices>,
    /// The request's concurrency slot and token reservation, held until the stream ends.
    pub admission: crate::admission::Admission,
    /// The serving endpoint's provider, and when its attempt was sent: for its throughput sample.
    pub provider: keyway_core::ProviderSlug,
    pub attempt_started: Instant,
    /// The request's span, held so that it (and its OTLP export) ends with the stream, not the head.
    pub span: tracing::Span,
}

/// How frames are written for the client.
pub enum Dialect {
    OpenAi,
    Anthropic(Box<OpenAiStreamToAnthropic>),
    /// The chunks are an Anthropic upstream's own event data: forwarded as they are, the model
    /// in `message_start` shown as this name (the one the client asked for).
    AnthropicNative { model: String },
    /// The Vercel AI SDK's stream parts (`/v1/ai/language-model`); `served` fills the
    /// provider metadata of the `finish` part, its cost added at the end.
    Vercel { conv: Box<OpenAiStreamToVercel>, served: Box<ServedBy> },
}

/// A stream that answered and is ready to be forwarded.
pub struct Pending {
    ctx: StreamContext,
    buffered: Vec<StreamEvent>,
    rest: ChunkStream,
}

impl Pending {
    pub fn new(ctx: StreamContext, buffered: Vec<StreamEvent>, rest: ChunkStream) -> Self {
        Self { ctx, buffered, rest }
    }

    pub fn respond(self, dialect: Dialect, headers: HeaderMap) -> Response {
        let mut ctx = self.ctx;
        ctx.record.ttft_ms = Some(ctx.started.elapsed().as_millis() as u64);
        let fwd = Forwarder { ctx, edits: None, buffered: self.buffered.into(), rest: Some(self.rest), finished: false, dialect };
        let body = futures::stream::unfold(fwd, |mut f| async move {
            let frame = f.next_frame().await?;
            Some((Ok::<Bytes, std::convert::Infallible>(frame), f))
        });
        let mut resp = Response::new(Body::from_stream(body));
        let h = resp.headers_mut();
        h.extend(headers);
        h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        resp
    }
}

/// Records the generation however the stream ends (finished, failed, or the client went away).
struct Forwarder {
    ctx: StreamContext,
    /// `id`, `provider` and `model` as JSON strings, escaped once for every chunk's splice.
    edits: Option<[String; 3]>,
    buffered: VecDeque<StreamEvent>,
    rest: Option<ChunkStream>,
    finished: bool,
    dialect: Dialect,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let mut record = self.ctx.record.clone();
        if !self.finished && record.status == 200 {
            record.status = 499; // the client closed the stream early
        }
        // Only a stream that ran to its end says how fast the endpoint generates.
        let ran_to_end = self.finished && record.status == 200;
        let ctx = &mut self.ctx;
        let sample = ran_to_end.then(|| super::settle::Throughput { model: &ctx.model, provider: ctx.provider, took: ctx.attempt_started.elapsed() });
        ctx.span.record("status", record.status);
        // Inside the span: the `request` log line carries the generation id like the attempt lines.
        ctx.span.in_scope(|| super::settle::finish(&ctx.state, record, ctx.started, ctx.prices, &mut ctx.admission, sample));
    }
}

fn data_frame(json: &[u8]) -> Bytes {
    data_frame_with(json.len(), |out| {
        out.extend_from_slice(json);
        true
    })
    .unwrap_or_default()
}

/// `data: …\n\n` around what `write` puts in the frame's one buffer (sized for `len` bytes of
/// JSON); `None` when `write` declines.
fn data_frame_with(len: usize, write: impl FnOnce(&mut Vec<u8>) -> bool) -> Option<Bytes> {
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(b"data: ");
    if !write(&mut out) {
        return None;
    }
    out.extend_from_slice(b"\n\n");
    Some(Bytes::from(out))
}

/// Each part as one `data:` frame (the SDK's stream is JSON data events, no event names).
fn data_frames(parts: Vec<Value>) -> Option<Bytes> {
    if parts.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(p.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    Some(Bytes::from(out))
}

fn event_frames(events: Vec<AnthropicEvent>) -> Option<Bytes> {
    if events.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (name, data) in events {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    Some(Bytes::from(out))
}

impl Forwarder {
    /// One upstream chunk for the client; `None` when it produces nothing to send.
    fn render(&mut self, json: &Bytes, shape: Option<&ChunkShape>) -> Option<Bytes> {
        if matches!(self.dialect, Dialect::OpenAi) {
            return match shape {
                Some(shape) => self.render_shaped(json, shape),
                None => self.render_openai(json),
            };
        }
        let Ok(v) = serde_json::from_slice::<Value>(json) else {
            return Some(data_frame(json));
        };
        if let Dialect::AnthropicNative { model } = &self.dialect {
            return Some(self.render_native(json, v, model.clone()));
        }
        if let Some(f) = v.get("choices").and_then(|c| c.get(0)).and_then(|c| c.get("finish_reason")).and_then(Value::as_str) {
            self.ctx.record.finish_reason = Some(f.to_owned());
        }
        match &mut self.dialect {
            Dialect::Anthropic(conv) => event_frames(conv.push_chunk(&v)),
            Dialect::Vercel { conv, .. } => data_frames(conv.push_chunk(&v)),
            Dialect::AnthropicNative { .. } | Dialect::OpenAi => None, // rendered above
        }
    }

    /// An upstream's OpenAI chunk for an OpenAI client, its layout read by the adapter: the
    /// bytes copied around the three values replaced, nothing parsed again. Same output as
    /// [`Self::render_openai`] (keyway-providers test `a_chunk_shape_edits_the_chunk_as_the_parsed_object_does`).
    fn render_shaped(&mut self, json: &Bytes, shape: &ChunkShape) -> Option<Bytes> {
        if shape.usage_only && !self.ctx.include_usage {
            return None;
        }
        if let Some(f) = &shape.finish_reason {
            self.ctx.record.finish_reason = Some(f.clone());
        }
        let ctx = &self.ctx;
        let [id, provider, model] = self
            .edits
            .get_or_insert_with(|| [ctx.generation_id.as_str(), ctx.provider_name, ctx.model.as_str()].map(keyway_providers::json_str));
        // Room for the three values in full plus their keys, should all three be added.
        let len = json.len() + id.len() + provider.len() + model.len() + 40;
        match data_frame_with(len, |out| shape.write_edited(json, id, provider, model, out)) {
            Some(frame) => Some(frame),
            None => self.render_openai(json),
        }
    }

    /// An OpenAI chunk for an OpenAI client: split at the top level only, `id`, `provider` and
    /// `model` set, everything else (the choices with their text) copied as the upstream wrote
    /// it. A full parse and re-print per chunk was most of the gateway's work per chunk.
    fn render_openai(&mut self, json: &Bytes) -> Option<Bytes> {
        let Ok(o) = keyway_providers::RawObject::parse(json) else {
            return Some(data_frame(json));
        };
        let no_choices = o.get("choices").is_some_and(|c| c.get().bytes().filter(|b| !b.is_ascii_whitespace()).eq(*b"[]"));
        if no_choices && o.get("usage").is_some() && !self.ctx.include_usage {
            return None;
        }
        let mut chunk = keyway_providers::Body::Raw(o);
        if let Some(f) = chunk.first_finish_reason() {
            self.ctx.record.finish_reason = Some(f);
        }
        chunk.set("id", &self.ctx.generation_id);
        chunk.set("provider", &self.ctx.provider_name);
        chunk.set("model", &self.ctx.model);
        Some(data_frame(&chunk.to_vec()))
    }

    /// One upstream Anthropic event, as the upstream sent it (the model name aside).
    fn render_native(&mut self, json: &Bytes, mut v: Value, model: String) -> Bytes {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("message").to_owned();
        let mut data = json.clone();
        match kind.as_str() {
            "message_start" => {
                if let Some(m) = v.get_mut("message").and_then(Value::as_object_mut) {
                    m.insert("model".into(), Value::String(model));
                    if let Ok(b) = serde_json::to_vec(&v) {
                        data = Bytes::from(b);
                    }
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.ctx.record.finish_reason = finish_reason(Some(r)).as_str().map(str::to_owned);
                }
            }
            _ => {}
        }
        let mut out = Vec::with_capacity(data.len() + kind.len() + 16);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if self.finished {
                return None;
            }
            let ev = match self.buffered.pop_front() {
                Some(ev) => Some(Ok(ev)),
                None => match self.rest.as_mut() {
                    Some(s) => s.next().await,
                    None => None,
                },
            };
            match ev {
                Some(Ok(StreamEvent::Chunk { json, shape, .. })) => {
                    if let Some(frame) = self.render(&json, shape.as_ref()) {
                        return Some(frame);
                    }
                }
                Some(Ok(StreamEvent::Usage(u))) => {
                    self.ctx.record.usage = Some(u);
                    match &mut self.dialect {
                        Dialect::Anthropic(conv) => conv.push_usage(u),
                        Dialect::Vercel { conv, .. } => conv.push_usage(u),
                        _ => {}
                    }
                }
                Some(Err(e)) => {
                    // Content already reached the client: no silent retry, a final error event instead.
                    self.finished = true;
                    self.ctx.record.status = e.status();
                    let secrets: Vec<&str> = self.ctx.secrets.iter().map(String::as_str).collect();
                    let message = super::scrub(&e.to_string(), &secrets);
                    tracing::warn!(generation_id = %self.ctx.generation_id, class = e.class(), "stream failed after content was sent");
                    return Some(match &self.dialect {
                        Dialect::OpenAi => {
                            data_frame(json!({"error": {"message": message, "type": "upstream_error", "code": e.class()}}).to_string().as_bytes())
                        }
                        Dialect::Anthropic(_) | Dialect::AnthropicNative { .. } => {
                            event_frames(vec![("error", anthropic_error_body(&e, &message))]).unwrap_or_default()
                        }
                        Dialect::Vercel { .. } => data_frame(
                            json!({"type": "error", "error": {"message": message, "type": "internal_server_error", "code": e.class(), "generationId": self.ctx.generation_id}})
                                .to_string()
                                .as_bytes(),
                        ),
                    });
                }
                None => {
                    self.finished = true;
                    return match &mut self.dialect {
                        Dialect::OpenAi => Some(Bytes::from_static(b"data: [DONE]\n\n")),
                        Dialect::Anthropic(conv) => event_frames(conv.finish()),
                        Dialect::Vercel { conv, served } => {
                            let usage = conv.usage().or(self.ctx.record.usage);
                            served.cost_micros = self.ctx.prices.zip(usage).map(|(p, u)| keyway_core::pricing::cost_micros(&u, &p));
                            data_frames(conv.finish(served))
                        }
                        // The upstream's own message_stop was the last event.
                        Dialect::AnthropicNative { .. } => None,
                    };
                }
            }
        }
    }
}
