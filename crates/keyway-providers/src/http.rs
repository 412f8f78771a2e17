//! Sending a request upstream with Keyway's timeouts, and folding failures into [`ProviderError`].

use crate::client::{body_error, BodyError, HttpClient, Response};
use crate::error::{ProviderError, TimeoutKind};
use crate::timeouts::Timeouts;
use crate::sse::{SseDecoder, SseEvent};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::time::Duration;

/// Sends `req`, waiting at most `first_byte` for the response head. Non-2xx answers become errors.
pub async fn send(client: &HttpClient, req: reqwest::Request, t: &Timeouts) -> Result<Response, ProviderError> {
    let resp = match tokio::time::timeout(t.first_byte, client.execute(req)).await {
        Err(_) => return Err(ProviderError::Timeout(TimeoutKind::FirstByte)),
        Ok(r) => r?,
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(error_from_response(resp, t).await)
}

/// Reads a non-2xx answer (bounded) and classifies it.
pub async fn error_from_response(resp: Response, t: &Timeouts) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = match tokio::time::timeout(t.first_byte, read_limited(resp, 64 * 1024)).await {
        Ok(Ok(b)) => b,
        _ => Bytes::new(),
    };
    let message = error_message(&body).unwrap_or_else(|| format!("HTTP {status}"));
    let body = String::from_utf8(body.to_vec()).ok().filter(|s| !s.is_empty());
    ProviderError::from_status(status, retry_after, message, body)
}

async fn read_limited(mut resp: Response, limit: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(Bytes::from(out))
}

/// Reads a successful body whole, with the idle timeout between chunks and at most
/// `max_answer_bytes` (refused up front when `Content-Length` says more).
pub async fn read_body(mut resp: Response, t: &Timeouts) -> Result<Bytes, ProviderError> {
    let max = t.max_answer_bytes;
    let too_large = || ProviderError::Protocol(format!("the upstream's answer is larger than the {max}-byte cap (upstream.max_answer_bytes)"));
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(resp.content_length().unwrap_or(1024).min(1 << 20) as usize);
    loop {
        match tokio::time::timeout(t.idle, resp.chunk()).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutKind::Idle)),
            Ok(Err(e)) => return Err(ProviderError::Protocol(format!("body cut short: {}", body_error(&e)))),
            Ok(Ok(None)) => return Ok(Bytes::from(out)),
            Ok(Ok(Some(c))) => {
                if c.len() > max.saturating_sub(out.len()) {
                    return Err(too_large());
                }
                out.extend_from_slice(&c);
            }
        }
    }
}

/// Parses a JSON body, naming the failure as a protocol error.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| ProviderError::Protocol(format!("invalid JSON from upstream: {e}")))
}

/// `Retry-After` (seconds or an HTTP date) or `retry-after-ms`.
pub fn retry_after(h: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = h.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    let v = h.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_millis((secs * 1000.0) as u64));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now());
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The human message inside the error bodies providers send.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let pick = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => m.get("message").or_else(|| m.get("Message")).and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    };
    let v = match &v {
        Value::Array(a) => a.first()?.clone(),
        _ => v,
    };
    v.get("error").and_then(pick).or_else(|| pick(&v))
}

/// The upstream's SSE events, with the idle timeout between chunks and a line or event at most
/// `max_event_bytes`; ends after the last event.
pub fn sse_events(resp: Response, t: &Timeouts) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send {
    let bytes = resp.bytes_stream().boxed();
    let idle = t.idle;
    futures::stream::unfold(Some((bytes, SseDecoder::with_max_line(t.max_event_bytes))), move |state| async move {
        let (mut bytes, mut dec) = state?;
        loop {
            match dec.next_event() {
                Ok(Some(ev)) => return Some((Ok(ev), Some((bytes, dec)))),
                Ok(None) => {}
                Err(e) => return Some((Err(ProviderError::Protocol(e.to_string())), None)),
            }
            match tokio::time::timeout(idle, bytes.next()).await {
                Err(_) => return Some((Err(ProviderError::Timeout(TimeoutKind::Idle)), None)),
                Ok(Some(Ok(chunk))) => dec.push(&chunk),
                Ok(Some(Err(e))) => {
                    return Some((Err(ProviderError::Protocol(format!("stream cut short: {}", body_error(&e)))), None))
                }
                Ok(None) => return dec.finish().map(|ev| (Ok(ev), None)),
            }
        }
    })
}
