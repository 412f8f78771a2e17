//! The attempt loop: plan a request's route, try each attempt until one answers, and hand the
//! answer back (whole, or as a stream) with the headers that say what served it.
//!
//! What moves on to the next attempt: 429, 5xx, timeouts, connection failures, 401/403 (that
//! key is broken), an error event in a stream before any content reached the client, and a
//! credential that can't serve the attempt (e.g. no key set for the region). A 400-class answer
//! is the request's fault and returns at once.

mod request_keys;
pub mod stream;

use crate::error::ApiError;
use crate::state::SharedState;
use crate::usage::{AttemptRecord, GenerationRecord};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use keyway_core::route::{plan, requested_parameters_of, Attempt, CredentialSource, Outcome, PlanInput, RouteError, RoutingOptions};
use keyway_core::Credential;
use keyway_providers::{Body, Call, ChatRequest, ChatResponse, ProviderError, RequestBody};
use keyway_store::ApiKeyRecord;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

// Built at compile time: `from_static` at run time validates the name byte by byte each call.
const KEYWAY_PROVIDER: HeaderName = HeaderName::from_static("x-keyway-provider");
const KEYWAY_CREDENTIAL: HeaderName = HeaderName::from_static("x-keyway-credential");
const KEYWAY_BYOK: HeaderName = HeaderName::from_static("x-keyway-byok");
const KEYWAY_ATTEMPTS: HeaderName = HeaderName::from_static("x-keyway-attempts");
const KEYWAY_GENERATION_ID: HeaderName = HeaderName::from_static("x-keyway-generation-id");
const KEYWAY_MODEL: HeaderName = HeaderName::from_static("x-keyway-model");
const KEYWAY_IGNORED: HeaderName = HeaderName::from_static("x-keyway-ignored");

pub use request_keys::request_scoped_credentials;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Embeddings,
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e.http_status() {
            402 => ApiError::PaymentRequired(e.to_string()),
            404 => ApiError::NotFound(e.to_string()),
            _ => ApiError::BadRequest(e.to_string()),
        }
    }
}

/// Replaces every secret string in an upstream's message (some echo the key back).
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_owned();
    for s in secrets {
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, "***");
        }
    }
    out
}

fn outcome_of(e: &ProviderError) -> Outcome {
    match e {
        ProviderError::RateLimited { retry_after, .. } => Outcome::RateLimited { retry_after: *retry_after },
        ProviderError::Auth { .. } => Outcome::AuthFailed,
        ProviderError::BadRequest { .. } | ProviderError::Unsupported(_) => Outcome::RequestError,
        _ => Outcome::UpstreamError,
    }
}

/// The status a provider answered with, when the failure is the provider's (not a timeout, a
/// connection failure or Keyway's own refusal).
fn provider_status(e: &ProviderError) -> Option<u16> {
    match e {
        ProviderError::RateLimited { status, .. }
        | ProviderError::Auth { status, .. }
        | ProviderError::BadRequest { status, .. }
        | ProviderError::Upstream5xx { status, .. } => Some(*status),
        _ => None,
    }
}

/// The client's error once every attempt failed: the last failure decides its class.
fn final_error(e: &ProviderError, message: String) -> ApiError {
    match e {
        ProviderError::RateLimited { retry_after, .. } => ApiError::RateLimited { message, retry_after: *retry_after },
        ProviderError::BadRequest { status, .. } => ApiError::Upstream { status: *status, message, retry_after: None, kind: "upstream_bad_request" },
        ProviderError::Unsupported(_) => ApiError::BadRequest(message),
        ProviderError::Timeout(_) => ApiError::Upstream { status: 504, message, retry_after: None, kind: "upstream_timeout" },
        ProviderError::Auth { .. } => ApiError::Upstream { status: 502, message, retry_after: None, kind: "upstream_auth" },
        ProviderError::Upstream5xx { status: 503 | 529, .. } => {
            ApiError::Upstream { status: 503, message, retry_after: None, kind: "upstream_unavailable" }
        }
        _ => ApiError::Upstream { status: 502, message, retry_after: None, kind: "upstream_error" },
    }
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(500).collect())
}

/// How a request was answered, before it is rendered in the caller's dialect.
pub enum Served {
    /// A whole response body (OpenAI shape, or Anthropic's when `native`) with Keyway's headers.
    Complete { headers: HeaderMap, body: Body, native: bool },
    /// A stream ready to forward; render with [`stream::Dialect`] (`AnthropicNative` when `native`).
    Stream { headers: HeaderMap, stream: Box<stream::Pending>, native: bool },
    /// Every attempt failed; an error response (its dialect layer may re-render it).
    Failed(Response),
}

impl Served {
    /// The OpenAI rendering (chat completions, embeddings).
    pub fn into_openai(self) -> Response {
        match self {
            Served::Complete { headers, body, .. } => json_response(headers, &body),
            Served::Stream { headers, stream, .. } => stream.respond(stream::Dialect::OpenAi, headers),
            Served::Failed(r) => r,
        }
    }
}

/// `body` as an `application/json` response with `headers` (and Keyway's headers put straight
/// into the response rather than merged through `IntoResponseParts`).
pub fn json_response(headers: HeaderMap, body: &Body) -> Response {
    let mut resp = Response::new(axum::body::Body::from(body.to_vec()));
    *resp.headers_mut() = headers;
    resp.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Serves one inference request end to end, inside a `request` span (exported over OTLP when
/// `[telemetry]` is on): ids and slugs only, the caller as an 8-character key-hash prefix.
pub async fn proxy(state: SharedState, caller: Arc<ApiKeyRecord>, headers: &HeaderMap, body: RequestBody, op: Operation) -> Result<Served, ApiError> {
    proxy_with(state, caller, headers, body, op, None).await
}

/// As [`proxy`], with the client's Anthropic body for adapters that send it natively
/// (`POST /v1/messages`); `body` is its OpenAI translation, for routing and other providers.
pub async fn proxy_with(
    state: SharedState,
    caller: Arc<ApiKeyRecord>,
    headers: &HeaderMap,
    body: RequestBody,
    op: Operation,
    anthropic: Option<keyway_providers::AnthropicNative>,
) -> Result<Served, ApiError> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "request",
        generation_id = tracing::field::Empty,
        model = tracing::field::Empty,
        operation = ?op,
        caller = caller.hash.get(..8).unwrap_or(""),
        workspace_id = %caller.workspace_id,
        status = tracing::field::Empty,
        attempts = tracing::field::Empty,
    );
    proxy_in_span(state, caller, headers, body, op, anthropic).instrument(span).await
}

/// The routing fields taken out of the body ([`RoutingOptions::extract`]). From a raw body only
/// those few fields are parsed; what the extraction leaves of them goes back in.
fn routing_options(body: &mut RequestBody) -> Result<RoutingOptions, RouteError> {
    if let RequestBody::Map(m) = body {
        return RoutingOptions::extract(m);
    }
    let mut fields = Map::new();
    for f in RoutingOptions::FIELDS {
        let taken = body.remove(f).map_err(|e| RouteError::InvalidOption { path: f.to_owned(), message: format!("is not valid JSON: {e}") })?;
        if let Some(v) = taken {
            fields.insert(f.to_owned(), v);
        }
    }
    if fields.is_empty() {
        return Ok(RoutingOptions::default());
    }
    let options = RoutingOptions::extract(&mut fields)?;
    for (k, v) in fields {
        body.insert(&k, v);
    }
    Ok(options)
}

async fn proxy_in_span(
    state: SharedState,
    caller: Arc<ApiKeyRecord>,
    headers: &HeaderMap,
    mut body: RequestBody,
    op: Operation,
    anthropic: Option<keyway_providers::AnthropicNative>,
) -> Result<Served, ApiError> {
    let started = Instant::now();
    let options = routing_options(&mut body)?;
    // The few fields read here are parsed one by one; the messages stay the client's text.
    let model = match body.value("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) | None | Some(Value::Null) => match options.models.first() {
            Some(m) => m.clone(),
            None => return Err(ApiError::BadRequest("`model` is required".into())),
        },
        Some(_) => return Err(ApiError::BadRequest("`model` must be a string".into())),
    };
    let stream = match body.value("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b && op == Operation::Chat,
        Some(_) => return Err(ApiError::BadRequest("`stream` must be true or false".into())),
    };
    if op == Operation::Chat && !body.is_nonempty_list("messages") {
        return Err(ApiError::BadRequest("`messages` must be a non-empty list".into()));
    }
    let include_usage = body.value("stream_options").and_then(|o| o.get("include_usage").and_then(Value::as_bool)).unwrap_or(false);
    let user = match body.value("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u),
        Some(_) => return Err(ApiError::BadRequest("`user` must be a string".into())),
    };

    let scoped = request_scoped_credentials(&state, &options, headers)?;
    let scoped_inputs: Vec<_> = scoped.iter().map(|(p, c)| keyway_core::route::RequestScopedCredential::new(*p, c)).collect();
    let stored = if scoped.is_empty() {
        state.credentials.get(&state.store, &caller.workspace_id).await?
    } else {
        Arc::default()
    };
    let requested = requested_parameters_of(body.keys_set());
    // The planner's input holds `&dyn` sources that aren't `Send`; it must not live across an await.
    let route = match plan(&PlanInput {
        stored: &stored.metas,
        request_scoped: &scoped_inputs,
        system: &state.system_metas,
        system_after_request_scoped: state.config.security.system_after_request_keys,
        api_key_hash: Some(&caller.hash),
        user: user.as_deref(),
        requested_parameters: &requested,
        health: &state.health,
        stats: &state.stats,
        ..PlanInput::new(&model, &options, &state.catalog, SystemTime::now())
    }) {
        Ok(r) => r,
        Err(e) => return Ok(Served::Failed(with_ignored(ApiError::from(e).into_response(), &options.ignored))),
    };
    tracing::debug!(plan = %route.explain(), "route planned");

    // v7: time-ordered, so the generations primary key grows at its end instead of at random pages.
    let generation_id = format!("gen-{}", uuid::Uuid::now_v7().simple());
    tracing::Span::current().record("generation_id", generation_id.as_str()).record("model", model.as_str());
    let mut record = GenerationRecord {
        id: generation_id.clone(),
        workspace_id: caller.workspace_id.clone(),
        api_key_hash: caller.hash.clone(),
        user: user.clone(),
        requested_model: model.clone(),
        model: None,
        provider: None,
        credential_id: None,
        is_byok: false,
        streamed: stream,
        status: 0,
        usage: None,
        latency_ms: 0,
        ttft_ms: None,
        attempts: Vec::with_capacity(route.attempts.len()),
        finish_reason: None,
        app_referer: header_str(headers, "http-referer").or_else(|| header_str(headers, "referer")),
        app_title: header_str(headers, "x-openrouter-title").or_else(|| header_str(headers, "x-title")),
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        cost_micros: 0,
        fee_micros: 0,
    };
    // Limits and credits, from memory; a refused request never reaches an upstream, but it is
    // recorded (no attempt, no cost) like every other request.
    let mut admission = match crate::cluster::admit_request(&state, &caller, &body, &route).await {
        Ok(a) => a,
        Err(refusal) => {
            record.status = refusal.status();
            record.latency_ms = started.elapsed().as_millis() as u64;
            state.usage.record(record);
            let mut resp = refusal.into_response();
            if let Ok(v) = HeaderValue::from_str(&generation_id) {
                resp.headers_mut().insert("x-keyway-generation-id", v);
            }
            return Ok(Served::Failed(with_ignored(resp, route.ignored)));
        }
    };
    let ignored = route.ignored.join(", ");
    let request = ChatRequest::new(body).with_anthropic(anthropic);
    let mut last_error: Option<(ProviderError, String)> = None;
    // The last failure a provider answered: (its status, display name, its answer scrubbed).
    let mut provider_failure: Option<(u16, &'static str, Value)> = None;

    for attempt in &route.attempts {
        let Some(cred) = credential_for(&state, &stored, &scoped, attempt) else { continue };
        let Some(adapter) = state.providers.get(attempt.provider) else {
            let e = ProviderError::Unsupported(format!("Keyway has no adapter for {}", attempt.provider));
            record.attempts.push(attempt_record(attempt, Some(&e), 0));
            last_error = Some((e.clone(), e.to_string()));
            continue;
        };
        let call = Call {
            provider: attempt.provider,
            model: attempt.upstream_model,
            gateway_model: attempt.model,
            credential: &cred,
            region: attempt.region,
        };
        // Anthropic in, Anthropic out: the answer is already in the client's shape.
        let native = request.anthropic.is_some() && adapter.native_anthropic(&call);
        if let (false, Some(why)) = (native, request.anthropic.as_ref().and_then(|a| a.native_only.as_deref())) {
            let e = ProviderError::Unsupported(format!("{why}: only Anthropic can serve this request"));
            record.attempts.push(attempt_record(attempt, Some(&e), 0));
            last_error = Some((e.clone(), e.to_string()));
            continue;
        }
        let t0 = Instant::now();
        let attempt_span = tracing::info_span!(
            "attempt",
            provider = attempt.provider.as_str(),
            credential = attempt.credential.header_value(),
            model = attempt.model,
            upstream_model = attempt.upstream_model,
            status = tracing::field::Empty,
            outcome = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = tracing::Instrument::instrument(
            async {
                let result = match op {
                    Operation::Chat => adapter.chat(&call, &request).await,
                    Operation::Embeddings => adapter.embeddings(&call, &request).await.map(|e| ChatResponse::Complete { body: e.body, usage: e.usage }),
                };
                // A stream counts as answered once content arrives; an error before that falls back.
                match result {
                    Ok(ChatResponse::Stream(s)) => stream::peek(s).await.map(|(buffered, rest)| (Some((buffered, rest)), None)),
                    Ok(ChatResponse::Complete { body, usage }) => Ok((None, Some((body, usage)))),
                    Err(e) => Err(e),
                }
            },
            attempt_span.clone(),
        )
        .await;
        let latency = t0.elapsed();
        attempt_span.record("latency_ms", latency.as_millis() as u64);
        match &result {
            Ok(_) => attempt_span.record("status", 200u16).record("outcome", "ok").record("otel.status_code", "OK"),
            Err(e) => attempt_span.record("status", e.status()).record("outcome", e.class()).record("otel.status_code", "ERROR"),
        };
        drop(attempt_span);
        match result {
            Err(e) => {
                let message = scrub(&e.to_string(), &cred.secret_strings());
                provider_failure = provider_status(&e).map(|status| {
                    // OpenRouter's `metadata.raw`: the provider's own answer (JSON when it is), secrets scrubbed.
                    let raw = e.body().map_or_else(
                        || Value::String(message.clone()),
                        |b| {
                            let b = scrub(b, &cred.secret_strings());
                            serde_json::from_str::<Value>(&b).unwrap_or(Value::String(b))
                        },
                    );
                    (status, attempt.provider.display_name(), raw)
                });
                tracing::info!(provider = %attempt.provider, credential = %attempt.credential.header_value(), class = e.class(), "attempt failed");
                if let Some(k) = attempt.credential.health_key() {
                    let before = state.health.get(k);
                    let after = state.health.record(k, outcome_of(&e));
                    state.metrics.health_changed(attempt.provider.as_str(), attempt.credential.header_value(), k, before, &after);
                }
                record.attempts.push(AttemptRecord { message: Some(message.clone()), ..attempt_record(attempt, Some(&e), latency.as_millis() as u64) });
                let stop = matches!(e, ProviderError::BadRequest { .. });
                last_error = Some((e, message));
                if stop {
                    break;
                }
            }
            Ok((streamed, complete)) => {
                if let Some(k) = attempt.credential.health_key() {
                    state.health.record(k, Outcome::Success);
                }
                state.stats.record_latency(attempt.model, attempt.provider, latency);
                record.attempts.push(attempt_record(attempt, None, latency.as_millis() as u64));
                record.model = Some(attempt.model.to_owned());
                record.provider = Some(attempt.provider.as_str().to_owned());
                record.credential_id = Some(attempt.credential.header_value().to_owned());
                record.is_byok = attempt.credential.is_byok();
                record.status = 200;
                tracing::Span::current().record("status", 200u16).record("attempts", record.attempts.len());
                // Sized for the x-keyway-* and x-ratelimit-* headers: no regrowth while filling it.
                let mut hdrs = HeaderMap::with_capacity(16);
                let mut put = |name: HeaderName, v: &str| {
                    if let Ok(v) = HeaderValue::from_str(v) {
                        hdrs.insert(name, v);
                    }
                };
                put(KEYWAY_CREDENTIAL, attempt.credential.header_value());
                put(KEYWAY_GENERATION_ID, &generation_id);
                put(KEYWAY_MODEL, attempt.model);
                if !ignored.is_empty() {
                    put(KEYWAY_IGNORED, &ignored);
                }
                // Static and numeric values go in without a copy.
                hdrs.insert(KEYWAY_PROVIDER, HeaderValue::from_static(attempt.provider.as_str()));
                hdrs.insert(KEYWAY_BYOK, HeaderValue::from_static(if attempt.credential.is_byok() { "true" } else { "false" }));
                hdrs.insert(KEYWAY_ATTEMPTS, HeaderValue::from(record.attempts.len()));
                admission.rates.write(&mut hdrs);
                let prices = attempt.endpoint.map(keyway_core::pricing::Prices::from);
                let provider_name = attempt.provider.display_name();
                if let Some((buffered, rest)) = streamed {
                    let ctx = stream::StreamContext {
                        generation_id: generation_id.clone(),
                        model: attempt.model.to_owned(),
                        provider_name,
                        started,
                        state: state.clone(),
                        record,
                        secrets: cred.secret_strings().into_iter().map(str::to_owned).collect(),
                        include_usage,
                        prices,
                        admission,
                        provider: attempt.provider,
                        attempt_started: t0,
                        span: tracing::Span::current(),
                    };
                    return Ok(Served::Stream { headers: hdrs, stream: Box::new(stream::Pending::new(ctx, buffered, rest)), native });
                }
                let (mut body, usage) = complete.unwrap_or((Body::Value(Value::Null), None));
                if native {
                    let reason = body.get_str("stop_reason");
                    record.finish_reason = keyway_providers::translate::anthropic::finish_reason(reason.as_deref()).as_str().map(str::to_owned);
                } else {
                    if op == Operation::Chat {
                        body.set("id", &generation_id);
                        // OpenRouter's SDKs require the key (nullable); translated providers lack it.
                        body.set_if_absent("system_fingerprint", &Value::Null);
                    }
                    body.set("provider", &provider_name);
                    body.set("model", &attempt.model);
                    record.finish_reason = body.first_finish_reason();
                }
                if let Some(u) = usage {
                    state.stats.record_throughput(attempt.model, attempt.provider, u.completion_tokens, latency);
                }
                record.usage = usage;
                record.latency_ms = started.elapsed().as_millis() as u64;
                state.billing.settle(&mut record, prices);
                if let Some(u) = usage {
                    admission.settle_tokens(u.total());
                }
                state.usage.record(record);
                return Ok(Served::Complete { headers: hdrs, body, native });
            }
        }
    }

    record.latency_ms = started.elapsed().as_millis() as u64;
    let err = match last_error {
        Some((e, message)) => {
            let prefix = if record.attempts.len() > 1 { format!("all {} attempts failed; last: ", record.attempts.len()) } else { String::new() };
            let err = final_error(&e, format!("{prefix}{message}"));
            match provider_failure.take() {
                Some((status, name, raw)) if provider_status(&e).is_some() => err.with_provider(status, name, raw),
                _ => err,
            }
        }
        None => ApiError::NotFound(format!("no usable credential for `{model}`")),
    };
    record.status = err.info().status.as_u16();
    let attempts = record.attempts.len();
    tracing::Span::current().record("status", record.status).record("attempts", attempts);
    state.usage.record(record);
    let mut resp = err.into_response();
    if let Ok(v) = HeaderValue::from_str(&generation_id) {
        resp.headers_mut().insert("x-keyway-generation-id", v);
    }
    resp.headers_mut().insert("x-keyway-attempts", HeaderValue::from(attempts));
    Ok(Served::Failed(with_ignored(resp, route.ignored)))
}

/// Names unknown routing options on an error too: the caller learns of them either way.
fn with_ignored(mut resp: Response, ignored: &[String]) -> Response {
    if let Ok(v) = HeaderValue::from_str(&ignored.join(", ")) {
        if !ignored.is_empty() {
            resp.headers_mut().insert("x-keyway-ignored", v);
        }
    }
    resp
}

fn attempt_record(a: &Attempt<'_>, e: Option<&ProviderError>, latency_ms: u64) -> AttemptRecord {
    AttemptRecord {
        provider: a.provider.as_str().to_owned(),
        model: a.model.to_owned(),
        credential_id: a.credential.header_value().to_owned(),
        status: e.map(ProviderError::status).unwrap_or(200),
        error: e.map(|e| e.class().to_owned()),
        message: None,
        latency_ms,
    }
}

fn credential_for(
    state: &SharedState,
    stored: &crate::cache::WorkspaceCredentials,
    scoped: &[(keyway_core::ProviderSlug, Credential)],
    a: &Attempt<'_>,
) -> Option<Arc<Credential>> {
    match a.credential {
        CredentialSource::Byok { index, .. } => stored.entries.get(index).map(|(_, c)| c.clone()),
        CredentialSource::RequestScoped { index, .. } => scoped.get(index).map(|(_, c)| Arc::new(c.clone())),
        CredentialSource::System { index } => state.system.get(index).map(|s| s.credential.clone()),
    }
}
