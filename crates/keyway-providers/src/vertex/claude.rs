//! Claude on Vertex: the Anthropic Messages body of [`crate::translate::anthropic`] without
//! `model` (the path names it) and with `anthropic_version: "vertex-2023-10-16"`, POSTed to
//! `:rawPredict` / `:streamRawPredict`; answers are Anthropic's, translated back the same way.
//! A `POST /v1/messages` request goes as the client wrote it ([`native_request`]), its answer
//! untranslated.

use crate::error::ProviderError;
use crate::stream::{translate, Translate};
use crate::http::{self, parse_json, read_body};
use crate::timeouts::Timeouts;
use crate::sse::SseEvent;
use crate::translate::anthropic::{anthropic_error, anthropic_response_to_openai, openai_request_to_anthropic, AnthropicStreamToOpenAi};
use crate::types::{AnthropicNative, ChatResponse, StreamEvent};
use serde_json::{json, Map, Value};

pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// An OpenAI chat body -> the rawPredict body.
pub fn request(body: &Map<String, Value>) -> Result<Value, ProviderError> {
    // The model id is only a placeholder here: Vertex takes it from the path.
    let mut a = openai_request_to_anthropic(body, "")?;
    a.remove("model");
    a.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
    Ok(Value::Object(a))
}

/// The client's own Anthropic body -> the rawPredict body.
pub fn native_request(native: &AnthropicNative) -> Value {
    let mut a = native.body.clone();
    a.remove("model");
    a.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
    Value::Object(a)
}

struct Events(AnthropicStreamToOpenAi);

impl Translate for Events {
    type Item = SseEvent;

    fn item(&mut self, ev: SseEvent) -> Vec<Result<StreamEvent, ProviderError>> {
        self.0.push(&ev.event, &ev.data)
    }

    fn end(&mut self) -> Vec<Result<StreamEvent, ProviderError>> {
        self.0.finish().map(Err).into_iter().collect()
    }
}

pub(crate) async fn chat_over(resp: crate::client::Response, stream: bool, _model: &str, t: &Timeouts) -> Result<ChatResponse, ProviderError> {
    let created = chrono::Utc::now().timestamp();
    if !stream {
        let msg = parse_json(&read_body(resp, t).await?)?;
        if msg.get("type").and_then(Value::as_str) == Some("error") {
            return Err(anthropic_error(&msg));
        }
        let (body, usage) = anthropic_response_to_openai(&msg, created)?;
        return Ok(ChatResponse::Complete { body: body.into(), usage: Some(usage) });
    }
    let events = Box::pin(http::sse_events(resp, t));
    Ok(ChatResponse::Stream(translate(events, Events(AnthropicStreamToOpenAi::new(created)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_vertex_version_and_no_model() {
        let b = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "stream": true});
        let r = request(b.as_object().unwrap()).unwrap();
        assert_eq!(r["anthropic_version"], ANTHROPIC_VERSION);
        assert!(r.get("model").is_none());
        assert_eq!(r["stream"], true);
        assert_eq!(r["max_tokens"], 10);
    }
}
