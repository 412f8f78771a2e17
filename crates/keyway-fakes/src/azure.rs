//! A fake of Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions` and
//! `/embeddings`, also under `/r/{resource}/...` so that tests can point Keyway's
//! `https://{resource}.openai.azure.com` template at loopback (`http://127.0.0.1:PORT/r/{resource}`).
//! Auth is the `api-key` header only; `api-version` is required. Answers come from the OpenAI
//! fake, as Azure's bodies are OpenAI's.

use crate::openai::{answer_chat, answer_embeddings};
use crate::server::{header_pairs, FakeOptions, FakeServer, FakeState, Fault, RecordedCall};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Starts the fake. Deployment endpoints: `{url}`; resource template: `{url}/r/{resource}`.
pub async fn start(options: FakeOptions) -> std::io::Result<FakeServer> {
    let state = FakeState::new(options);
    FakeServer::start(router(state.clone()), state, None).await
}

pub fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/openai/deployments/{deployment}/chat/completions", post(chat))
        .route("/openai/deployments/{deployment}/embeddings", post(embeddings))
        .route("/r/{resource}/openai/deployments/{deployment}/chat/completions", post(chat))
        .route("/r/{resource}/openai/deployments/{deployment}/embeddings", post(embeddings))
        .with_state(state)
}

/// Azure's error body: `{"error": {"code", "message"}}` with the status as a string code.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"code": status.as_u16().to_string(), "message": message}}))).into_response()
}

enum Op {
    Chat,
    Embeddings,
}

async fn chat(
    State(state): State<Arc<FakeState>>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&state, Op::Chat, &params, &query, &uri, &headers, &body).await
}

async fn embeddings(
    State(state): State<Arc<FakeState>>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&state, Op::Embeddings, &params, &query, &uri, &headers, &body).await
}

async fn handle(
    state: &FakeState,
    op: Op,
    params: &HashMap<String, String>,
    query: &HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    // Azure answers a missing api-version as an unknown resource.
    if query.get("api-version").is_none_or(|v| v.is_empty()) {
        return error(StatusCode::NOT_FOUND, "Resource not found");
    }
    // Only `api-key`: a bearer header carries an Entra ID token, never a key.
    let key = headers.get("api-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if !state.key_ok(&key) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    let Ok(mut req) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "We could not parse the JSON body of your request.");
    };
    let deployment = params.get("deployment").cloned().unwrap_or_default();
    let call = RecordedCall { method: "POST".into(), path: uri.path().to_owned(), key, headers: header_pairs(headers), body: req.clone() };
    let fault = state.record(call);
    if fault == Some(Fault::Forbidden) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"code": "PermissionDenied", "message": "Principal does not have access to API/Operation."}})),
        )
            .into_response();
    }
    // Azure routes by deployment and doesn't need `model`; the OpenAI fake does.
    if let Some(o) = req.as_object_mut() {
        o.entry("model").or_insert(Value::String(deployment));
    }
    match op {
        Op::Chat => answer_chat(state, &req, fault).await,
        Op::Embeddings => answer_embeddings(&req, fault).await,
    }
}
