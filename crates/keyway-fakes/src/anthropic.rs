//! A fake of Anthropic's Messages API: `POST /v1/messages` with `x-api-key` and
//! `anthropic-version`, the real API's body validation (required fields, unknown fields refused,
//! alternating roles, tool_use/tool_result pairing), real responses and named stream events,
//! and Anthropic's error bodies (`{"type":"error","error":{"type","message"}}`). With extended
//! thinking on, answers start with a signed `thinking` block, and signatures sent back in the
//! history are checked, as the real API does.

mod validate;

pub use validate::signature;

use crate::openai::{stream_break, stream_frames, stream_frames_with};
use crate::server::{count_tokens, header_pairs, reply_for, split_text, FakeOptions, FakeServer, FakeState, Fault, RecordedCall};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

/// The router's state: the shared fake state and the status `Fault::ServerError` answers with.
type Ctx = (Arc<FakeState>, StatusCode);

/// Starts the fake (its base URL for Keyway is `{url}`); `Fault::ServerError` answers 529 `overloaded_error`.
pub async fn start(options: FakeOptions) -> std::io::Result<FakeServer> {
    start_with(options, StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)).await
}

/// As [`start`]; `server_error` picks 529 (`overloaded_error`) or 500 (`api_error`) for `Fault::ServerError`.
pub async fn start_with(options: FakeOptions, server_error: StatusCode) -> std::io::Result<FakeServer> {
    let state = FakeState::new(options);
    FakeServer::start(router_with(state.clone(), server_error), state, None).await
}

pub fn router(state: Arc<FakeState>) -> Router {
    router_with(state, StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))
}

pub fn router_with(state: Arc<FakeState>, server_error: StatusCode) -> Router {
    Router::new().route("/v1/messages", post(messages)).with_state((state, server_error))
}

/// An error answer in Anthropic's shape.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}))).into_response()
}

fn pre_fault_response(fault: &Fault, server_error: StatusCode) -> Option<Response> {
    match fault {
        Fault::RateLimit { retry_after_secs } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit");
            if let Ok(v) = retry_after_secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            Some(r)
        }
        Fault::ServerError if server_error.as_u16() == 529 => Some(error(server_error, "overloaded_error", "Overloaded")),
        Fault::ServerError => Some(error(server_error, "api_error", "Internal server error")),
        Fault::Unauthorized => Some(error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key")),
        Fault::Forbidden => Some(error(StatusCode::FORBIDDEN, "permission_error", "Your API key does not have permission to use the specified resource.")),
        Fault::BadRequest => Some(error(StatusCode::BAD_REQUEST, "invalid_request_error", "Invalid request: injected fault.")),
        Fault::QuotaExhausted => Some(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        )),
        Fault::InvalidJson => Some((StatusCode::OK, [("content-type", "application/json")], "{not json").into_response()),
        Fault::SlowFirstByte(_) | Fault::CutStream | Fault::ErrorEventAfter200 | Fault::StallMidStream(_) | Fault::EndStreamEarly | Fault::NoDoneMarker => None,
    }
}

async fn messages(State((state, server_error)): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if !state.key_ok(&key) {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key");
    }
    if headers.get("anthropic-version").is_none() {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "anthropic-version: header is required");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "There was an error parsing the body of your request");
    };
    let fault = state.record(RecordedCall {
        method: "POST".into(),
        path: "/v1/messages".into(),
        key,
        headers: header_pairs(&headers),
        body: req.clone(),
    });
    if let Some(Fault::SlowFirstByte(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    if let Some(r) = fault.as_ref().and_then(|f| pre_fault_response(f, server_error)) {
        return r;
    }
    if let Err(message) = validate::request(&req) {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
    }
    let answer = Answer::for_request(&req, state.next_id());
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        let opts = state.options();
        return answer.stream(&opts, fault.as_ref());
    }
    Json(answer.message()).into_response()
}

/// What the fake model says to a (valid) request.
struct Answer {
    id: String,
    model: Value,
    text: String,
    /// The tool called, when tools were given and `tool_choice` allows one.
    tool: Option<String>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
    usage: Value,
    /// The thinking text, when `thinking` is enabled.
    thinking: Option<String>,
}

const TOOL_INPUT: &str = "{\"city\":\"Paris\"}";

impl Answer {
    fn for_request(req: &Value, n: u64) -> Self {
        let choice = req.pointer("/tool_choice/type").and_then(Value::as_str);
        let tool = match choice {
            Some("none") => None,
            Some("tool") => req.pointer("/tool_choice/name").and_then(Value::as_str).map(str::to_owned),
            // Server tools (`web_search_20250305`, ...) run inside the API; the fake calls client tools only.
            _ => req
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|t| t.get("type").and_then(Value::as_str).is_none_or(|ty| ty == "custom"))
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let (mut text, mut stop_reason, mut stop_sequence) = match &tool {
            Some(name) => (format!("Calling {name}."), "tool_use", None),
            None => (reply_for(req.get("messages")), "end_turn", None),
        };
        if tool.is_none() {
            for s in req.get("stop_sequences").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                if let Some(at) = text.find(s).filter(|_| !s.is_empty()) {
                    text.truncate(at);
                    stop_reason = "stop_sequence";
                    stop_sequence = Some(s.to_owned());
                    break;
                }
            }
            let max = req.get("max_tokens").and_then(Value::as_u64).unwrap_or(u64::MAX);
            if count_tokens(&text) > max {
                text = text.split_whitespace().take(max as usize).collect::<Vec<_>>().join(" ");
                stop_reason = "max_tokens";
                stop_sequence = None;
            }
        }
        let thinking = (req.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled"))
            .then(|| format!("The user wrote {} words; answer in kind.", count_tokens(&reply_for(req.get("messages")))));
        // Cache counts only when the client asked for caching, as with the real API.
        let cached = req.to_string().contains("\"cache_control\"");
        let output = count_tokens(&text) + if tool.is_some() { 10 } else { 0 } + thinking.as_deref().map(count_tokens).unwrap_or(0);
        let usage = json!({
            "input_tokens": prompt_tokens(req),
            "cache_creation_input_tokens": if cached { 5 } else { 0 },
            "cache_read_input_tokens": if cached { 7 } else { 0 },
            "output_tokens": output,
        });
        Self { id: format!("msg_fake{n}"), model: req.get("model").cloned().unwrap_or(Value::Null), text, tool, stop_reason, stop_sequence, usage, thinking }
    }

    fn message(&self) -> Value {
        let mut content = Vec::new();
        if let Some(t) = &self.thinking {
            content.push(json!({"type": "thinking", "thinking": t, "signature": validate::signature(t)}));
        }
        content.push(json!({"type": "text", "text": self.text}));
        if let Some(name) = &self.tool {
            let input: Value = serde_json::from_str(TOOL_INPUT).unwrap_or(Value::Null);
            content.push(json!({"type": "tool_use", "id": "toolu_fake1", "name": name, "input": input}));
        }
        json!({"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": content,
               "stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence, "usage": self.usage})
    }

    /// The answer as Anthropic's named SSE events, with stream faults applied.
    fn stream(&self, opts: &FakeOptions, fault: Option<&Fault>) -> Response {
        let mut start_usage = self.usage.clone();
        start_usage["output_tokens"] = json!(1);
        let start = json!({"type": "message_start", "message": {"id": self.id, "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}});
        let mut frames = vec![frame("message_start", &start)];
        if fault == Some(&Fault::ErrorEventAfter200) {
            let e = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
            frames.push(frame("error", &e));
            return stream_frames(frames, opts.chunk_delay, None);
        }
        let mut index = 0;
        if let Some(t) = &self.thinking {
            frames.push(frame("content_block_start", &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
            for piece in split_text(t, opts.chunks) {
                frames.push(frame("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": piece}})));
            }
            frames.push(frame("content_block_delta", &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": validate::signature(t)}})));
            frames.push(frame("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
            index = 1;
        }
        frames.push(frame("content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        frames.push(frame("ping", &json!({"type": "ping"})));
        for piece in split_text(&self.text, opts.chunks) {
            frames.push(frame("content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
        }
        frames.push(frame("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
        if let Some(name) = &self.tool {
            index += 1;
            frames.push(frame("content_block_start", &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": "toolu_fake1", "name": name, "input": {}}})));
            for part in ["", "{\"city\":", "\"Paris\"}"] {
                frames.push(frame("content_block_delta", &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part}})));
            }
            frames.push(frame("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
        }
        frames.push(frame("message_delta", &json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            "usage": {"output_tokens": self.usage["output_tokens"]}})));
        frames.push(frame("message_stop", &json!({"type": "message_stop"})));
        if fault == Some(&Fault::EndStreamEarly) {
            frames.truncate(frames.len() / 2);
        }
        let (cut_at, stall) = stream_break(fault, frames.len());
        stream_frames_with(frames, opts.chunk_delay, cut_at, stall)
    }
}

fn frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Words of every text in `system` and `messages`: a tokenizer stand-in tests can predict.
fn prompt_tokens(req: &Value) -> u64 {
    fn walk(v: &Value, n: &mut u64) {
        match v {
            Value::String(s) => *n += count_tokens(s),
            Value::Array(a) => a.iter().for_each(|x| walk(x, n)),
            Value::Object(o) => {
                if let Some(t) = o.get("text").or_else(|| o.get("content")) {
                    walk(t, n);
                }
            }
            _ => {}
        }
    }
    let mut n = 0;
    for k in ["system", "messages"] {
        if let Some(v) = req.get(k) {
            walk(v, &mut n);
        }
    }
    n.max(1)
}
