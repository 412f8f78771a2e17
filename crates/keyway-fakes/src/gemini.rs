//! A fake of Google AI Studio's Gemini API (`POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`, `:embedContent`, `:batchEmbedContents`, key in
//! `x-goog-api-key`), and the Gemini answer format that the Vertex fake shares ([`generate`]).

use crate::openai::sse_response;
use crate::server::{count_tokens, header_pairs, split_text, FakeOptions, FakeServer, FakeState, Fault, RecordedCall};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// Starts the fake; Keyway's base URL for it is `{url}` (paths start `/v1beta/`).
pub async fn start(options: FakeOptions) -> std::io::Result<FakeServer> {
    let state = FakeState::new(options);
    let router = Router::new().route("/v1beta/models/{action}", post(studio)).with_state(state.clone());
    FakeServer::start(router, state, None).await
}

/// Google's error body: `{"error": {code, message, status}}`.
pub fn error(status: StatusCode, rpc_status: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": status.as_u16(), "message": message, "status": rpc_status}}))).into_response()
}

/// The free tier's requests-per-day quota spent: a 429 like a rate limit, but until tomorrow.
fn daily_quota() -> Response {
    let body = json!({"error": {"code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, "quotaValue": "250"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "22s"}]}});
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

fn key_invalid() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}})),
    )
        .into_response()
}

/// Faults decided before answering, in Google's shapes.
pub async fn pre_fault(fault: &Option<Fault>) -> Option<Response> {
    match fault {
        Some(Fault::RateLimit { retry_after_secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).");
            if let Ok(v) = retry_after_secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            Some(r)
        }
        Some(Fault::ServerError) => Some(error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "An internal error has occurred.")),
        Some(Fault::Unauthorized) => Some(error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Request had invalid authentication credentials.")),
        Some(Fault::BadRequest) => Some(error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Invalid request: injected fault.")),
        Some(Fault::QuotaExhausted) => Some(daily_quota()),
        Some(Fault::SlowFirstByte(d)) => {
            tokio::time::sleep(*d).await;
            None
        }
        Some(Fault::InvalidJson) => Some((StatusCode::OK, [("content-type", "application/json")], "{not json").into_response()),
        _ => None,
    }
}

async fn studio(State(state): State<Arc<FakeState>>, Path(action): Path<String>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some((model, method)) = action.split_once(':') else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "Unknown method.");
    };
    // Keyway must never put the key in the URL, where logs would keep it.
    if uri.query().is_some_and(|q| q.split('&').any(|p| p.starts_with("key="))) {
        return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "keyway fake: the API key belongs in x-goog-api-key, not in the URL");
    }
    let key = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if key.is_empty() {
        return error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
    }
    if !state.key_ok(&key) {
        return key_invalid();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let path = match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    let fault = state.record(RecordedCall { method: "POST".into(), path, key, headers: header_pairs(&headers), body: req.clone() });
    if let Some(r) = pre_fault(&fault).await {
        return r;
    }
    let sse = uri.query().is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    match method {
        "generateContent" => generate(&req, model, false, fault, &state.options()),
        "streamGenerateContent" if sse => generate(&req, model, true, fault, &state.options()),
        "streamGenerateContent" => error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "keyway fake: only alt=sse streams are served"),
        "embedContent" => embed(&req, model, false),
        "batchEmbedContents" => embed(&req, model, true),
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "Unknown method."),
    }
}

fn vector(text: &str, dims: usize, i: usize) -> Vec<f64> {
    (0..dims).map(|d| ((text.len() + d * 7 + i) % 13) as f64 / 13.0).collect()
}

fn embed(req: &Value, model: &str, batch: bool) -> Response {
    let invalid = |m: &str| error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m);
    let one = |r: &Value, i: usize| -> Option<Value> {
        let text = r.pointer("/content/parts/0/text").and_then(Value::as_str)?;
        let dims = r.get("outputDimensionality").and_then(Value::as_u64).unwrap_or(8) as usize;
        Some(json!({"values": vector(text, dims, i)}))
    };
    const NO_TEXT: &str = "content.parts[0].text is required";
    if !batch {
        return match one(req, 0) {
            Some(e) => Json(json!({"embedding": e})).into_response(),
            None => invalid(NO_TEXT),
        };
    }
    let Some(reqs) = req.get("requests").and_then(Value::as_array).filter(|r| !r.is_empty()) else {
        return invalid("requests must not be empty");
    };
    let mut out = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        if r.get("model").and_then(Value::as_str) != Some(&format!("models/{model}")) {
            return invalid("Model names in the batch must match the URL's model.");
        }
        match one(r, i) {
            Some(e) => out.push(e),
            None => return invalid(NO_TEXT),
        }
    }
    Json(json!({"embeddings": out})).into_response()
}

/// Checks the `contents` shape a translation bug would break.
fn validate(req: &Value) -> Result<&Vec<Value>, String> {
    let contents = req.get("contents").and_then(Value::as_array).filter(|c| !c.is_empty()).ok_or("contents is not specified")?;
    for (i, c) in contents.iter().enumerate() {
        match c.get("role").and_then(Value::as_str) {
            Some("user" | "model") => {}
            other => return Err(format!("Please use a valid role: user, model (contents[{i}].role is {other:?}).")),
        }
        if c.get("parts").and_then(Value::as_array).is_none_or(|p| p.is_empty()) {
            return Err(format!("contents[{i}].parts must not be empty."));
        }
    }
    Ok(contents)
}

/// A Gemini answer (whole or as SSE): a function call when tools are offered (unless mode NONE)
/// and the last turn is not a function response, else an echo of the last user text.
pub fn generate(req: &Value, model: &str, stream: bool, fault: Option<Fault>, opts: &FakeOptions) -> Response {
    let contents = match validate(req) {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &m),
    };
    let last_parts = contents.last().and_then(|c| c.get("parts")).and_then(Value::as_array).cloned().unwrap_or_default();
    let answered = last_parts.iter().find_map(|p| p.get("functionResponse"));
    let tool = req
        .pointer("/tools/0/functionDeclarations/0/name")
        .and_then(Value::as_str)
        .filter(|_| answered.is_none() && req.pointer("/toolConfig/functionCallingConfig/mode").and_then(Value::as_str) != Some("NONE"))
        .map(str::to_owned);
    let text = match answered {
        Some(fr) => format!("Tool said: {}", fr.get("response").map(Value::to_string).unwrap_or_default()),
        None => {
            let last_user = contents.iter().rev().find(|c| c["role"] == "user");
            let said: Vec<&str> = last_user
                .and_then(|c| c["parts"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            format!("Echo: {}", said.join(" "))
        }
    };
    let prompt = count_tokens(&Value::Array(contents.clone()).to_string()).max(1);
    let output = if tool.is_some() { 5 } else { count_tokens(&text) };
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output});
    let call_part = |name: &str| json!({"functionCall": {"name": name, "args": {"city": "Paris"}}});
    let response_id = uuid::Uuid::new_v4().simple().to_string();
    let wrap = |parts: Value, finish: Option<&str>, usage: Value| {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        json!({"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": response_id})
    };
    if !stream {
        let parts = match &tool {
            Some(name) => json!([call_part(name)]),
            None => json!([{"text": text}]),
        };
        return Json(wrap(parts, Some("STOP"), usage)).into_response();
    }
    if fault == Some(Fault::ErrorEventAfter200) {
        let e = json!({"error": {"code": 429, "message": "Resource has been exhausted (injected).", "status": "RESOURCE_EXHAUSTED"}});
        return sse_response(vec![e], None, opts.chunk_delay, |e| e.to_string(), false);
    }
    let partial_usage = json!({"promptTokenCount": prompt});
    let mut events: Vec<Value> = Vec::new();
    match &tool {
        Some(name) => events.push(wrap(json!([call_part(name)]), Some("STOP"), usage)),
        None => {
            let pieces = split_text(&text, opts.chunks);
            let n = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                let last = i + 1 == n;
                events.push(wrap(json!([{"text": piece}]), last.then_some("STOP"), if last { usage.clone() } else { partial_usage.clone() }));
            }
        }
    }
    sse_response(events, fault, opts.chunk_delay, |e| e.to_string(), false)
}
