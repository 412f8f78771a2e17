//! Who is calling: a Keyway key from `Authorization: Bearer` (or `x-api-key`, which Anthropic's
//! clients send), looked up by its SHA-256 in the key cache.

use crate::error::ApiError;
use crate::state::SharedState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keyway_store::{ApiKeyRecord, Role};
use std::sync::Arc;

/// The raw key presented, if any.
pub fn presented_key(parts: &Parts) -> Option<&str> {
    presented_key_in(&parts.headers)
}

/// As [`presented_key`], from the headers alone.
pub fn presented_key_in(h: &axum::http::HeaderMap) -> Option<&str> {
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
    if let Some(crate::sessions::SessionAuth(rec)) = parts.extensions.get() {
        return Ok(rec.clone());
    }
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    if let Some(wait) = peer.and_then(|ip| state.keys.blocked(ip)) {
        return Err(too_many_failures(wait));
    }
    let result = authenticate_key(parts, state).await;
    if let (Err(ApiError::Unauthorized(_)), Some(ip)) = (&result, peer) {
        if let Some(wait) = state.keys.note_failure(ip) {
            tracing::warn!(source = %ip, "too many failed authentications from one address");
            return Err(too_many_failures(wait));
        }
    }
    result
}

fn too_many_failures(wait: u64) -> ApiError {
    ApiError::RateLimited { message: "too many failed authentications from this address; try again later".into(), retry_after: Some(std::time::Duration::from_secs(wait)) }
}

async fn authenticate_key(parts: &Parts, state: &SharedState) -> Result<Arc<ApiKeyRecord>, ApiError> {
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
    let digest = state.keys.digest(raw);
    let hash = &digest.hash;
    let rec = state.keys.get(&state.store, hash).await?.ok_or_else(|| ApiError::Unauthorized("invalid API key".into()))?;
    // The lookup was by digest; compare again in constant time so no code path branches on key bytes.
    if !keyway_crypto::constant_time_eq(rec.hash.as_bytes(), hash.as_bytes()) {
        return Err(ApiError::Unauthorized("invalid API key".into()));
    }
    state.keys.remember_digest(&digest);
    if rec.disabled {
        return Err(ApiError::Unauthorized("this API key is disabled".into()));
    }
    Ok(rec)
}

/// 403 unless the key is a management key.
pub fn require_management(rec: &ApiKeyRecord) -> Result<(), ApiError> {
    if !rec.role.is_management() {
        return Err(ApiError::Forbidden("this endpoint needs a management key (kw-mgmt-...)".into()));
    }
    Ok(())
}

/// A caller with an inference key. Management keys (any role) are refused: a key that can read
/// and change every credential must not be the one pasted into an app (OpenRouter's provisioning
/// keys can't call models either).
pub struct Caller(pub Arc<ApiKeyRecord>);

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let rec = authenticate(parts, state).await?;
        if rec.role != Role::Inference {
            return Err(ApiError::Forbidden(format!(
                "this is a management key ({} role); model calls need an inference key (kw-...): create one with POST /api/v1/keys",
                rec.role.as_str()
            )));
        }
        Ok(Caller(rec))
    }
}

/// Any valid key, whatever its role: routes about the calling key itself (`/key`, its credits
/// and generations, the model list).
pub struct AnyKey(pub Arc<ApiKeyRecord>);

impl FromRequestParts<SharedState> for AnyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map(AnyKey)
    }
}

/// A caller with a management key of any role (admin, owner or viewer): enough to read.
/// `scope()` is the workspace it may act in (`None`: any, admin).
pub struct Manager(pub Arc<ApiKeyRecord>);

impl Manager {
    /// The workspace filter for store calls: an admin key sees every workspace.
    pub fn scope(&self) -> Option<&str> {
        self.0.workspace_scope()
    }

    /// The workspace a write lands in: the one asked for (admins only, or the key's own), else the key's.
    pub fn target_workspace<'a>(&'a self, asked: Option<&'a str>) -> Result<&'a str, ApiError> {
        match asked {
            None => Ok(&self.0.workspace_id),
            Some(ws) if self.0.role == Role::Admin || ws == self.0.workspace_id => Ok(ws),
            Some(_) => Err(ApiError::NotFound("workspace not found".into())),
        }
    }

    pub fn role(&self) -> Role {
        self.0.role
    }

    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
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

/// A management key that may change things in its workspace: an owner or an admin.
pub struct Owner(pub Manager);

impl std::ops::Deref for Owner {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.0
    }
}

impl FromRequestParts<SharedState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let m = Manager::from_request_parts(parts, state).await?;
        if m.role() < Role::Owner {
            return Err(ApiError::Forbidden(format!("a {} key can read but not change anything: this needs an owner or admin key", m.role().as_str())));
        }
        Ok(Owner(m))
    }
}

/// An admin management key: the instance's own settings.
pub struct Admin(pub Manager);

impl std::ops::Deref for Admin {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.0
    }
}

impl FromRequestParts<SharedState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let m = Manager::from_request_parts(parts, state).await?;
        if !m.is_admin() {
            return Err(ApiError::Forbidden(format!("this needs an admin key; this is a {} key", m.role().as_str())));
        }
        Ok(Admin(m))
    }
}
