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
use crate::stream::{translate, Translate};
use crate::types::{AnthropicNative, Call, ChatRequest, ChatResponse, RequestPreview, StreamEvent};
use crate::provider::Provider;
use async_trait::async_trait;
use bytes::Bytes;
use keyway_core::Credential;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

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
        answer(resp, req.stream(), Shape::OpenAi, &self.timeouts).await
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
        answer(resp, stream, Shape::Native, &self.timeouts).await
    }
}

/// In which shape an Anthropic answer goes back to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Translated to an OpenAI `chat.completion` or `chat.completion.chunk`s.
    OpenAi,
    /// Anthropic's own message, or each event's own data untouched (`POST /v1/messages` served
    /// natively). The translation still runs over a stream, to say which events carry content
    /// (the router's fallback point), to pull usage out, and to turn `error` events into errors.
    Native,
}

/// An answer of Anthropic's protocol from any host of it (Anthropic, Claude on Vertex), whole
/// or streamed, in `shape`.
pub(crate) async fn answer(resp: crate::client::Response, stream: bool, shape: Shape, timeouts: &Timeouts) -> Result<ChatResponse, ProviderError> {
    let created = chrono::Utc::now().timestamp();
    if stream {
        let events = Events { translator: AnthropicStreamToOpenAi::new(created), shape };
        return Ok(ChatResponse::Stream(translate(Box::pin(http::sse_events(resp, timeouts)), events)));
    }
    let msg = parse_json(&read_body(resp, timeouts).await?)?;
    if msg.get("type").and_then(Value::as_str) == Some("error") {
        return Err(anthropic_error(&msg));
    }
    match shape {
        Shape::OpenAi => {
            let (body, usage) = anthropic_response_to_openai(&msg, created)?;
            Ok(ChatResponse::Complete { body: body.into(), usage: Some(usage) })
        }
        Shape::Native => {
            if !msg.get("content").is_some_and(Value::is_array) {
                return Err(ProviderError::Protocol("Anthropic message without a `content` list".into()));
            }
            let usage = msg.get("usage").map(anthropic_usage);
            Ok(ChatResponse::Complete { body: msg.into(), usage })
        }
    }
}

/// Anthropic's SSE events through the one stream driver ([`translate`]). A stream that closes
/// before `message_stop` ends with a protocol error (it was cut); nothing follows `message_stop`.
struct Events {
    translator: AnthropicStreamToOpenAi,
    shape: Shape,
}

impl Translate for Events {
    type Item = SseEvent;

    fn item(&mut self, ev: SseEvent) -> Vec<Result<StreamEvent, ProviderError>> {
        let items = self.translator.push(&ev.event, &ev.data);
        match self.shape {
            Shape::OpenAi => items,
            Shape::Native => {
                let content = items.iter().any(|i| matches!(i, Ok(StreamEvent::Chunk { content: true, .. })));
                let mut out = Vec::with_capacity(2);
                if !items.iter().any(Result::is_err) {
                    out.push(Ok(StreamEvent::Chunk { json: Bytes::from(ev.data), content, shape: None }));
                }
                out.extend(items.into_iter().filter(|i| !matches!(i, Ok(StreamEvent::Chunk { .. }))));
                out
            }
        }
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, ProviderError>> {
        self.translator.finish().map(Err).into_iter().collect()
    }

    fn is_complete(&self) -> bool {
        self.translator.is_complete()
    }
}
