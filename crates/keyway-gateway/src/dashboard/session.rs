//! Dashboard sessions: a management key is exchanged once for a random session id kept in an
//! HttpOnly, SameSite=Strict cookie (Secure behind TLS). The server keeps, per session, the key's
//! SHA-256 (never the raw key), a CSRF token and an expiry. Every request re-reads the key through
//! the key cache, so disabling or deleting the key ends its sessions.

use crate::error::ApiError;
use crate::state::SharedState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyway_store::{ApiKeyRecord, KeyKind};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "kw_session";
pub const LOGIN_CSRF_COOKIE: &str = "kw_login_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// More sessions than any team needs; past it the oldest go first (a flood of sign-ins can't grow memory).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    key_hash: String,
    csrf: String,
    created: Instant,
    expires: Instant,
}

/// The in-memory session table (one per node: a restart signs everyone out).
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Entry>>,
}

/// A signed-in dashboard user: the management key's record and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub key: Arc<ApiKeyRecord>,
    pub csrf: String,
}

/// Put in a request's extensions by [`require_api_session`]; the management extractors take the
/// caller from it, so the dashboard's fetches run the management API's own handlers.
#[derive(Debug, Clone)]
pub struct SessionAuth(pub Arc<ApiKeyRecord>);

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, map: Mutex::new(HashMap::new()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for a key (by its hash); returns (session id, CSRF token).
    pub fn create(&self, key_hash: &str) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.created).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), Entry { key_hash: key_hash.to_owned(), csrf: csrf.clone(), created: now, expires: now + self.ttl });
        (id, csrf)
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// (key hash, CSRF token) of a live session; an expired one is dropped.
    fn lookup(&self, id: &str) -> Option<(String, String)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get(id)?;
        if e.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some((e.key_hash.clone(), e.csrf.clone()))
    }
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
    fn sessions_expire() {
        let s = Sessions::new(Duration::from_millis(0));
        let (id, _) = s.create("h");
        assert!(s.lookup(&id).is_none());
        let s = Sessions::new(Duration::from_secs(60));
        let (id, csrf) = s.create("h");
        assert_eq!(s.lookup(&id), Some(("h".into(), csrf)));
        s.remove(&id);
        assert!(s.lookup(&id).is_none());
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
