//! A fake of OpenAI's API (and so of every OpenAI-compatible provider): `POST /v1/chat/completions`
//! (plain and SSE), `POST /v1/embeddings`, `GET /v1/models`, bearer auth, OpenAI's error bodies.

use crate::server::{count_tokens, header_pairs, reply_for, split_text, FakeOptions, FakeServer, FakeState, Fault, RecordedCall};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

/// Starts the fake; its base URL for Keyway is `{url}/v1`.
pub async fn start(options: FakeOptions) -> std::io::Result<FakeServer> {
    let state = FakeState::new(options);
    FakeServer::start(router(state.clone()), state, None).await
}

pub fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .with_state(state)
}

pub fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))).into_response()
}

fn bearer(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned()
}

/// Applies a fault that is decided before the answer starts; stream faults are returned for later.
pub async fn pre_fault(fault: &Option<Fault>) -> Option<Response> {
    match fault {
        Some(Fault::RateLimit { retry_after_secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "requests", Some("rate_limit_exceeded"), "Rate limit reached for requests");
            if let Ok(v) = retry_after_secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            Some(r)
        }
        Some(Fault::ServerError) => Some(error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, "The server had an error while processing your request.")),
        Some(Fault::Unauthorized) => Some(error(StatusCode::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"), "Incorrect API key provided.")),
        Some(Fault::Forbidden) => Some(error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("unsupported_country_region_territory"),
            "Country, region, or territory not supported",
        )),
        Some(Fault::BadRequest) => Some(error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "Invalid request: injected fault.")),
        Some(Fault::QuotaExhausted) => Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        )),
        Some(Fault::SlowFirstByte(d)) => {
            tokio::time::sleep(*d).await;
            None
        }
        Some(Fault::InvalidJson) => Some((StatusCode::OK, [("content-type", "application/json")], "{not json").into_response()),
        _ => None,
    }
}

#[allow(clippy::result_large_err)] // the error is the answer to send; boxing it buys nothing in a fake
fn check(state: &FakeState, headers: &HeaderMap, path: &str, body: &Value) -> Result<Option<Fault>, Response> {
    let key = bearer(headers);
    if !state.key_ok(&key) {
        return Err(error(StatusCode::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"), "Incorrect API key provided."));
    }
    Ok(state.record(RecordedCall { method: "POST".into(), path: path.into(), key, headers: header_pairs(headers), body: body.clone() }))
}

async fn chat(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "We could not parse the JSON body of your request.");
    };
    let fault = match check(&state, &headers, "/v1/chat/completions", &req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    answer_chat(&state, &req, fault).await
}

/// Answers a chat request whose auth was checked and call recorded by the caller (fakes of
/// OpenAI-shaped APIs with another auth, such as Azure's, reuse it), applying `fault`.
pub async fn answer_chat(state: &FakeState, req: &Value, fault: Option<Fault>) -> Response {
    if let Some(r) = pre_fault(&fault).await {
        return r;
    }
    let Some(model) = req.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "you must provide a model parameter");
    };
    if req.get("messages").and_then(Value::as_array).is_none_or(|m| m.is_empty()) {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "'messages' must be a non-empty array");
    }
    // A structured-output request gets JSON of its schema's shape, as a real model returns.
    let text = match req.pointer("/response_format/type").and_then(Value::as_str) {
        Some("json_schema") => crate::server::json_for_schema(req.pointer("/response_format/json_schema/schema").unwrap_or(&Value::Null), &reply_for(req.get("messages"))).to_string(),
        Some("json_object") => json!({"echo": reply_for(req.get("messages"))}).to_string(),
        _ => reply_for(req.get("messages")),
    };
    let prompt_tokens = count_tokens(&req.get("messages").map(Value::to_string).unwrap_or_default()).max(1);
    let completion_tokens = count_tokens(&text);
    let tool = req
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .filter(|_| req.get("tool_choice").and_then(Value::as_str) != Some("none"))
        .and_then(|t| t.pointer("/function/name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let id = format!("chatcmpl-fake{}", state.next_id());
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens,
                       "prompt_tokens_details": {"cached_tokens": 0}});
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        let message = match &tool {
            Some(name) => json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_fake1", "type": "function", "function": {"name": name, "arguments": "{\"city\":\"Paris\"}"}}]}),
            None => json!({"role": "assistant", "content": text, "refusal": null}),
        };
        return Json(json!({
            "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null,
                         "finish_reason": if tool.is_some() { "tool_calls" } else { "stop" }}],
            "usage": usage, "system_fingerprint": "fp_fake"
        }))
        .into_response();
    }
    let include_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let opts = state.options();
    let mut events: Vec<Value> = Vec::new();
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "system_fingerprint": "fp_fake", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    events.push(chunk(json!({"role": "assistant", "content": ""}), None));
    match &tool {
        Some(name) => {
            events.push(chunk(json!({"tool_calls": [{"index": 0, "id": "call_fake1", "type": "function", "function": {"name": name, "arguments": ""}}]}), None));
            events.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), None));
            events.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), None));
            events.push(chunk(json!({}), Some("tool_calls")));
        }
        None => {
            for piece in split_text(&text, opts.chunks) {
                events.push(chunk(json!({"content": piece}), None));
            }
            events.push(chunk(json!({}), Some("stop")));
        }
    }
    if include_usage {
        let mut u = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": []});
        u["usage"] = usage;
        events.push(u);
    }
    sse_response(events, fault, opts.chunk_delay, |e| e.to_string(), true)
}

/// Streams `events` as `data:` lines (ending with `[DONE]` when `done`), applying stream faults.
pub fn sse_response<T: Send + Sync + 'static>(
    events: Vec<T>,
    fault: Option<Fault>,
    delay: std::time::Duration,
    render: impl Fn(&T) -> String + Send + Sync + 'static,
    done: bool,
) -> Response {
    if fault == Some(Fault::ErrorEventAfter200) {
        let e = json!({"error": {"message": "Rate limit reached (injected)", "type": "rate_limit_error", "code": "rate_limit_exceeded"}});
        return stream_frames(vec![Bytes::from(format!("data: {e}\n\n"))], delay, None);
    }
    let (cut_at, stall) = stream_break(fault.as_ref(), events.len());
    let mut frames: Vec<Bytes> = events.iter().map(|e| Bytes::from(format!("data: {}\n\n", render(e)))).collect();
    if fault == Some(Fault::EndStreamEarly) {
        frames.truncate(frames.len() / 2);
    } else if done && fault != Some(Fault::NoDoneMarker) {
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
    stream_frames_with(frames, delay, cut_at, stall)
}

/// Where a stream fault strikes in a stream of `n` frames: (cut before frame, stall before frame).
pub fn stream_break(fault: Option<&Fault>, n: usize) -> (Option<usize>, Option<(usize, std::time::Duration)>) {
    match fault {
        Some(Fault::CutStream) => (Some(n / 2), None),
        Some(Fault::StallMidStream(d)) => (None, Some((n / 2, *d))),
        _ => (None, None),
    }
}

/// Streams pre-rendered SSE frames as a 200 `text/event-stream`, waiting `delay` between two
/// frames; with `cut_at`, the connection breaks instead of sending that frame.
pub fn stream_frames(frames: Vec<Bytes>, delay: std::time::Duration, cut_at: Option<usize>) -> Response {
    stream_frames_with(frames, delay, cut_at, None)
}

/// As [`stream_frames`]; with `stall`, waits that long (connection open, nothing sent) before
/// sending frame `stall.0`.
pub fn stream_frames_with(
    frames: Vec<Bytes>,
    delay: std::time::Duration,
    cut_at: Option<usize>,
    stall: Option<(usize, std::time::Duration)>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        for (i, frame) in frames.into_iter().enumerate() {
            if Some(i) == cut_at {
                // A body error drops the connection at once, discarding unflushed writes: give
                // the frames already sent time to reach the client, so that "half" really arrives.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let _ = tx.send(Err(std::io::Error::other("stream cut (injected)"))).await;
                return;
            }
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some((_, d)) = stall.filter(|(at, _)| *at == i) {
                tokio::time::sleep(d).await;
            }
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// An mpsc receiver as a `Stream` (avoids a tokio-stream dependency).
pub fn tokio_stream_from<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

async fn embeddings(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "We could not parse the JSON body of your request.");
    };
    let fault = match check(&state, &headers, "/v1/embeddings", &req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    answer_embeddings(&req, fault).await
}

/// Answers an embeddings request whose auth was checked and call recorded by the caller.
pub async fn answer_embeddings(req: &Value, fault: Option<Fault>) -> Response {
    if let Some(r) = pre_fault(&fault).await {
        return r;
    }
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect(),
        _ => return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "'input' is required"),
    };
    let tokens: u64 = inputs.iter().map(|s| count_tokens(s).max(1)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v: Vec<f64> = (0..8).map(|d| ((s.len() + d * 7 + i) % 13) as f64 / 13.0).collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": req.get("model").cloned().unwrap_or(Value::Null),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

async fn models(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    if !state.key_ok(&bearer(&headers)) {
        return error(StatusCode::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"), "Incorrect API key provided.");
    }
    Json(json!({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"}]})).into_response()
}
