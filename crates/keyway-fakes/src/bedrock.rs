//! A fake of Bedrock's Converse API: `POST /model/{modelId}/converse` (JSON) and
//! `/converse-stream` (AWS event-stream binary frames, CRCs and all), with SigV4 checked by an
//! independent verifier ([`sigv4`]) or a Bedrock API key as `Authorization: Bearer`.
//!
//! The fake serves every region: `/{region}/model/...` is that region's endpoint, so tests point
//! Keyway's base template at `{url}/{region}` and the fake checks the signature's scope against the
//! region in the path. Plain `/model/...` is the region given in [`BedrockConfig::region`].

pub mod sigv4;

use crate::openai::tokio_stream_from;
use crate::server::{count_tokens, header_pairs, reply_for, split_text, FakeOptions, FakeServer, FakeState, Fault, RecordedCall};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use sigv4::{IamKey, RawRequest};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct BedrockConfig {
    /// IAM keys: access key id -> secret (and session token).
    pub iam: HashMap<String, IamKey>,
    /// The region of the un-prefixed `/model/...` routes.
    pub region: String,
    /// Streams send this many good frames, then one whose message CRC is wrong (and stop).
    pub corrupt_crc_after: Option<usize>,
}

impl Default for BedrockConfig {
    fn default() -> Self {
        Self { iam: HashMap::new(), region: "us-east-1".into(), corrupt_crc_after: None }
    }
}

impl BedrockConfig {
    pub fn with_key(mut self, access_key_id: &str, secret: &str) -> Self {
        self.iam.insert(access_key_id.into(), IamKey { secret_access_key: secret.into(), session_token: None });
        self
    }
}

struct Fake {
    state: Arc<FakeState>,
    config: BedrockConfig,
}

/// Starts the fake. Bedrock API keys go in `options.keys`; IAM keys in `config`.
/// Keyway's base template for it: `{url}/{region}`.
pub async fn start(options: FakeOptions, config: BedrockConfig) -> std::io::Result<FakeServer> {
    let state = FakeState::new(options);
    let fake = Arc::new(Fake { state: state.clone(), config });
    let router = Router::new()
        .route("/model/{model}/{op}", post(default_region))
        .route("/{region}/model/{model}/{op}", post(in_region))
        .with_state(fake);
    FakeServer::start(router, state, None).await
}

/// Bedrock's error body and `x-amzn-ErrorType` header.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut r = (status, [("content-type", "application/json")], json!({"message": message}).to_string()).into_response();
    if let Ok(v) = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/").parse() {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

async fn default_region(State(f): State<Arc<Fake>>, Path((model, op)): Path<(String, String)>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let region = f.config.region.clone();
    handle(f, region, model, op, method, uri, headers, body).await
}

async fn in_region(
    State(f): State<Arc<Fake>>,
    Path((region, model, op)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(f, region, model, op, method, uri, headers, body).await
}

/// Checks the caller's credential; returns the key to record it under, or the 403 to send as
/// `(x-amzn-ErrorType, message)`.
fn authenticate(f: &Fake, region: &str, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<String, (&'static str, String)> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(key) = auth.strip_prefix("Bearer ") {
        return if f.state.key_ok(key) {
            Ok(key.to_owned())
        } else {
            Err(("AccessDeniedException", "Authentication failed: Please make sure your API Key is valid.".into()))
        };
    }
    let pairs = header_pairs(headers);
    let raw = RawRequest { method: method.as_str(), path: uri.path(), query: uri.query().unwrap_or(""), headers: &pairs, body };
    sigv4::verify(&raw, &f.config.iam, "bedrock", region, chrono::Utc::now())
        .map(|v| v.access_key_id)
        .map_err(|e| (e.error_type(), e.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn handle(f: Arc<Fake>, region: String, model: String, op: String, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let stream = match op.as_str() {
        "converse" => false,
        "converse-stream" => true,
        _ => return error(StatusCode::NOT_FOUND, "UnknownOperationException", "Unknown operation"),
    };
    let key = match authenticate(&f, &region, &method, &uri, &headers, &body) {
        Ok(k) => k,
        Err((kind, message)) => return error(StatusCode::FORBIDDEN, kind, &message),
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "SerializationException", "Unable to parse the request body.");
    };
    let fault = f.state.record(RecordedCall { method: "POST".into(), path: uri.path().to_owned(), key, headers: header_pairs(&headers), body: req.clone() });
    if let Some(r) = pre_fault(&fault, stream).await {
        return r;
    }
    if let Err(message) = validate(&req) {
        return error(StatusCode::BAD_REQUEST, "ValidationException", &message);
    }
    let answer = Answer::for_request(&req);
    if !stream {
        return (StatusCode::OK, [("content-type", "application/json")], answer.converse(&model).to_string()).into_response();
    }
    let opts = f.state.options();
    event_stream(answer.events(opts.chunks), fault, opts.chunk_delay, f.config.corrupt_crc_after)
}

async fn pre_fault(fault: &Option<Fault>, stream: bool) -> Option<Response> {
    match fault {
        Some(Fault::RateLimit { retry_after_secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", "Too many requests, please wait before trying again.");
            if let Ok(v) = retry_after_secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            Some(r)
        }
        Some(Fault::ServerError) => Some(error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", "The server encountered an internal error.")),
        Some(Fault::Unauthorized) => Some(error(StatusCode::FORBIDDEN, "UnrecognizedClientException", "The security token included in the request is invalid.")),
        Some(Fault::BadRequest) => Some(error(StatusCode::BAD_REQUEST, "ValidationException", "Invalid request: injected fault.")),
        // The model's daily token quota: a throttle by name, but not one that passes in seconds.
        Some(Fault::QuotaExhausted) => Some(error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", "Too many tokens per day, please wait before trying again.")),
        Some(Fault::SlowFirstByte(d)) => {
            tokio::time::sleep(*d).await;
            None
        }
        Some(Fault::InvalidJson) if !stream => Some((StatusCode::OK, [("content-type", "application/json")], "{not json").into_response()),
        _ => None,
    }
}

/// The checks Converse makes that a translation bug would trip.
fn validate(req: &Value) -> Result<(), String> {
    let msgs = req.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()).ok_or("messages must not be empty")?;
    let mut expect = "user";
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != expect {
            return Err(format!("A conversation must alternate between user and assistant roles (message {i} is `{role}`)."));
        }
        if m.get("content").and_then(Value::as_array).is_none_or(|c| c.is_empty()) {
            return Err(format!("The content field in message {i} is empty."));
        }
        expect = if role == "user" { "assistant" } else { "user" };
    }
    let has_tool_blocks = msgs.iter().flat_map(|m| m["content"].as_array().into_iter().flatten()).any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some());
    if has_tool_blocks && req.get("toolConfig").is_none() {
        return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into());
    }
    Ok(())
}

/// What the fake says: a tool call when tools are offered and the last turn is not a tool
/// result, else an echo of the last user text.
struct Answer {
    text: Option<String>,
    tool: Option<String>,
    usage: Value,
}

impl Answer {
    fn for_request(req: &Value) -> Self {
        let msgs = req.get("messages");
        let last = msgs.and_then(Value::as_array).and_then(|m| m.last());
        let blocks = last.and_then(|m| m.get("content")).and_then(Value::as_array).cloned().unwrap_or_default();
        let tool_result = blocks.iter().find_map(|b| b.get("toolResult"));
        let tool = req
            .pointer("/toolConfig/tools/0/toolSpec/name")
            .and_then(Value::as_str)
            .filter(|_| tool_result.is_none())
            .map(str::to_owned);
        let text = match tool_result {
            Some(tr) => format!("Tool said: {}", tr.pointer("/content/0/text").and_then(Value::as_str).map(str::to_owned)
                .or_else(|| tr.pointer("/content/0/json").map(Value::to_string)).unwrap_or_default()),
            None => reply_for(msgs),
        };
        let input_tokens = count_tokens(&msgs.map(Value::to_string).unwrap_or_default()).max(1);
        let output_tokens = if tool.is_some() { 5 } else { count_tokens(&text) };
        let cached = req.to_string().contains("cachePoint");
        let mut usage = json!({"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens});
        if cached {
            // Deterministic cache numbers so that tests can check the mapping.
            usage["cacheReadInputTokens"] = json!(7);
            usage["cacheWriteInputTokens"] = json!(3);
            usage["totalTokens"] = json!(input_tokens + output_tokens + 10);
        }
        Self { text: tool.is_none().then_some(text), tool, usage }
    }

    fn stop_reason(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    fn converse(&self, _model: &str) -> Value {
        let content = match (&self.tool, &self.text) {
            (Some(name), _) => json!([{"toolUse": {"toolUseId": "tooluse_fake1", "name": name, "input": {"city": "Paris"}}}]),
            (None, t) => json!([{"text": t.clone().unwrap_or_default()}]),
        };
        json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": self.stop_reason(),
               "usage": self.usage, "metrics": {"latencyMs": 12}})
    }

    /// `(event type, payload)` in ConverseStream's order.
    fn events(&self, chunks: usize) -> Vec<(&'static str, Value)> {
        let mut ev = vec![("messageStart", json!({"role": "assistant"}))];
        match (&self.tool, &self.text) {
            (Some(name), _) => {
                ev.push(("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_fake1", "name": name}}})));
                ev.push(("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"city\":"}}})));
                ev.push(("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Paris\"}"}}})));
            }
            (None, t) => {
                for piece in split_text(t.as_deref().unwrap_or(""), chunks) {
                    ev.push(("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": piece}})));
                }
            }
        }
        ev.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
        ev.push(("messageStop", json!({"stopReason": self.stop_reason()})));
        ev.push(("metadata", json!({"usage": self.usage, "metrics": {"latencyMs": 12}})));
        ev
    }
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

/// One event frame, as Bedrock writes it (with the `p` padding field real frames carry).
pub fn event_frame(kind: &str, mut payload: Value) -> Vec<u8> {
    if let Some(o) = payload.as_object_mut() {
        o.insert("p".into(), json!("abcdefghijklmnopqrstuvwxyzABCDEF"));
    }
    frame(
        Message::new(payload.to_string().into_bytes())
            .add_header(string_header(":event-type", kind))
            .add_header(string_header(":content-type", "application/json"))
            .add_header(string_header(":message-type", "event")),
    )
}

/// An exception frame (`throttlingException`, `modelStreamErrorException`, ...).
pub fn exception_frame(kind: &str, message: &str) -> Vec<u8> {
    frame(
        Message::new(json!({"message": message}).to_string().into_bytes())
            .add_header(string_header(":exception-type", kind))
            .add_header(string_header(":content-type", "application/json"))
            .add_header(string_header(":message-type", "exception")),
    )
}

fn frame(m: Message) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing fails only for headers or payloads past the format's limits, which these are not.
    let _ = write_message_to(&m, &mut out);
    out
}

/// Streams frames, each split across two writes so that clients must reassemble them.
fn event_stream(events: Vec<(&'static str, Value)>, fault: Option<Fault>, delay: std::time::Duration, corrupt_after: Option<usize>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut frames: Vec<Vec<u8>> = events.into_iter().map(|(k, p)| event_frame(k, p)).collect();
        match fault {
            Some(Fault::ErrorEventAfter200) => {
                frames.truncate(1);
                frames.push(exception_frame("throttlingException", "Too many tokens, please wait before trying again."));
            }
            Some(Fault::InvalidJson) => {
                frames.truncate(1);
                frames.push(frame(
                    Message::new(&b"{not json"[..])
                        .add_header(string_header(":event-type", "contentBlockDelta"))
                        .add_header(string_header(":message-type", "event")),
                ));
            }
            _ => {}
        }
        if let Some(n) = corrupt_after {
            frames.truncate(n + 1);
            if let Some(last) = frames.get_mut(n) {
                // Flip a bit of the trailing message CRC: the frame is whole but fails its check.
                if let Some(b) = last.last_mut() {
                    *b ^= 0x01;
                }
            }
        }
        let cut_at = (fault == Some(Fault::CutStream)).then_some(frames.len() / 2);
        for (i, f) in frames.into_iter().enumerate() {
            if Some(i) == cut_at {
                let _ = tx.send(Err(std::io::Error::other("stream cut (injected)"))).await;
                return;
            }
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let (a, b) = f.split_at(f.len() / 2);
            if tx.send(Ok(Bytes::copy_from_slice(a))).await.is_err() || tx.send(Ok(Bytes::copy_from_slice(b))).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string())
        .body(Body::from_stream(tokio_stream_from(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
