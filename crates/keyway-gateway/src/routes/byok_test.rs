//! "Test key": `POST /api/v1/byok/{id}/test` (a stored credential) and `POST /api/v1/byok/test`
//! (one not yet saved, same body as create) send a one-token request to a cheap model of the
//! provider and report what happened, with the equivalent curl command (secret masked).
//! Caller input is taken literally: no `env:`/`file:` lookups, URLs checked against the allow-list.

use crate::auth::Owner;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::byok_input::{parse_credential, parse_provider};
use crate::state::SharedState;
use crate::extract::Path;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use keyway_core::{Credential, ProviderSlug};
use keyway_providers::{Call, ChatRequest, ChatResponse, ProviderError};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The upstream's own status where it gave one.
fn upstream_status(e: &ProviderError) -> u16 {
    match e {
        ProviderError::RateLimited { status, .. }
        | ProviderError::Auth { status, .. }
        | ProviderError::BadRequest { status, .. }
        | ProviderError::Upstream5xx { status, .. } => *status,
        other => other.status(),
    }
}

fn opt_str<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, ApiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(ApiError::BadRequest(format!("`{k}` must be a non-empty string"))),
    }
}

pub(crate) async fn run_test(state: &SharedState, provider: ProviderSlug, cred: &Credential, opts: &Map<String, Value>) -> Result<Value, ApiError> {
    let adapter = state.providers.get(provider).ok_or_else(|| ApiError::BadRequest(format!("Keyway has no adapter for {provider}")))?;
    let requested = opt_str(opts, "model")?;
    let region = opt_str(opts, "region")?;
    // Azure serves the deployments the credential names, looked up by gateway slug.
    let (model, gateway_model) = match cred {
        Credential::Azure(azure) => keyway_providers::azure::test_target(azure, requested, adapter.test_model()),
        _ => {
            let model = requested.unwrap_or(adapter.test_model()).to_owned();
            let slug = format!("{provider}/{model}");
            (model, slug)
        }
    };
    let call = Call { provider, model: &model, gateway_model: &gateway_model, credential: cred, region };
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.clone()));
    body.insert("messages".into(), json!([{"role": "user", "content": "ping"}]));
    body.insert("max_tokens".into(), json!(1));
    let req = ChatRequest::new(body);
    let secrets = cred.secret_strings();
    let curl = match adapter.preview_chat(&call, &req).await {
        Ok(p) => crate::redact::scrub_text(&p.to_curl(), &secrets),
        Err(e) => return Ok(json!({"ok": false, "status": upstream_status(&e), "latency_ms": 0, "model": model, "request": null,
                                   "response": null, "error": crate::redact::scrub_message(&e.to_string(), &secrets)})),
    };
    let t0 = Instant::now();
    let result = adapter.chat(&call, &req).await;
    let latency_ms = t0.elapsed().as_millis() as u64;
    Ok(match result {
        Ok(ChatResponse::Complete { body, .. }) => {
            let mut response = body.into_value();
            crate::redact::scrub_value(&mut response, &secrets);
            json!({"ok": true, "status": 200, "latency_ms": latency_ms, "model": model, "request": curl, "response": response})
        }
        Ok(ChatResponse::Stream(_)) => json!({"ok": true, "status": 200, "latency_ms": latency_ms, "model": model, "request": curl, "response": null}),
        Err(e) => {
            // The upstream's own answer: parsed first, then every decoded string scrubbed.
            let response = e.body().map_or(Value::Null, |b| crate::redact::scrub_body(b, &secrets));
            json!({"ok": false, "status": upstream_status(&e), "latency_ms": latency_ms, "model": model, "request": curl,
                   "response": response, "error": crate::redact::scrub_message(&e.to_string(), &secrets), "error_class": e.class()})
        }
    })
}

/// Tests a stored credential; a success also clears its cooldown.
#[utoipa::path(post, operation_id = "byok_test_test_stored", path = "/api/v1/byok/{id}/test", tag = "byok", params(("id" = String, Path, description = "Credential id")),
    request_body(content = Option<crate::api_schema::TestOptions>, description = "Optional overrides of the test request"),
    responses((status = 200, description = "What the upstream answered (`ok` false on its errors)", body = crate::api_schema::TestResult), crate::api_schema::Errors))]
pub async fn test_stored(
    State(state): State<SharedState>,
    m: Owner,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional here (`{model, region}` to override the test request).
    let opts: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) { Map::new() } else { crate::extract::parse_json(&body)? };
    let (rec, cred) = state.store.open_byok(m.scope(), &id).await.map_err(|e| match e {
        keyway_store::StoreError::NotFound => ApiError::NotFound("credential not found".into()),
        other => other.into(),
    })?;
    let out = run_test(&state, rec.provider, &cred, &opts).await?;
    if out["ok"] == true {
        state.health.reset(&rec.id);
        // Shown as the key's last success (the dashboard's health column).
        state.health.record(keyway_core::route::HealthKey::Byok(&rec.id), keyway_core::route::Outcome::Success);
    }
    Ok(Json(out))
}

/// Tests a credential that is not saved: the body is the one `POST /api/v1/byok` takes.
#[utoipa::path(post, operation_id = "byok_test_test_unsaved", path = "/api/v1/byok/test", tag = "byok", request_body = crate::api_schema::ByokCreate,
    responses((status = 200, description = "What the upstream answered (`ok` false on its errors)", body = crate::api_schema::TestResult), crate::api_schema::Errors))]
pub async fn test_unsaved(State(state): State<SharedState>, _m: Owner, JsonBody(body): JsonBody<Map<String, Value>>) -> Result<impl IntoResponse, ApiError> {
    let provider = parse_provider(body.get("provider"))?;
    let key = body.get("key").filter(|k| !k.is_null()).ok_or_else(|| ApiError::BadRequest("`key` is required".into()))?;
    let cred = parse_credential(&state, provider, key)?;
    Ok(Json(run_test(&state, provider, &cred, &body).await?))
}
