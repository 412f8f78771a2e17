//! Step four of the loop: the answer (or the error) for the client, with Keyway's headers, and
//! the generation's books closed by [`super::settle::finish`], the one closing for an answered
//! generation, whole (here) or streamed (when the stream ends, in `stream.rs`).

use super::attempt::{Answer, Answered, ProviderFailure};
use super::settle::{finish, Throughput};
use super::{retry, stream, Operation, Served};
use crate::admission::Admission;
use crate::error::ApiError;
use crate::state::{AppState, SharedState};
use crate::usage::GenerationRecord;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use keyway_core::pricing::Prices;
use keyway_core::route::Attempt;
use keyway_providers::ProviderError;
use serde_json::Value;
use std::time::Instant;

// Built at compile time: `from_static` at run time validates the name byte by byte each call.
const KEYWAY_PROVIDER: HeaderName = HeaderName::from_static("x-keyway-provider");
const KEYWAY_CREDENTIAL: HeaderName = HeaderName::from_static("x-keyway-credential");
const KEYWAY_BYOK: HeaderName = HeaderName::from_static("x-keyway-byok");
const KEYWAY_ATTEMPTS: HeaderName = HeaderName::from_static("x-keyway-attempts");
const KEYWAY_GENERATION_ID: HeaderName = HeaderName::from_static("x-keyway-generation-id");
const KEYWAY_MODEL: HeaderName = HeaderName::from_static("x-keyway-model");
const KEYWAY_IGNORED: HeaderName = HeaderName::from_static("x-keyway-ignored");

/// What the answer step needs besides the attempt's outcome.
pub(super) struct Reply {
    pub op: Operation,
    pub started: Instant,
    pub include_usage: bool,
    /// Unknown routing options, comma-separated for `x-keyway-ignored`.
    pub ignored: String,
    pub admission: Admission,
}

/// The served answer: Keyway's headers, and the body edited (whole) or the stream ready to forward.
pub(super) fn answered(
    state: &SharedState,
    mut record: GenerationRecord,
    attempt: &Attempt<'_>,
    a: Answered,
    mut reply: Reply,
) -> Served {
    record.model = Some(attempt.model.to_owned());
    record.provider = Some(attempt.provider.as_str().to_owned());
    record.credential_id = Some(attempt.credential.header_value().to_owned());
    record.is_byok = attempt.credential.is_byok();
    record.status = 200;
    tracing::Span::current()
        .record("status", 200u16)
        .record("attempts", record.attempts.len());
    let headers = answer_headers(&record, attempt, &reply);
    let prices = attempt.endpoint.map(Prices::from);
    let provider_name = attempt.provider.display_name();
    let (mut body, usage) = match a.answer {
        Answer::Stream { buffered, rest } => {
            let ctx = stream::StreamContext {
                generation_id: record.id.clone(),
                model: attempt.model.to_owned(),
                provider_name,
                started: reply.started,
                state: state.clone(),
                record,
                secrets: a
                    .credential
                    .secret_strings()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                include_usage: reply.include_usage,
                prices,
                admission: reply.admission,
                provider: attempt.provider,
                attempt_started: a.sent,
                span: tracing::Span::current(),
            };
            let stream = Box::new(stream::Pending::new(ctx, buffered, rest));
            return if a.native {
                Served::Anthropic(super::Answer::Stream { headers, stream })
            } else {
                Served::OpenAi(super::Answer::Stream { headers, stream })
            };
        }
        Answer::Whole { body, usage } => (body, usage),
    };
    if a.native {
        let reason = body.get_str("stop_reason");
        record.finish_reason =
            keyway_providers::translate::anthropic::finish_reason(reason.as_deref())
                .as_str()
                .map(str::to_owned);
    } else {
        if reply.op == Operation::Chat {
            body.set("id", &record.id);
            // OpenRouter's SDKs require the key (nullable); translated providers lack it.
            body.set_if_absent("system_fingerprint", &Value::Null);
        }
        body.set("provider", &provider_name);
        body.set("model", &attempt.model);
        record.finish_reason = body.first_finish_reason();
    }
    record.usage = usage;
    finish(
        state,
        record,
        reply.started,
        prices,
        &mut reply.admission,
        Some(Throughput {
            model: attempt.model,
            provider: attempt.provider,
            took: a.latency,
        }),
    );
    let answer = super::Answer::Complete { headers, body };
    if a.native {
        Served::Anthropic(answer)
    } else {
        Served::OpenAi(answer)
    }
}

fn answer_headers(record: &GenerationRecord, attempt: &Attempt<'_>, reply: &Reply) -> HeaderMap {
    // Sized for the x-keyway-* and x-ratelimit-* headers: no regrowth while filling it.
    let mut hdrs = HeaderMap::with_capacity(16);
    let mut put = |name: HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            hdrs.insert(name, v);
        }
    };
    put(KEYWAY_CREDENTIAL, attempt.credential.header_value());
    put(KEYWAY_GENERATION_ID, &record.id);
    put(KEYWAY_MODEL, attempt.model);
    if !reply.ignored.is_empty() {
        put(KEYWAY_IGNORED, &reply.ignored);
    }
    // Static and numeric values go in without a copy.
    hdrs.insert(
        KEYWAY_PROVIDER,
        HeaderValue::from_static(attempt.provider.as_str()),
    );
    hdrs.insert(
        KEYWAY_BYOK,
        HeaderValue::from_static(if attempt.credential.is_byok() {
            "true"
        } else {
            "false"
        }),
    );
    hdrs.insert(KEYWAY_ATTEMPTS, HeaderValue::from(record.attempts.len()));
    reply.admission.write_rate_headers(&mut hdrs);
    hdrs
}

/// Refused before any upstream (limits, credits): recorded with no attempt and no cost.
pub(super) fn refused(
    state: &AppState,
    mut record: GenerationRecord,
    started: Instant,
    refusal: impl IntoResponse,
    status: u16,
    ignored: &[String],
) -> Served {
    record.status = status;
    record.latency_ms = started.elapsed().as_millis() as u64;
    let id = record.id.clone();
    state.usage.record(record);
    let mut resp = refusal.into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(KEYWAY_GENERATION_ID, v);
    }
    Served::Failed(with_ignored(resp, ignored))
}

/// Every attempt failed (or none could be made): the last failure decides the client's error.
pub(super) fn failed(
    state: &AppState,
    mut record: GenerationRecord,
    started: Instant,
    last: Option<(ProviderError, String)>,
    provider_failure: Option<ProviderFailure>,
    ignored: &[String],
) -> Served {
    record.latency_ms = started.elapsed().as_millis() as u64;
    let err = match last {
        Some((e, message)) => {
            let prefix = if record.attempts.len() > 1 {
                format!("all {} attempts failed; last: ", record.attempts.len())
            } else {
                String::new()
            };
            let err = retry::final_error(&e, format!("{prefix}{message}"));
            match provider_failure {
                Some((status, name, raw)) if retry::provider_status(&e).is_some() => {
                    err.with_provider(status, name, raw)
                }
                _ => err,
            }
        }
        None => ApiError::NotFound(format!(
            "no usable credential for `{}`",
            record.requested_model
        )),
    };
    record.status = err.info().status.as_u16();
    let attempts = record.attempts.len();
    tracing::Span::current()
        .record("status", record.status)
        .record("attempts", attempts);
    let id = record.id.clone();
    state.usage.record(record);
    let mut resp = err.into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(KEYWAY_GENERATION_ID, v);
    }
    resp.headers_mut()
        .insert(KEYWAY_ATTEMPTS, HeaderValue::from(attempts));
    Served::Failed(with_ignored(resp, ignored))
}

/// Names unknown routing options on an error too: the caller learns of them either way.
pub(super) fn with_ignored(mut resp: Response, ignored: &[String]) -> Response {
    if let Ok(v) = HeaderValue::from_str(&ignored.join(", ")) {
        if !ignored.is_empty() {
            resp.headers_mut().insert(KEYWAY_IGNORED, v);
        }
    }
    resp
}
