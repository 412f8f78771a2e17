//! Anthropic's Messages API: `POST {base}/v1/messages` with `x-api-key` and `anthropic-version`.
//! Requests and answers go through [`crate::translate::anthropic`]; streams are translated event
//! by event as they arrive. A request from Keyway's own `POST /v1/messages`
//! ([`ChatRequest::anthropic`]) is sent as the client wrote it and answered in Anthropic's shapes,
//! so that thinking, `top_k`, server tools, cache breakpoints and `stop_sequence` survive.

use crate::error::ProviderError;
use crate::http::{self, parse_json, read_body};
use crate::timeouts::Timeouts;
use crate::sse::SseEvent;
use crate::translate::anthropic::{anthropic_error, anthropic_response_to_openai, anthropic_usage, openai_request_to_anthropic, AnthropicStreamToOpenAi};
use crate::types::{AnthropicNative, Call, ChatRequest, ChatResponse, ChunkStream, RequestPreview, StreamEvent};
use crate::provider::Provider;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use keyway_core::Credential;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use std::collections::VecDeque;

pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    base_url: String,
    http: crate::client::HttpClient,
    timeouts: Timeouts,
}

impl Anthropic {
    /// `base_url` without the `/v1` suffix (`https://api.anthropic.com`).
    pub fn new(base_url: String, http: crate::client::HttpClient, timeouts: Timeouts) -> Self {
        Self { base_url, http, timeouts }
    }

    fn build(&self, call: &Call<'_>, body: &Map<String, Value>, beta: Option<&str>) -> Result<reqwest::Request, ProviderError> {
        let Credential::ApiKey(key) = call.credential else {
            return Err(ProviderError::Unsupported("anthropic takes an API key credential".into()));
        };
        let body = serde_json::to_vec(body).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        let mut rb = self
            .http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", key.expose_secret())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(b) = beta {
            rb = rb.header("anthropic-beta", b);
        }
        rb.body(body)
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("could not build the request: {}", e.without_url())))
    }
}

#[async_trait]
impl Provider for Anthropic {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        if let Some(native) = req.anthropic.as_deref() {
            return self.chat_native(call, native).await;
        }
        let body = openai_request_to_anthropic(req.body.map()?, call.model)?;
        let resp = http::send(&self.http, self.build(call, &body, None)?, &self.timeouts).await?;
        let created = chrono::Utc::now().timestamp();
        if !req.stream() {
            let msg = parse_json(&read_body(resp, &self.timeouts).await?)?;
            if msg.get("type").and_then(Value::as_str) == Some("error") {
                return Err(anthropic_error(&msg));
            }
            let (body, usage) = anthropic_response_to_openai(&msg, created)?;
            return Ok(ChatResponse::Complete { body: body.into(), usage: Some(usage) });
        }
        Ok(ChatResponse::Stream(stream_events(http::sse_events(resp, &self.timeouts), AnthropicStreamToOpenAi::new(created), false)))
    }

    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError> {
        let body = openai_request_to_anthropic(req.body.map()?, call.model)?;
        Ok(RequestPreview::from_request(&self.build(call, &body, None)?))
    }

    fn test_model(&self) -> &str {
        "claude-haiku-4-5"
    }

    fn native_anthropic(&self, _call: &Call<'_>) -> bool {
        true
    }
}

impl Anthropic {
    /// The client's Anthropic body, upstream model id swapped in; the answer stays Anthropic's.
    async fn chat_native(&self, call: &Call<'_>, native: &AnthropicNative) -> Result<ChatResponse, ProviderError> {
        let mut body = native.body.clone();
        body.insert("model".into(), Value::String(call.model.to_owned()));
        let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
        let resp = http::send(&self.http, self.build(call, &body, native.beta.as_deref())?, &self.timeouts).await?;
        native_answer(resp, stream, &self.timeouts).await
    }
}

/// A native answer (Anthropic's own message or events) from any host of Anthropic's protocol.
pub(crate) async fn native_answer(resp: crate::client::Response, stream: bool, timeouts: &Timeouts) -> Result<ChatResponse, ProviderError> {
    if !stream {
        let msg = parse_json(&read_body(resp, timeouts).await?)?;
        if msg.get("type").and_then(Value::as_str) == Some("error") {
            return Err(anthropic_error(&msg));
        }
        if !msg.get("content").is_some_and(Value::is_array) {
            return Err(ProviderError::Protocol("Anthropic message without a `content` list".into()));
        }
        let usage = msg.get("usage").map(anthropic_usage);
        return Ok(ChatResponse::Complete { body: msg.into(), usage });
    }
    let translator = AnthropicStreamToOpenAi::new(chrono::Utc::now().timestamp());
    Ok(ChatResponse::Stream(stream_events(http::sse_events(resp, timeouts), translator, true)))
}

struct StreamState {
    events: BoxStream<'static, Result<SseEvent, ProviderError>>,
    translator: AnthropicStreamToOpenAi,
    pending: VecDeque<Result<StreamEvent, ProviderError>>,
    done: bool,
    native: bool,
}

/// Translates upstream SSE events as they arrive. The stream ends after the first error, and a
/// stream that closes before `message_stop` ends with a protocol error (it was cut).
///
/// `native`: each chunk is instead the upstream event's own data, untouched; the translation
/// still runs, to say which events carry content (the router's fallback point), to pull usage
/// out, and to turn `error` events into errors.
pub(crate) fn stream_events<S>(events: S, translator: AnthropicStreamToOpenAi, native: bool) -> ChunkStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
{
    let state = StreamState { events: events.boxed(), translator, pending: VecDeque::new(), done: false, native };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                if item.is_err() {
                    st.pending.clear();
                    st.done = true;
                }
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            match st.events.next().await {
                Some(Ok(ev)) if st.native => {
                    let items = st.translator.push(&ev.event, &ev.data);
                    let content = items.iter().any(|i| matches!(i, Ok(StreamEvent::Chunk { content: true, .. })));
                    let failed = items.iter().any(Result::is_err);
                    if !failed {
                        st.pending.push_back(Ok(StreamEvent::Chunk { json: Bytes::from(ev.data), content, shape: None }));
                    }
                    st.pending.extend(items.into_iter().filter(|i| !matches!(i, Ok(StreamEvent::Chunk { .. }))));
                    st.done = st.translator.is_complete();
                }
                Some(Ok(ev)) => {
                    st.pending.extend(st.translator.push(&ev.event, &ev.data));
                    // Nothing follows message_stop; don't wait for the upstream to close.
                    st.done = st.translator.is_complete();
                }
                Some(Err(e)) => {
                    st.pending.push_back(Err(e));
                    st.done = true;
                }
                None => {
                    st.pending.extend(st.translator.finish().map(Err));
                    st.done = true;
                }
            }
        }
    }))
}
