//! Google service-account OAuth: an RS256 JWT assertion, POSTed form-encoded to the credential's
//! own `token_uri` (used exactly as stored, so that the gateway can vet it against its allow-list),
//! exchanged for an access token that is cached per credential until 60 s before it expires.
//!
//! Refreshes are single-flight per credential: concurrent requests queue on one async mutex, the
//! first refreshes, the rest find the fresh token. Requests that queued behind a refresh that
//! failed share its error instead of each trying again.

use crate::error::{ProviderError, TimeoutKind};
use crate::http;
use crate::timeouts::Timeouts;
use keyway_core::credential::VertexCredential;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A token is replaced this long before Google says it expires.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
const ASSERTION_LIFETIME_SECS: i64 = 3600;

/// Identifies a credential without holding its secret: the key enters only as a SHA-256 digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    client_email: String,
    token_uri: String,
    key_fingerprint: [u8; 32],
}

impl TokenKey {
    pub fn of(cred: &VertexCredential) -> Self {
        let digest = Sha256::digest(cred.private_key.expose_secret().as_bytes());
        Self { client_email: cred.client_email.clone(), token_uri: cred.token_uri.clone(), key_fingerprint: digest.into() }
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short: String = self.key_fingerprint[..4].iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("TokenKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("key_fingerprint", &format_args!("{short}..."))
            .finish()
    }
}

struct Cached {
    token: SecretString,
    expires_at: Instant,
}

impl Cached {
    fn fresh(&self) -> bool {
        Instant::now() + EXPIRY_MARGIN < self.expires_at
    }
}

#[derive(Default)]
struct SlotState {
    token: Option<Cached>,
    last_error: Option<ProviderError>,
}

#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
    /// Refreshes finished; a waiter that sees it move knows a refresh ended while it queued.
    finished: AtomicU64,
}

/// Access tokens per service account.
pub struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Arc<Slot>>>,
    http: crate::client::HttpClient,
    timeouts: Timeouts,
    requests: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("token_requests", &self.token_requests()).finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The endpoint a credential's tokens come from: exactly its `token_uri`, never rewritten.
pub fn token_endpoint(cred: &VertexCredential) -> &str {
    &cred.token_uri
}

/// The signed assertion for `cred` at `now` (seconds since the epoch).
pub fn assertion(cred: &VertexCredential, now: i64) -> Result<String, ProviderError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(cred.private_key.expose_secret().as_bytes())
        .map_err(|_| ProviderError::Auth { status: 401, message: "the service account's private_key is not a usable RSA key".into(), body: None })?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = cred.private_key_id.clone();
    let claims = Claims { iss: &cred.client_email, scope: SCOPE, aud: token_endpoint(cred), iat: now, exp: now + ASSERTION_LIFETIME_SECS };
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|_| ProviderError::Auth { status: 401, message: "could not sign the service-account assertion".into(), body: None })
}

impl TokenCache {
    pub fn new(http: crate::client::HttpClient, timeouts: Timeouts) -> Self {
        Self { slots: Mutex::new(HashMap::new()), http, timeouts, requests: AtomicU64::new(0) }
    }

    /// Token requests sent so far (all credentials).
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn slot(&self, key: TokenKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() > 256 {
            // Forget credentials nobody is using whose token has lapsed (rotated keys).
            slots.retain(|_, s| {
                Arc::strong_count(s) > 1 || s.state.try_lock().map(|st| st.token.as_ref().is_some_and(Cached::fresh)).unwrap_or(true)
            });
        }
        slots.entry(key).or_default().clone()
    }

    /// A valid access token for `cred`, from the cache or one refresh.
    pub async fn token(&self, cred: &VertexCredential) -> Result<SecretString, ProviderError> {
        let slot = self.slot(TokenKey::of(cred));
        let seen = slot.finished.load(Ordering::SeqCst);
        let mut st = slot.state.lock().await;
        if let Some(c) = st.token.as_ref().filter(|c| c.fresh()) {
            return Ok(c.token.clone());
        }
        if slot.finished.load(Ordering::SeqCst) != seen {
            if let Some(e) = &st.last_error {
                return Err(e.clone());
            }
        }
        let result = self.fetch(cred).await;
        slot.finished.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(c) => {
                let token = c.token.clone();
                *st = SlotState { token: Some(c), last_error: None };
                Ok(token)
            }
            Err(e) => {
                *st = SlotState { token: None, last_error: Some(e.clone()) };
                Err(e)
            }
        }
    }

    /// Drops `token` if it is the cached one (upstream said 401: revoked or expired early).
    pub async fn invalidate(&self, cred: &VertexCredential, token: &SecretString) {
        let slot = self.slot(TokenKey::of(cred));
        let mut st = slot.state.lock().await;
        if st.token.as_ref().is_some_and(|c| c.token.expose_secret() == token.expose_secret()) {
            st.token = None;
        }
    }

    async fn fetch(&self, cred: &VertexCredential) -> Result<Cached, ProviderError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let jwt = assertion(cred, chrono::Utc::now().timestamp())?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT_TYPE)
            .append_pair("assertion", &jwt)
            .finish();
        let request = self
            .http
            .post(token_endpoint(cred))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .build()
            .map_err(|_| ProviderError::Auth { status: 401, message: "the service account's token_uri is not a valid URL".into(), body: None })?;
        let started = Instant::now();
        let resp = match tokio::time::timeout(self.timeouts.first_byte, self.http.execute(request)).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutKind::FirstByte)),
            Ok(r) => r?,
        };
        let status = resp.status().as_u16();
        let body = http::read_body(resp, &self.timeouts).await?;
        if !(200..300).contains(&status) {
            return Err(refresh_error(status, &body));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Auth { status: 401, message: "the token endpoint answered something other than JSON".into(), body: None })?;
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProviderError::Auth { status: 401, message: "the token endpoint answered without an access_token".into(), body: None })?;
        let expires_in = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        Ok(Cached { token: SecretString::from(token.to_owned()), expires_at: started + Duration::from_secs(expires_in) })
    }
}

/// A refused refresh is an auth failure; a throttled or failing token endpoint stays transient so
/// that the router keeps the credential and tries again later.
fn refresh_error(status: u16, body: &[u8]) -> ProviderError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let detail = v
        .get("error_description")
        .or_else(|| v.pointer("/error/message"))
        .or_else(|| v.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("no detail");
    let message = format!("service-account token refresh failed ({status}): {detail}");
    match status {
        429 => ProviderError::RateLimited { status, retry_after: None, message, body: None },
        500..=599 => ProviderError::Upstream5xx { status, message },
        // The token endpoint's own status and answer (`invalid_grant`, ...), so that Test key shows
        // them; the answer never holds the assertion or the key.
        _ => ProviderError::Auth { status, message, body: Some(String::from_utf8_lossy(body).into_owned()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = include_str!("../../../keyway-core/testdata/test-rsa-key.pem");

    fn cred() -> VertexCredential {
        VertexCredential {
            project_id: "p".into(),
            client_email: "sa@p.iam.gserviceaccount.com".into(),
            private_key: SecretString::from(PEM.to_owned()),
            private_key_id: Some("kid1".into()),
            token_uri: "https://oauth2.googleapis.com/token".into(),
            location: "global".into(),
        }
    }

    #[test]
    fn assertion_has_the_claims_google_wants() {
        let jwt = assertion(&cred(), 1_700_000_000).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("kid1"));
        let payload = jwt.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = TokenKey::of(&cred());
        let dbg = format!("{k:?}");
        assert!(dbg.contains("sa@p.iam"));
        assert!(!dbg.contains("PRIVATE"));
        match refresh_error(400, br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#) {
            ProviderError::Auth { status, message, body } => {
                assert_eq!(status, 400);
                assert!(message.contains("Invalid JWT Signature."), "{message}");
                assert!(body.is_some_and(|b| b.contains("invalid_grant")));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(refresh_error(503, b""), ProviderError::Upstream5xx { .. }));
    }
}
