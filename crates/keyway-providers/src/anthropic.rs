//! Anthropic's Messages API: `POST {base}/v1/messages` with `x-api-key` and `anthropic-version`.
//! Requests and answers go through [`crate::translate::anthropic`]; streams are translated event
//! by event as they arrive.

use crate::error::ProviderError;
use crate::http::{self, parse_json, read_body};
use crate::registry::Timeouts;
use crate::sse::SseEvent;
use crate::translate::anthropic::{anthropic_error, anthropic_response_to_openai, openai_request_to_anthropic, AnthropicStreamToOpenAi};
use crate::types::{Call, ChatRequest, ChatResponse, ChunkStream, RequestPreview, StreamEvent};
use crate::Provider;
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use keyway_core::Credential;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use std::collections::VecDeque;

pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    base_url: String,
    http: reqwest::Client,
    timeouts: Timeouts,
}

impl Anthropic {
    /// `base_url` without the `/v1` suffix (`https://api.anthropic.com`).
    pub fn new(base_url: String, http: reqwest::Client, timeouts: Timeouts) -> Self {
        Self { base_url, http, timeouts }
    }

    fn build(&self, call: &Call<'_>, body: &Map<String, Value>) -> Result<reqwest::Request, ProviderError> {
        let Credential::ApiKey(key) = call.credential else {
            return Err(ProviderError::Unsupported("anthropic takes an API key credential".into()));
        };
        let body = serde_json::to_vec(body).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        self.http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", key.expose_secret())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("could not build the request: {}", e.without_url())))
    }
}

#[async_trait]
impl Provider for Anthropic {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = openai_request_to_anthropic(&req.body, call.model)?;
        let resp = http::send(&self.http, self.build(call, &body)?, &self.timeouts).await?;
        let created = chrono::Utc::now().timestamp();
        if !req.stream() {
            let msg = parse_json(&read_body(resp, &self.timeouts).await?)?;
            if msg.get("type").and_then(Value::as_str) == Some("error") {
                return Err(anthropic_error(&msg));
            }
            let (body, usage) = anthropic_response_to_openai(&msg, created)?;
            return Ok(ChatResponse::Complete { body, usage: Some(usage) });
        }
        Ok(ChatResponse::Stream(translate_stream(http::sse_events(resp, self.timeouts.idle), AnthropicStreamToOpenAi::new(created))))
    }

    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError> {
        let body = openai_request_to_anthropic(&req.body, call.model)?;
        Ok(RequestPreview::from_request(&self.build(call, &body)?))
    }

    fn test_model(&self) -> &str {
        "claude-haiku-4-5"
    }
}

struct StreamState {
    events: BoxStream<'static, Result<SseEvent, ProviderError>>,
    translator: AnthropicStreamToOpenAi,
    pending: VecDeque<Result<StreamEvent, ProviderError>>,
    done: bool,
}

/// Translates upstream SSE events as they arrive. The stream ends after the first error, and a
/// stream that closes before `message_stop` ends with a protocol error (it was cut).
fn translate_stream<S>(events: S, translator: AnthropicStreamToOpenAi) -> ChunkStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
{
    let state = StreamState { events: events.boxed(), translator, pending: VecDeque::new(), done: false };
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
