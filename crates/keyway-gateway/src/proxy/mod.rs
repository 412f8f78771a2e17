//! The attempt loop: plan a request's route, try each attempt until one answers, and hand the
//! answer back (whole, or as a stream) with the headers that say what served it.
//!
//! What moves on to the next attempt: 429, 5xx, timeouts, connection failures, 401/403 (that
//! key is broken), an error event in a stream before any content reached the client, and a
//! credential that can't serve the attempt (e.g. no key set for the region). A 400-class answer
//! is the request's fault and returns at once.

mod attempt;
mod finish;
mod request;
mod request_keys;
pub mod retry;
mod settle;
pub mod stream;

use attempt::Tried;
pub use settle::{finish, Throughput};

use crate::error::ApiError;
use crate::state::SharedState;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use keyway_core::route::{explain, PlanInput, RouteError};
use keyway_providers::{Body, ChatRequest, ProviderError, RequestBody};
use keyway_store::ApiKeyRecord;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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

/// An answer, whole or as a stream, with Keyway's headers.
pub enum Answer {
    Complete { headers: HeaderMap, body: Body },
    /// Ready to forward; render with a [`stream::Dialect`].
    Stream { headers: HeaderMap, stream: Box<stream::Pending> },
}

/// How a request was answered, before it is rendered in the caller's dialect.
pub enum Served {
    /// In OpenAI's shape (an adapter translates other protocols into it).
    OpenAi(Answer),
    /// Anthropic in, Anthropic out (`POST /v1/messages` served by Anthropic): the upstream's own
    /// Messages answer or events, for [`stream::Dialect::AnthropicNative`].
    Anthropic(Answer),
    /// Every attempt failed; an error response (its dialect layer may re-render it).
    Failed(Response),
}

impl Served {
    /// The OpenAI rendering (chat completions, embeddings).
    pub fn into_openai(self) -> Response {
        match self {
            Served::OpenAi(a) | Served::Anthropic(a) => match a {
                Answer::Complete { headers, body } => json_response(headers, &body),
                Answer::Stream { headers, stream } => stream.respond(stream::Dialect::OpenAi, headers),
            },
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

/// The loop, step by step: prepare the request, plan its route, admit it (money, then rates),
/// try each attempt until one answers or the retry rule says stop, and finish.
async fn proxy_in_span(
    state: SharedState,
    caller: Arc<ApiKeyRecord>,
    headers: &HeaderMap,
    body: RequestBody,
    op: Operation,
    anthropic: Option<keyway_providers::AnthropicNative>,
) -> Result<Served, ApiError> {
    let started = Instant::now();
    let req = request::prepare(body, op)?;
    let creds = request::Credentials::gather(&state, &caller, &req.options, headers).await?;
    let scoped_inputs = creds.scoped_inputs();
    // The planner's input holds `&dyn` sources that aren't `Send`; it must not live across an await.
    let precedence = state.routing.effective(&caller.workspace_id, req.options.byok_first);
    let explained = explain(&PlanInput {
        stored: &creds.stored.metas,
        request_scoped: &scoped_inputs,
        system: &state.system_metas,
        system_after_request_scoped: state.config.security.system_after_request_keys,
        api_key_hash: Some(&caller.hash),
        user: req.user.as_deref(),
        requested_parameters: &req.requested,
        health: &state.health,
        stats: &state.stats,
        precedence,
        ..PlanInput::new(&req.model, &req.options, &state.catalog, SystemTime::now())
    });
    // Kept on the generation: the plan beside its attempts (one JSON buffer, no `Value`s).
    let plan_view = crate::explain::view(&req.model, precedence, &explained.plan, &explained.excluded, &req.options.ignored, &*creds.stored);
    let route_plan = state.plan_texts.text(&plan_view);
    drop(plan_view);
    let route = match explained.plan {
        Ok(r) => r,
        Err(e) => return Ok(Served::Failed(finish::with_ignored(ApiError::from(e).into_response(), &req.options.ignored))),
    };
    tracing::debug!(plan = %route.explain(), "route planned");

    // v7: time-ordered, so the generations primary key grows at its end instead of at random pages.
    let generation_id = format!("gen-{}", uuid::Uuid::now_v7().simple());
    tracing::Span::current().record("generation_id", generation_id.as_str()).record("model", req.model.as_str());
    let mut record = request::open_record(generation_id, &caller, headers, &req, route.attempts.len());
    record.route_plan = route_plan;
    // From memory; a refused request never reaches an upstream, but it is recorded like any other.
    let admission = match crate::cluster::admit_request(&state, &caller, &req.body, &route).await {
        Ok(a) => a,
        Err(refusal) => {
            let status = refusal.status();
            return Ok(finish::refused(&state, record, started, refusal, status, route.ignored));
        }
    };

    let reply = finish::Reply { op, started, include_usage: req.include_usage, ignored: route.ignored.join(", "), admission };
    let request = ChatRequest::new(req.body).with_anthropic(anthropic);
    let mut last_error: Option<(ProviderError, String)> = None;
    let mut provider_failure = None;
    for attempt in &route.attempts {
        match attempt::try_one(&state, op, &request, &creds, attempt, &mut record).await {
            Tried::NoCredential => continue,
            Tried::Answered(answered) => return Ok(finish::answered(&state, record, attempt, answered, reply)),
            Tried::Failed { error, message, provider_failure: reached } => {
                if let Some(p) = reached {
                    provider_failure = p;
                }
                let go_on = retry::moves_on(&error);
                last_error = Some((error, message));
                if !go_on {
                    break;
                }
            }
        }
    }
    Ok(finish::failed(&state, record, started, last_error, provider_failure, route.ignored))
}
