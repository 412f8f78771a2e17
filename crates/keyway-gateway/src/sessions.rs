//! The dashboard's session table: session id -> (key hash, CSRF token, expiry). A leaf the
//! state owns; the cookies and the guard that read it are in `dashboard/session.rs`.

use keyway_store::ApiKeyRecord;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Put in a request's extensions by the dashboard's session guard; the management extractors take the
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
    pub fn lookup(&self, id: &str) -> Option<(String, String)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get(id)?;
        if e.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some((e.key_hash.clone(), e.csrf.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
