//! Step three of the loop: one attempt against one upstream, inside its own span, and what
//! its outcome does to the credential's health and the generation's attempt list.

use super::request::Credentials;
use super::{retry, stream, Operation};
use crate::state::SharedState;
use crate::usage::{AttemptRecord, GenerationRecord};
use keyway_core::route::{Attempt, CredentialSource, Outcome};
use keyway_core::{Credential, Usage};
use keyway_providers::{
    Body, Call, ChatRequest, ChatResponse, ChunkStream, ProviderError, StreamEvent,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An upstream's answer, before Keyway's edits.
pub(super) enum Answer {
    Whole {
        body: Body,
        usage: Option<Usage>,
    },
    /// The events up to the first with content (an error before that was the attempt's), and the rest.
    Stream {
        buffered: Vec<StreamEvent>,
        rest: ChunkStream,
    },
}

/// An attempt that answered.
pub(super) struct Answered {
    pub answer: Answer,
    pub credential: Arc<Credential>,
    /// Anthropic in, Anthropic out: the answer is already in the client's shape.
    pub native: bool,
    pub sent: Instant,
    pub latency: Duration,
}

/// The last failure a provider answered: its status, display name, and its answer scrubbed
/// (OpenRouter's `metadata.raw`).
pub(super) type ProviderFailure = (u16, &'static str, Value);

pub(super) enum Tried {
    Answered(Answered),
    /// `provider_failure` is `None` when the attempt never reached the provider (no adapter, a
    /// request only Anthropic can serve); the previous one then still stands.
    Failed {
        error: ProviderError,
        message: String,
        provider_failure: Option<Option<ProviderFailure>>,
    },
    /// The plan's credential is gone (e.g. deleted since the cache was filled).
    NoCredential,
}

pub(super) async fn try_one(
    state: &SharedState,
    op: Operation,
    request: &ChatRequest,
    creds: &Credentials,
    attempt: &Attempt<'_>,
    record: &mut GenerationRecord,
) -> Tried {
    let Some(credential) = credential_for(state, creds, attempt) else {
        return Tried::NoCredential;
    };
    let Some(adapter) = state.providers.get(attempt.provider) else {
        return cannot_serve(
            attempt,
            record,
            format!("Keyway has no adapter for {}", attempt.provider),
        );
    };
    let call = Call {
        provider: attempt.provider,
        model: attempt.upstream_model,
        gateway_model: attempt.model,
        credential: &credential,
        region: attempt.region,
    };
    let native = request.anthropic.is_some() && adapter.native_anthropic(&call);
    if let (false, Some(why)) = (
        native,
        request
            .anthropic
            .as_ref()
            .and_then(|a| a.native_only.as_deref()),
    ) {
        return cannot_serve(
            attempt,
            record,
            format!("{why}: only Anthropic can serve this request"),
        );
    }
    let sent = Instant::now();
    let span = attempt_span(attempt);
    let result = tracing::Instrument::instrument(
        async {
            let result = match op {
                Operation::Chat => adapter.chat(&call, request).await,
                Operation::Embeddings => {
                    adapter
                        .embeddings(&call, request)
                        .await
                        .map(|e| ChatResponse::Complete {
                            body: e.body,
                            usage: e.usage,
                        })
                }
            };
            // A stream counts as answered once content arrives; an error before that falls back.
            match result {
                Ok(ChatResponse::Stream(s)) => stream::peek(s)
                    .await
                    .map(|(buffered, rest)| Answer::Stream { buffered, rest }),
                Ok(ChatResponse::Complete { body, usage }) => Ok(Answer::Whole { body, usage }),
                Err(e) => Err(e),
            }
        },
        span.clone(),
    )
    .await;
    let latency = sent.elapsed();
    span.record("latency_ms", latency.as_millis() as u64);
    match &result {
        Ok(_) => span
            .record("status", 200u16)
            .record("outcome", "ok")
            .record("otel.status_code", "OK"),
        Err(e) => span
            .record("status", e.status())
            .record("outcome", e.class())
            .record("otel.status_code", "ERROR"),
    };
    drop(span);
    match result {
        Ok(answer) => {
            if let Some(k) = attempt.credential.health_key() {
                state.health.record(k, Outcome::Success);
            }
            state
                .stats
                .record_latency(attempt.model, attempt.provider, latency);
            record
                .attempts
                .push(attempt_record(attempt, None, latency.as_millis() as u64));
            Tried::Answered(Answered {
                answer,
                credential,
                native,
                sent,
                latency,
            })
        }
        Err(e) => upstream_failed(state, attempt, &credential, e, latency, record),
    }
}

/// The attempt never reached an upstream: recorded, and the loop moves on (the retry rule says
/// so for `Unsupported`).
fn cannot_serve(attempt: &Attempt<'_>, record: &mut GenerationRecord, why: String) -> Tried {
    let error = ProviderError::Unsupported(why);
    record
        .attempts
        .push(attempt_record(attempt, Some(&error), 0));
    let message = error.to_string();
    Tried::Failed {
        error,
        message,
        provider_failure: None,
    }
}

fn upstream_failed(
    state: &SharedState,
    attempt: &Attempt<'_>,
    credential: &Credential,
    e: ProviderError,
    latency: Duration,
    record: &mut GenerationRecord,
) -> Tried {
    let secrets = credential.secret_strings();
    let message = super::scrub(&e.to_string(), &secrets);
    let provider_failure = retry::provider_status(&e).map(|status| {
        // OpenRouter's `metadata.raw`: the provider's own answer (JSON when it is), secrets scrubbed.
        let raw = e.body().map_or_else(
            || Value::String(message.clone()),
            |b| {
                let b = super::scrub(b, &secrets);
                serde_json::from_str::<Value>(&b).unwrap_or(Value::String(b))
            },
        );
        (status, attempt.provider.display_name(), raw)
    });
    tracing::info!(provider = %attempt.provider, credential = %attempt.credential.header_value(), class = e.class(), "attempt failed");
    if let Some(k) = attempt.credential.health_key() {
        let before = state.health.get(k);
        let after = state.health.record(k, retry::outcome_of(&e));
        state.metrics.health_changed(
            attempt.provider.as_str(),
            attempt.credential.header_value(),
            k,
            before,
            &after,
        );
    }
    record.attempts.push(AttemptRecord {
        message: Some(message.clone()),
        ..attempt_record(attempt, Some(&e), latency.as_millis() as u64)
    });
    Tried::Failed {
        error: e,
        message,
        provider_failure: Some(provider_failure),
    }
}

fn attempt_span(attempt: &Attempt<'_>) -> tracing::Span {
    tracing::info_span!(
        "attempt",
        provider = attempt.provider.as_str(),
        credential = attempt.credential.header_value(),
        model = attempt.model,
        upstream_model = attempt.upstream_model,
        status = tracing::field::Empty,
        outcome = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
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
    creds: &Credentials,
    a: &Attempt<'_>,
) -> Option<Arc<Credential>> {
    match a.credential {
        CredentialSource::Byok { index, .. } => {
            creds.stored.entries.get(index).map(|(_, c)| c.clone())
        }
        CredentialSource::RequestScoped { index, .. } => {
            creds.scoped.get(index).map(|(_, c)| Arc::new(c.clone()))
        }
        CredentialSource::System { index } => state.system.get(index).map(|s| s.credential.clone()),
    }
}
