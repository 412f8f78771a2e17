//! Building audit entries at the edge: who (the acting key), from where (the peer address), what
//! (an action name and the fields set, never a secret value). The rows themselves are written by
//! the store, in the transaction of the change (`keyway-store/src/audit.rs`).

use crate::auth::Manager;
use crate::state::SharedState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use keyway_store::{AuditActor, AuditEntry, AuditRow};
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::net::SocketAddr;

/// The request's peer address, when the server knows it.
#[derive(Debug, Clone, Default)]
pub struct Peer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())))
    }
}

pub fn actor(m: &Manager, peer: &Peer) -> AuditActor {
    AuditActor { key: m.0.hash.chars().take(8).collect(), name: m.0.name.clone(), source: peer.0.clone() }
}

pub fn entry(m: &Manager, peer: &Peer, action: &str, changes: Value) -> AuditEntry {
    AuditEntry { actor: actor(m, peer), action: action.to_owned(), changes }
}

/// The fields of a request body as the log keeps them: secret-bearing fields (`key`, anything
/// named like a secret) are replaced by `(set)`; the rest keep their values.
pub fn changes(body: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in body {
        let secret = matches!(k.as_str(), "key" | "api_key" | "apiKey" | "secretAccessKey" | "secret_access_key" | "private_key" | "service_account")
            || k.to_ascii_lowercase().contains("secret")
            || k.to_ascii_lowercase().contains("password");
        out.insert(k.clone(), if secret { Value::String("(set)".into()) } else { v.clone() });
    }
    Value::Object(out)
}

/// Records a management change that was refused or failed (it changed nothing, so it has no
/// transaction of its own): only for keys that authenticated, so bogus keys can't fill the log.
pub async fn record_refusal(state: &SharedState, hash: &str, method: &str, path: &str, status: u16, source: Option<String>) {
    let Ok(Some(key)) = state.keys.get(&state.store, hash).await else { return };
    let row = AuditRow {
        id: uuid::Uuid::new_v4().to_string(),
        at: chrono::Utc::now().timestamp_millis(),
        workspace_id: Some(key.workspace_id.clone()),
        actor_key: key.hash.chars().take(8).collect(),
        actor_name: key.name.clone(),
        source,
        action: format!("{method} {path}"),
        target_type: "request".into(),
        target_id: None,
        changes: Value::Object(Map::new()),
        outcome: if status == 401 || status == 403 { "denied".into() } else { "failed".into() },
    };
    if let Err(e) = state.store.record_audit(&row).await {
        tracing::warn!(error = %e, "could not write an audit row");
    }
}

/// Middleware on the management routes: a write that ended in an error is logged as refused.
pub async fn refusals(
    axum::extract::State(state): axum::extract::State<SharedState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let write = matches!(method, axum::http::Method::POST | axum::http::Method::PATCH | axum::http::Method::PUT | axum::http::Method::DELETE);
    let key = write.then(|| crate::auth::presented_key_in(req.headers()).map(keyway_crypto::hash_api_key)).flatten();
    // Nested routers see their own suffix; the log names the path the client called.
    let path = req.extensions().get::<axum::extract::OriginalUri>().map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned());
    let source = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    if let Some(hash) = key {
        // Test key answers 200 whatever the upstream said; only the gateway's own refusals count.
        if status >= 400 && !path.ends_with("/test") {
            record_refusal(&state, &hash, method.as_str(), &path, status, source).await;
        }
    }
    resp
}
