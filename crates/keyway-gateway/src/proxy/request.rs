//! Step one of the loop: the few request fields Keyway reads, checked, and the credentials the
//! plan may draw on.

use super::{request_scoped_credentials, Operation};
use crate::cache::WorkspaceCredentials;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::usage::GenerationRecord;
use axum::http::HeaderMap;
use keyway_core::route::{
    requested_parameters_of, RequestScopedCredential, RouteError, RoutingOptions,
};
use keyway_core::{Credential, ProviderSlug};
use keyway_providers::RequestBody;
use keyway_store::ApiKeyRecord;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The request as the loop reads it: the body (still the client's text), and the fields
/// parsed out of it one by one.
pub(super) struct Prepared {
    pub body: RequestBody,
    pub options: RoutingOptions,
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub user: Option<String>,
    /// The request's parameter names, for the planner's `require_parameters`.
    pub requested: Vec<&'static str>,
}

pub(super) fn prepare(mut body: RequestBody, op: Operation) -> Result<Prepared, ApiError> {
    let options = routing_options(&mut body)?;
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
        Some(_) => {
            return Err(ApiError::BadRequest(
                "`stream` must be true or false".into(),
            ))
        }
    };
    if op == Operation::Chat && !body.is_nonempty_list("messages") {
        return Err(ApiError::BadRequest(
            "`messages` must be a non-empty list".into(),
        ));
    }
    let include_usage = body
        .value("stream_options")
        .and_then(|o| o.get("include_usage").and_then(Value::as_bool))
        .unwrap_or(false);
    let user = match body.value("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u),
        Some(_) => return Err(ApiError::BadRequest("`user` must be a string".into())),
    };
    let requested = requested_parameters_of(body.keys_set());
    Ok(Prepared {
        body,
        options,
        model,
        stream,
        include_usage,
        user,
        requested,
    })
}

/// The routing fields taken out of the body ([`RoutingOptions::extract`]). From a raw body only
/// those few fields are parsed; what the extraction leaves of them goes back in.
fn routing_options(body: &mut RequestBody) -> Result<RoutingOptions, RouteError> {
    if let RequestBody::Map(m) = body {
        return RoutingOptions::extract(m);
    }
    let mut fields = Map::new();
    for f in RoutingOptions::FIELDS {
        let taken = body.remove(f).map_err(|e| RouteError::InvalidOption {
            path: f.to_owned(),
            message: format!("is not valid JSON: {e}"),
        })?;
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

/// The credentials a plan may use: the caller's request-scoped keys, or else the workspace's
/// stored ones (the system credentials live in the state).
pub(super) struct Credentials {
    pub stored: Arc<WorkspaceCredentials>,
    pub scoped: Vec<(ProviderSlug, Credential)>,
}

impl Credentials {
    pub async fn gather(
        state: &SharedState,
        caller: &ApiKeyRecord,
        options: &RoutingOptions,
        headers: &HeaderMap,
    ) -> Result<Self, ApiError> {
        let scoped = request_scoped_credentials(state, options, headers)?;
        let stored = if scoped.is_empty() {
            state
                .credentials
                .get(&state.store, &caller.workspace_id)
                .await?
        } else {
            Arc::default()
        };
        Ok(Self { stored, scoped })
    }

    pub fn scoped_inputs(&self) -> Vec<RequestScopedCredential<'_>> {
        self.scoped
            .iter()
            .map(|(p, c)| RequestScopedCredential::new(*p, c))
            .collect()
    }
}

/// The generation's record as it starts: who asked, for what, from which app.
pub(super) fn open_record(
    id: String,
    caller: &ApiKeyRecord,
    headers: &HeaderMap,
    req: &Prepared,
    attempts: usize,
) -> GenerationRecord {
    GenerationRecord {
        id,
        workspace_id: caller.workspace_id.clone(),
        api_key_hash: caller.hash.clone(),
        user: req.user.clone(),
        requested_model: req.model.clone(),
        model: None,
        provider: None,
        credential_id: None,
        is_byok: false,
        streamed: req.stream,
        status: 0,
        usage: None,
        latency_ms: 0,
        ttft_ms: None,
        attempts: Vec::with_capacity(attempts),
        finish_reason: None,
        app_referer: header_str(headers, "http-referer").or_else(|| header_str(headers, "referer")),
        app_title: header_str(headers, "x-openrouter-title")
            .or_else(|| header_str(headers, "x-title")),
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        cost_micros: 0,
        fee_micros: 0,
    }
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect())
}
