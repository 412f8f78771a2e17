//! What all fakes share: the listener, recorded calls and fault switches.

use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A misbehaviour to inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with `Retry-After: secs`.
    RateLimit { retry_after_secs: u64 },
    /// 500 (or 529/503 where the provider uses them) with the provider's error body.
    ServerError,
    /// 401 as if the key were wrong.
    Unauthorized,
    /// 403 as if the key were valid but lacked access (permission / region / model).
    Forbidden,
    /// 400 with the provider's invalid-request body.
    BadRequest,
    /// The provider's "the account is out of money or quota" answer: OpenAI 429
    /// `insufficient_quota`, Anthropic 400 "credit balance is too low", Gemini 429
    /// `RESOURCE_EXHAUSTED` for a per-day quota, Vertex 403 `BILLING_DISABLED`, Bedrock 429
    /// `ThrottlingException` "Too many tokens per day".
    QuotaExhausted,
    /// Wait this long before sending the response head.
    SlowFirstByte(Duration),
    /// Send half of the stream, then drop the connection.
    CutStream,
    /// Answer 200, then send an error event (overloaded / rate limit) before any content.
    ErrorEventAfter200,
    /// Answer 200 with a body that is not JSON.
    InvalidJson,
    /// Send half of the stream, then end the body cleanly, without the final event (`[DONE]`,
    /// `message_stop`): a 200 that stops early without an error at the HTTP level.
    EndStreamEarly,
    /// Send the whole stream but no closing `data: [DONE]` (as Perplexity's streams end).
    NoDoneMarker,
    /// Send half of the stream, then go silent this long before sending the rest.
    StallMidStream(Duration),
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    /// The credential the caller presented (bearer token, `x-api-key`, access key id, ...).
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// Behaviour knobs for a fake.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Keys accepted; empty accepts any non-empty key.
    pub keys: HashSet<String>,
    /// Delay between streamed chunks.
    pub chunk_delay: Duration,
    /// Number of content chunks in a stream.
    pub chunks: usize,
    /// Skip recording calls (benchmarks).
    pub record: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self { keys: HashSet::new(), chunk_delay: Duration::ZERO, chunks: 4, record: true }
    }
}

#[derive(Debug, Default)]
struct Faults {
    /// Applies to every call until cleared.
    sticky: Option<Fault>,
    /// Applies to calls made with this key until cleared.
    by_key: HashMap<String, Fault>,
    /// Applied once each, in order, before the sticky one.
    queue: VecDeque<Fault>,
}

/// State shared by a fake's handlers and the test holding the [`FakeServer`].
#[derive(Debug)]
pub struct FakeState {
    pub options: Mutex<FakeOptions>,
    calls: Mutex<Vec<RecordedCall>>,
    faults: Mutex<Faults>,
    counter: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeState {
    pub fn new(options: FakeOptions) -> Arc<Self> {
        Arc::new(Self {
            options: Mutex::new(options),
            calls: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            counter: AtomicU64::new(0),
        })
    }

    pub fn key_ok(&self, key: &str) -> bool {
        let o = lock(&self.options);
        !key.is_empty() && (o.keys.is_empty() || o.keys.contains(key))
    }

    pub fn options(&self) -> FakeOptions {
        lock(&self.options).clone()
    }

    /// Records a call (unless recording is off) and returns the fault to apply to it, if any.
    pub fn record(&self, call: RecordedCall) -> Option<Fault> {
        self.counter.fetch_add(1, Ordering::Relaxed);
        let fault = {
            let mut f = lock(&self.faults);
            f.queue.pop_front().or_else(|| f.by_key.get(&call.key).cloned()).or_else(|| f.sticky.clone())
        };
        if lock(&self.options).record {
            lock(&self.calls).push(call);
        }
        fault
    }

    pub fn next_id(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

/// A running fake on an ephemeral loopback port. Dropping it stops the server.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Serves `router` on 127.0.0.1:0 (or `addr`), plus the `/__fake/...` control routes
    /// ([`control_router`]) so that tests in other languages can flip faults and read calls.
    pub async fn start(router: axum::Router, state: Arc<FakeState>, addr: Option<SocketAddr>) -> std::io::Result<Self> {
        let router = router.merge(control_router(state.clone()));
        let listener = tokio::net::TcpListener::bind(addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
        let addr = listener.local_addr()?;
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.state.calls).clone()
    }

    pub fn calls_with_key(&self, key: &str) -> usize {
        lock(&self.state.calls).iter().filter(|c| c.key == key).count()
    }

    pub fn clear_calls(&self) {
        lock(&self.state.calls).clear();
    }

    /// Every call fails this way until [`FakeServer::clear_faults`].
    pub fn set_fault(&self, fault: Fault) {
        lock(&self.state.faults).sticky = Some(fault);
    }

    /// Calls made with `key` fail this way until cleared.
    pub fn set_fault_for_key(&self, key: &str, fault: Fault) {
        lock(&self.state.faults).by_key.insert(key.to_owned(), fault);
    }

    /// The next call fails this way (queued faults run first, in order).
    pub fn fail_next(&self, fault: Fault) {
        lock(&self.state.faults).queue.push_back(fault);
    }

    pub fn clear_faults(&self) {
        *lock(&self.state.faults) = Faults::default();
    }

    pub fn set_options(&self, f: impl FnOnce(&mut FakeOptions)) {
        f(&mut lock(&self.state.options));
    }
}

/// `sk-...AbCd`: enough of a key to tell which one was used, never the whole of it.
pub fn key_hint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len().min(4));
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

/// `POST /__fake/fault` body.
#[derive(Debug, serde::Deserialize)]
struct FaultRequest {
    /// `rate_limit`, `server_error`, `unauthorized`, `forbidden`, `bad_request`, `quota_exhausted`, `slow`, `cut_stream`,
    /// `end_early`, `no_done`, `stall` (`ms`), `error_event`, `invalid_json`, or null to clear (all faults, or only `key`'s).
    fault: Option<String>,
    /// Only calls made with this key.
    key: Option<String>,
    /// Only the next call (queued), instead of every call until cleared.
    #[serde(default)]
    once: bool,
    retry_after_secs: Option<u64>,
    ms: Option<u64>,
}

fn parse_fault(r: &FaultRequest) -> Result<Option<Fault>, String> {
    let Some(name) = r.fault.as_deref() else { return Ok(None) };
    Ok(Some(match name {
        "rate_limit" => Fault::RateLimit { retry_after_secs: r.retry_after_secs.unwrap_or(1) },
        "server_error" => Fault::ServerError,
        "unauthorized" => Fault::Unauthorized,
        "forbidden" => Fault::Forbidden,
        "bad_request" => Fault::BadRequest,
        "quota_exhausted" => Fault::QuotaExhausted,
        "slow" => Fault::SlowFirstByte(Duration::from_millis(r.ms.unwrap_or(1000))),
        "cut_stream" => Fault::CutStream,
        "end_early" => Fault::EndStreamEarly,
        "no_done" => Fault::NoDoneMarker,
        "stall" => Fault::StallMidStream(Duration::from_millis(r.ms.unwrap_or(1000))),
        "error_event" => Fault::ErrorEventAfter200,
        "invalid_json" => Fault::InvalidJson,
        other => return Err(format!("unknown fault `{other}`")),
    }))
}

/// `GET /__fake/calls`, `POST /__fake/fault`, `POST /__fake/reset`: the fault switches and the
/// call log over HTTP, for the Python SDK tests and `keyway demo`. Loopback test servers only.
pub fn control_router(state: Arc<FakeState>) -> axum::Router {
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use axum::Json;
    async fn calls(State(s): State<Arc<FakeState>>) -> Json<Value> {
        let list: Vec<Value> = lock(&s.calls)
            .iter()
            .map(|c| serde_json::json!({"method": c.method, "path": c.path, "key_hint": key_hint(&c.key), "body": c.body}))
            .collect();
        Json(Value::Array(list))
    }
    async fn fault(State(s): State<Arc<FakeState>>, Json(r): Json<FaultRequest>) -> (StatusCode, Json<Value>) {
        let f = match parse_fault(&r) {
            Ok(f) => f,
            Err(e) => return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": e}))),
        };
        let mut faults = lock(&s.faults);
        match (f, r.key, r.once) {
            (None, Some(k), _) => {
                faults.by_key.remove(&k);
            }
            (None, None, _) => *faults = Faults::default(),
            (Some(f), _, true) => faults.queue.push_back(f),
            (Some(f), Some(k), false) => {
                faults.by_key.insert(k, f);
            }
            (Some(f), None, false) => faults.sticky = Some(f),
        }
        (StatusCode::OK, Json(serde_json::json!({"ok": true})))
    }
    async fn reset(State(s): State<Arc<FakeState>>) -> Json<Value> {
        *lock(&s.faults) = Faults::default();
        lock(&s.calls).clear();
        Json(serde_json::json!({"ok": true}))
    }
    axum::Router::new()
        .route("/__fake/calls", get(calls))
        .route("/__fake/fault", post(fault))
        .route("/__fake/reset", post(reset))
        .with_state(state)
}

/// Headers as recorded pairs (lower-case names).
pub fn header_pairs(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect()
}

/// A deterministic reply text derived from the last user message, and a rough token count.
pub fn reply_for(messages: Option<&Value>) -> String {
    let last = messages
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")))
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        })
        .unwrap_or_default();
    format!("Echo: {last}")
}

/// A value of a JSON schema's shape (objects with every property, strings saying `text`),
/// for answers to structured-output requests.
pub fn json_for_schema(schema: &Value, text: &str) -> Value {
    if let Some(v) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return v.clone();
    }
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
        Some(Value::String(k)) => k.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "object" => {
            let props = schema.get("properties").and_then(Value::as_object);
            Value::Object(props.into_iter().flatten().map(|(k, s)| (k.clone(), json_for_schema(s, text))).collect())
        }
        "array" => Value::Array(vec![json_for_schema(schema.get("items").unwrap_or(&Value::Null), text)]),
        "integer" | "number" => serde_json::json!(1),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::String(text.to_owned()),
    }
}

/// Whitespace-separated words: a stand-in tokenizer that tests can predict.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Splits `text` into `n` roughly equal pieces (on char boundaries), never empty pieces.
pub fn split_text(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}
