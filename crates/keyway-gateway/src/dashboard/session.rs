//! Dashboard sessions: a management key is exchanged once for a random session id kept in an
//! HttpOnly, SameSite=Strict cookie (Secure behind TLS). The server keeps, per session, the key's
//! SHA-256 (never the raw key), a CSRF token and an expiry. Every request re-reads the key through
//! the key cache, so disabling or deleting the key ends its sessions.

use crate::error::ApiError;
pub use crate::sessions::{random_token, SessionAuth, Sessions};
use crate::state::SharedState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyway_store::{ApiKeyRecord, KeyKind};
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "kw_session";
pub const LOGIN_CSRF_COOKIE: &str = "kw_login_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in dashboard user: the management key's record and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub key: Arc<ApiKeyRecord>,
    pub csrf: String,
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Served over TLS: by a TLS-terminating proxy in front (`X-Forwarded-Proto: https`, or the
/// standard `Forwarded: proto=https`).
pub fn is_https(headers: &HeaderMap) -> bool {
    let xfp = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    });
    let fwd = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split([';', ',']).any(|p| p.trim().eq_ignore_ascii_case("proto=https")));
    xfp || fwd
}

/// A `Set-Cookie` value with the flags every dashboard cookie carries.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Option<u64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    set_cookie(name, "", path, Some(0), secure)
}

/// The session a request carries, if live and its key is still an enabled management key.
pub async fn current(state: &SharedState, headers: &HeaderMap) -> Option<Session> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let (hash, csrf) = state.sessions.lookup(id)?;
    let key = match state.keys.get(&state.store, &hash).await {
        Ok(Some(k)) if k.kind == KeyKind::Management && !k.disabled => k,
        Ok(_) => {
            state.sessions.remove(id);
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "dashboard session: key lookup failed");
            return None;
        }
    };
    Some(Session { id: id.to_owned(), key, csrf })
}

/// Constant-time comparison of a presented CSRF token with the session's.
pub fn csrf_matches(presented: Option<&str>, expected: &str) -> bool {
    presented.is_some_and(|p| keyway_crypto::constant_time_eq(p.as_bytes(), expected.as_bytes()))
}

/// Guards `/ui/api/v1/...` (the management API for the dashboard's own fetches): a live session,
/// and on anything but GET/HEAD the session's CSRF token in `x-csrf-token`.
pub async fn require_api_session(State(state): State<SharedState>, mut req: Request, next: Next) -> Response {
    let Some(session) = current(&state, req.headers()).await else {
        return ApiError::Unauthorized("not signed in, or the session expired: sign in again".into()).into_response();
    };
    let safe = req.method() == Method::GET || req.method() == Method::HEAD;
    if !safe {
        let presented = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !csrf_matches(presented, &session.csrf) {
            return ApiError::Forbidden("missing or wrong CSRF token (x-csrf-token); reload the page".into()).into_response();
        }
    }
    req.extensions_mut().insert(SessionAuth(session.key));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; kw_session_x=2; kw_session=abc"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn tls_detection() {
        let mut h = HeaderMap::new();
        assert!(!is_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(is_https(&h));
        let mut h = HeaderMap::new();
        h.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4;proto=https"));
        assert!(is_https(&h));
    }
}
