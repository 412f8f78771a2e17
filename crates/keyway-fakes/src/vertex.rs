//! A fake of Google's OAuth token endpoint and Vertex AI.
//!
//! `POST /token` takes a service-account JWT assertion (RFC 7523), verifies its RS256 signature
//! against the registered account's public key, its `aud` (this endpoint's URL), `iat`/`exp`
//! (current, at most an hour apart), scope and grant type, and issues a random access token
//! that lives `token_lifetime_secs`. Model routes (`/v1/projects/{p}/locations/{l}/publishers/
//! {google|anthropic}/models/{m}:{method}`, optionally behind a `/{location}` prefix that stands
//! for the regional host) require `Authorization: Bearer <issued, unexpired token>` and a
//! project the token's account belongs to. Keyway's base template for it: `{url}/{location}`.

use crate::gemini::{self, pre_fault};
use crate::openai::sse_response;
use crate::server::{count_tokens, header_pairs, split_text, FakeOptions, FakeServer, FakeState, Fault, RecordedCall};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Debug, Clone)]
struct Account {
    public_key_pem: String,
    key_id: Option<String>,
    project: String,
}

/// The token side of the fake; tests reach it through [`VertexFake::auth`].
#[derive(Debug)]
pub struct VertexAuth {
    accounts: Mutex<HashMap<String, Account>>,
    /// access token -> (expiry, account email)
    tokens: Mutex<HashMap<String, (Instant, String)>>,
    lifetime_secs: AtomicU64,
    delay_ms: AtomicU64,
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl VertexAuth {
    fn new() -> Self {
        Self {
            accounts: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            lifetime_secs: AtomicU64::new(3600),
            delay_ms: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
        }
    }

    /// Registers a service account by its public key (PEM, PKCS#1 or SPKI) and project.
    pub fn register(&self, client_email: &str, public_key_pem: &str, key_id: Option<&str>, project: &str) {
        lock(&self.accounts).insert(
            client_email.to_owned(),
            Account { public_key_pem: public_key_pem.to_owned(), key_id: key_id.map(str::to_owned), project: project.to_owned() },
        );
    }

    /// `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.lifetime_secs.store(secs, Ordering::SeqCst);
    }

    /// Delay before the token endpoint answers (to make concurrent refreshes overlap).
    pub fn set_token_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests to `/token`, accepted or not.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::SeqCst)
    }

    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::SeqCst)
    }

    /// Makes every issued token invalid (as if revoked).
    pub fn revoke_all(&self) {
        lock(&self.tokens).clear();
    }

    fn account_for_token(&self, token: &str) -> Option<Account> {
        let (expiry, email) = lock(&self.tokens).get(token).cloned()?;
        if Instant::now() >= expiry {
            return None;
        }
        lock(&self.accounts).get(&email).cloned()
    }
}

/// A running Vertex fake.
pub struct VertexFake {
    pub server: FakeServer,
    pub auth: Arc<VertexAuth>,
}

impl VertexFake {
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The `token_uri` service accounts should name.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// Keyway's base template for this fake.
    pub fn base_template(&self) -> String {
        format!("{}/{{location}}", self.server.url())
    }
}

struct Fake {
    state: Arc<FakeState>,
    auth: Arc<VertexAuth>,
}

pub async fn start(options: FakeOptions) -> std::io::Result<VertexFake> {
    let state = FakeState::new(options);
    let auth = Arc::new(VertexAuth::new());
    let fake = Arc::new(Fake { state: state.clone(), auth: auth.clone() });
    let router = Router::new().route("/token", post(token)).fallback(model_call).with_state(fake);
    let server = FakeServer::start(router, state, None).await?;
    Ok(VertexFake { server, auth })
}

fn oauth_error(kind: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": kind, "error_description": description}))).into_response()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (dec(k), dec(v)))
        .collect()
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    scope: Option<String>,
    iat: i64,
    exp: i64,
}

/// Checks an assertion; returns the account's email, or the OAuth error `(kind, description)`.
fn check_assertion(auth: &VertexAuth, jwt: &str, audience: &str) -> Result<String, (&'static str, &'static str)> {
    let invalid = |d: &'static str| ("invalid_grant", d);
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| invalid("Invalid JWT: malformed"))?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(invalid("Invalid JWT: the algorithm must be RS256"));
    }
    // The issuer picks the key; read it before verifying.
    let payload = jwt.split('.').nth(1).ok_or_else(|| invalid("Invalid JWT: malformed"))?;
    let unverified: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("Invalid JWT: malformed"))?;
    let email = unverified.get("iss").and_then(Value::as_str).unwrap_or("").to_owned();
    let account = lock(&auth.accounts).get(&email).cloned().ok_or_else(|| invalid("Invalid grant: account not found"))?;
    if account.key_id.is_some() && header.kid != account.key_id {
        return Err(invalid("Invalid JWT Signature."));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(account.public_key_pem.as_bytes()).map_err(|_| invalid("Invalid JWT Signature."))?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    v.leeway = 0;
    let claims = match jsonwebtoken::decode::<Claims>(jwt, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            return Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAudience => invalid("Invalid JWT: Failed audience check."),
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."),
                _ => invalid("Invalid JWT Signature."),
            })
        }
    };
    let now = chrono::Utc::now().timestamp();
    if claims.iss != email || claims.iat > now + 60 || claims.exp <= now || claims.exp - claims.iat > 3600 {
        return Err(invalid("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."));
    }
    if !claims.scope.as_deref().unwrap_or("").split(' ').any(|s| s == SCOPE) {
        return Err(("invalid_scope", "Invalid OAuth scope or ID token audience provided."));
    }
    Ok(email)
}

async fn token(State(f): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    f.auth.token_requests.fetch_add(1, Ordering::SeqCst);
    let delay = f.auth.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let form = form(&body);
    if form.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
        return oauth_error("unsupported_grant_type", &format!("Invalid grant_type: {}", form.get("grant_type").map(String::as_str).unwrap_or("")));
    }
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
    let audience = format!("http://{host}/token");
    let email = match check_assertion(&f.auth, form.get("assertion").map(String::as_str).unwrap_or(""), &audience) {
        Ok(e) => e,
        Err((kind, description)) => return oauth_error(kind, description),
    };
    let lifetime = f.auth.lifetime_secs.load(Ordering::SeqCst);
    let access = format!("ya29.fake-{}", uuid::Uuid::new_v4().simple());
    lock(&f.auth.tokens).insert(access.clone(), (Instant::now() + Duration::from_secs(lifetime), email));
    f.auth.tokens_issued.fetch_add(1, Ordering::SeqCst);
    Json(json!({"access_token": access, "expires_in": lifetime, "token_type": "Bearer"})).into_response()
}

/// `[/{host location}]/v1/projects/{p}/locations/{l}/publishers/{pub}/models/{model}:{method}`
struct Target {
    host_location: Option<String>,
    project: String,
    location: String,
    publisher: String,
    model: String,
    method: String,
}

fn parse_target(path: &str) -> Option<Target> {
    let at = path.find("/v1/projects/")?;
    let prefix = path[..at].trim_matches('/');
    let host_location = (!prefix.is_empty()).then(|| prefix.to_owned());
    let rest: Vec<&str> = path[at + 1..].split('/').collect();
    match rest.as_slice() {
        ["v1", "projects", p, "locations", l, "publishers", publ, "models", action] => {
            let (model, method) = action.split_once(':')?;
            let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            Some(Target {
                host_location,
                project: dec(p),
                location: dec(l),
                publisher: (*publ).to_owned(),
                model: dec(model),
                method: method.to_owned(),
            })
        }
        _ => None,
    }
}

async fn model_call(State(f): State<Arc<Fake>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(t) = parse_target(uri.path()) else {
        return gemini::error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested URL was not found on this server.");
    };
    if let Some(h) = &t.host_location {
        if *h != t.location {
            return gemini::error(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", &format!("Location {} does not match the endpoint's region {h}.", t.location));
        }
    }
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    let Some(account) = f.auth.account_for_token(token) else {
        return gemini::error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.");
    };
    if account.project != t.project {
        return gemini::error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", &format!("Permission denied on resource project {}.", t.project));
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return gemini::error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let path = match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    let fault = f.state.record(RecordedCall { method: "POST".into(), path, key: token.to_owned(), headers: header_pairs(&headers), body: req.clone() });
    if fault == Some(Fault::QuotaExhausted) {
        return billing_disabled(&t.project);
    }
    if let Some(r) = pre_fault(&fault).await {
        return r;
    }
    let sse = uri.query().is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    let opts = f.state.options();
    match (t.publisher.as_str(), t.method.as_str()) {
        ("google", "generateContent") => gemini::generate(&req, &t.model, false, fault, &opts),
        ("google", "streamGenerateContent") if sse => gemini::generate(&req, &t.model, true, fault, &opts),
        ("anthropic", "rawPredict") => claude(&req, &t.model, false, fault, &opts),
        ("anthropic", "streamRawPredict") => claude(&req, &t.model, true, fault, &opts),
        _ => gemini::error(StatusCode::NOT_FOUND, "NOT_FOUND", "Unknown publisher model method."),
    }
}

/// Vertex's "out of money": the project's billing account is closed or unlinked.
fn billing_disabled(project: &str) -> Response {
    let body = serde_json::json!({"error": {"code": 403,
        "message": format!("This API method requires billing to be enabled. Please enable billing on project #{project} by visiting https://console.developers.google.com/billing/enable?project={project} then retry."),
        "status": "PERMISSION_DENIED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "BILLING_DISABLED", "domain": "googleapis.com",
            "metadata": {"consumer": format!("projects/{project}"), "service": "aiplatform.googleapis.com"}}]}});
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"type": "error", "error": {"type": kind, "message": message}}))).into_response()
}

/// Claude's Messages API as Vertex serves it (`anthropic_version` in the body, no `model`).
fn claude(req: &Value, model: &str, stream: bool, fault: Option<Fault>, opts: &FakeOptions) -> Response {
    if req.get("anthropic_version").and_then(Value::as_str) != Some("vertex-2023-10-16") {
        return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", "anthropic_version: must be vertex-2023-10-16");
    }
    if req.get("model").is_some() {
        return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", "model: Extra inputs are not permitted");
    }
    if req.get("max_tokens").and_then(Value::as_u64).is_none() {
        return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", "max_tokens: Field required");
    }
    let Some(msgs) = req.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", "messages: at least one message is required");
    };
    let last_user = msgs.iter().rev().find(|m| m["role"] == "user");
    // A tool_result answers the assistant's tool_use of the same id, as the real API insists.
    let tool_result = match last_user.and_then(|m| m.get("content")) {
        Some(Value::Array(parts)) => parts.iter().find(|p| p["type"] == "tool_result").cloned(),
        _ => None,
    };
    if let Some(tr) = &tool_result {
        let id = tr.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
        let asked = msgs.iter().filter(|m| m["role"] == "assistant").flat_map(|m| m["content"].as_array().into_iter().flatten()).any(|b| b["type"] == "tool_use" && b["id"] == id);
        if !asked {
            return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", &format!("messages: unexpected `tool_use_id` found in `tool_result` blocks: {id}"));
        }
    }
    let tool = req
        .pointer("/tools/0/name")
        .and_then(Value::as_str)
        .filter(|_| req.pointer("/tool_choice/type").and_then(Value::as_str) != Some("none") && tool_result.is_none())
        .map(str::to_owned);
    let said = match last_user.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    };
    let text = match (&tool_result, &tool) {
        (Some(tr), _) => format!("Tool said: {}", match tr.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        }),
        (None, Some(_)) => String::new(),
        (None, None) => format!("Echo: {said}"),
    };
    let stop_reason = if tool.is_some() { "tool_use" } else { "end_turn" };
    let input = count_tokens(&Value::Array(msgs.clone()).to_string()).max(1);
    let output = count_tokens(&text) + if tool.is_some() { 5 } else { 0 };
    let id = format!("msg_vrtx_{}", uuid::Uuid::new_v4().simple());
    if !stream {
        let content = match &tool {
            Some(name) => json!([{"type": "tool_use", "id": "toolu_vrtx_1", "name": name, "input": {"city": "Paris"}}]),
            None => json!([{"type": "text", "text": text}]),
        };
        return Json(json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}))
        .into_response();
    }
    if fault == Some(Fault::ErrorEventAfter200) {
        let e = ("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (injected)"}}));
        return sse_response(vec![e], None, opts.chunk_delay, |(k, v)| format!("{v}\nevent: {k}"), false);
    }
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
    )];
    match &tool {
        Some(name) => {
            events.push(("content_block_start", json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_vrtx_1", "name": name, "input": {}}})));
            for part in ["{\"city\":", "\"Paris\"}"] {
                events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}})));
            }
        }
        None => {
            events.push(("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            for piece in split_text(&text, opts.chunks) {
                events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})));
            }
        }
    }
    events.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    // `data: {..}\nevent: name\n\n`: SSE allows the fields of an event in any order.
    sse_response(events, fault, opts.chunk_delay, |(k, v)| format!("{v}\nevent: {k}"), false)
}
