//! Who is calling: a Keyway key from `Authorization: Bearer` (or `x-api-key`, which Anthropic's
//! clients send), looked up by its SHA-256 in the key cache.

use crate::error::ApiError;
use crate::state::SharedState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keyway_store::{ApiKeyRecord, KeyKind};
use std::sync::Arc;

/// The raw key presented, if any.
pub fn presented_key(parts: &Parts) -> Option<&str> {
    let h = &parts.headers;
    if let Some(v) = h.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            _ => None,
        };
    }
    h.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

async fn authenticate(parts: &Parts, state: &SharedState) -> Result<Arc<ApiKeyRecord>, ApiError> {
    // A dashboard session, vetted by its middleware (only server code can put it in extensions).
    if let Some(crate::dashboard::session::SessionAuth(rec)) = parts.extensions.get() {
        return Ok(rec.clone());
    }
    let raw = presented_key(parts).filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::Unauthorized("missing API key: send `Authorization: Bearer kw-...`".into())
    })?;
    key_for(state, raw).await
}

/// The enabled key `raw` names (any kind), or 401.
pub async fn key_for(state: &SharedState, raw: &str) -> Result<Arc<ApiKeyRecord>, ApiError> {
    if !raw.starts_with(keyway_crypto::INFERENCE_PREFIX) {
        return Err(ApiError::Unauthorized("invalid API key".into()));
    }
    let hash = keyway_crypto::hash_api_key(raw);
    let rec = state.keys.get(&state.store, &hash).await?.ok_or_else(|| ApiError::Unauthorized("invalid API key".into()))?;
    // The lookup was by digest; compare again in constant time so no code path branches on key bytes.
    if !keyway_crypto::constant_time_eq(rec.hash.as_bytes(), hash.as_bytes()) {
        return Err(ApiError::Unauthorized("invalid API key".into()));
    }
    if rec.disabled {
        return Err(ApiError::Unauthorized("this API key is disabled".into()));
    }
    Ok(rec)
}

/// 403 unless the key is a management key.
pub fn require_management(rec: &ApiKeyRecord) -> Result<(), ApiError> {
    if rec.kind != KeyKind::Management {
        return Err(ApiError::Forbidden("this endpoint needs a management key (kw-mgmt-...)".into()));
    }
    Ok(())
}

/// A caller with an inference key (management keys may call inference routes too).
pub struct Caller(pub Arc<ApiKeyRecord>);

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map(Caller)
    }
}

/// A caller with a management key; `scope()` is the workspace it may act in (`None`: any, admin).
pub struct Manager(pub Arc<ApiKeyRecord>);

impl Manager {
    /// The workspace filter for store calls: an admin key sees every workspace.
    pub fn scope(&self) -> Option<&str> {
        (!self.0.admin).then_some(self.0.workspace_id.as_str())
    }

    /// The workspace a write lands in: the one asked for (admins only, or the key's own), else the key's.
    pub fn target_workspace<'a>(&'a self, asked: Option<&'a str>) -> Result<&'a str, ApiError> {
        match asked {
            None => Ok(&self.0.workspace_id),
            Some(ws) if self.0.admin || ws == self.0.workspace_id => Ok(ws),
            Some(_) => Err(ApiError::NotFound("workspace not found".into())),
        }
    }
}

impl FromRequestParts<SharedState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let rec = authenticate(parts, state).await?;
        require_management(&rec)?;
        Ok(Manager(rec))
    }
}
