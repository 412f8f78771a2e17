//! In-memory caches that keep the database off the hot path: Keyway keys by hash, and each
//! workspace's BYOK credentials (its own and the global ones) decrypted. Entries live for a
//! short TTL (so other nodes' writes show up) and are dropped at once when this node changes them.
//! With a shared PostgreSQL, [`KeyCache::invalidate`] and [`CredentialCache::invalidate`] also
//! signal the other nodes (`cluster.rs`), which [`KeyCache::forget`] / [`CredentialCache::forget`];
//! a load that raced with a change is not cached (the `changes` counters), so the TTL is only
//! the safety net for lost signals.

use keyway_core::route::CredentialMeta;
use keyway_core::Credential;
use keyway_store::signal::Change;
use keyway_store::{ApiKeyRecord, ByokRecord, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc::UnboundedSender;
use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Where an entry of a TTL cache stands: served as it is, served while one lookup refreshes it
/// (the last quarter of its TTL), or to be loaded.
enum Cached<V> {
    Fresh(V),
    DueForRefresh(V),
    Absent,
}

/// The point of an entry's life after which it is refreshed ahead of its expiry.
fn refresh_at(ttl: Duration) -> Duration {
    ttl - ttl / 4
}

fn cached<V: Clone>(map: &RwLock<HashMap<String, (V, Instant)>>, key: &str, ttl: Duration) -> Cached<V> {
    match read(map).get(key) {
        Some((v, at)) => match at.elapsed() {
            age if age < refresh_at(ttl) => Cached::Fresh(v.clone()),
            age if age < ttl => Cached::DueForRefresh(v.clone()),
            _ => Cached::Absent,
        },
        None => Cached::Absent,
    }
}

/// The entry when it is younger than `within`.
fn fresh<V: Clone>(map: &RwLock<HashMap<String, (V, Instant)>>, key: &str, within: Duration) -> Option<V> {
    read(map).get(key).filter(|(_, at)| at.elapsed() < within).map(|(v, _)| v.clone())
}

pub struct KeyCache {
    ttl: Duration,
    map: RwLock<HashMap<String, (Arc<ApiKeyRecord>, Instant)>>,
    /// Hashes the store didn't know, for [`NEGATIVE_TTL`]: a flood of bogus keys costs no queries.
    misses: RwLock<HashMap<String, Instant>>,
    /// Loads in flight, one lock per hash: the lookups of a key that isn't fresh wait for one
    /// query instead of each asking the store (per hash, so that unknown keys being looked up
    /// never hold up a known one's refresh).
    loading: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Failed authentications per source address in the current window.
    failures: std::sync::Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
    /// When the last block any address is under ends (ms since `epoch`): until then `blocked`
    /// looks in `failures`; after it, every request skips that lock.
    blocked_until_ms: std::sync::atomic::AtomicU64,
    epoch: Instant,
    /// Bumped by every invalidation: a lookup that saw it move doesn't cache what it read.
    changes: AtomicU64,
    signal: std::sync::OnceLock<UnboundedSender<Change>>,
    digests: Digests,
}

/// The SHA-256 digests of keys presented and found, by a keyed 128-bit fingerprint of the raw
/// key: an app sends the same key on every request, and SHA-256 was ~3.4k instructions of each
/// (on a CPU without SHA extensions; bench/README.md, 2026-12-08, third pass), a fingerprint a
/// tenth of it. The fingerprint is two SipHash-1-3 sums under independent random keys drawn at
/// start-up (std's `RandomState`), so a caller who doesn't know them can't aim a key at another
/// key's entry: a false match is a 2^-128 event per try. Only the fingerprint and the digest
/// (which the store and the API show anyway) are kept, never the key. A digest never goes stale:
/// whether its key still works is asked of the key map, by digest, every time.
struct Digests {
    seeds: (std::hash::RandomState, std::hash::RandomState),
    map: RwLock<HashMap<u128, Arc<str>>>,
}

/// A presented key's SHA-256 (hex), and where the memo has it.
pub struct KeyDigest {
    pub hash: Arc<str>,
    fingerprint: u128,
    kept: bool,
}

/// Fingerprints kept; past it the memo starts over (~100 bytes each).
const MAX_DIGESTS: usize = 16_384;

impl Digests {
    fn new() -> Self {
        Self { seeds: (std::hash::RandomState::new(), std::hash::RandomState::new()), map: RwLock::new(HashMap::new()) }
    }

    fn fingerprint(&self, raw: &str) -> u128 {
        use std::hash::BuildHasher as _;
        (u128::from(self.seeds.0.hash_one(raw)) << 64) | u128::from(self.seeds.1.hash_one(raw))
    }
}

/// A lookup's hold on its key's load lock; the last one out removes the lock (also when its
/// request is dropped mid-wait), so the map only holds keys being loaded.
struct Loading<'a> {
    cache: &'a KeyCache,
    hash: &'a str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        let mut m = self.cache.loading.lock().unwrap_or_else(|p| p.into_inner());
        // Two holders left, the map and this one: nobody else is waiting on it.
        if m.get(self.hash).is_some_and(|l| Arc::ptr_eq(l, &self.lock)) && Arc::strong_count(&self.lock) == 2 {
            m.remove(self.hash);
        }
    }
}

/// How long an unknown key is answered from memory. Keys created on this node are removed from
/// it at once; one created on another node works within this time.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);
const MAX_MISSES: usize = 50_000;
/// Failed authentications a source may make per window before it is answered 429.
pub const MAX_AUTH_FAILURES: u32 = 100;
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: RwLock::new(HashMap::new()),
            misses: RwLock::new(HashMap::new()),
            loading: std::sync::Mutex::new(HashMap::new()),
            failures: std::sync::Mutex::new(HashMap::new()),
            blocked_until_ms: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
            changes: AtomicU64::new(0),
            signal: std::sync::OnceLock::new(),
            digests: Digests::new(),
        }
    }

    /// `keyway_crypto::hash_api_key(raw)`, from memory for a key found before.
    pub fn digest(&self, raw: &str) -> KeyDigest {
        let fingerprint = self.digests.fingerprint(raw);
        if let Some(d) = read(&self.digests.map).get(&fingerprint) {
            return KeyDigest { hash: d.clone(), fingerprint, kept: true };
        }
        KeyDigest { hash: Arc::from(keyway_crypto::hash_api_key(raw)), fingerprint, kept: false }
    }

    /// Keeps the digest of a key that was found: unknown keys are not kept, so a flood of
    /// made-up keys can't push the real ones out.
    pub fn remember_digest(&self, d: &KeyDigest) {
        if d.kept {
            return;
        }
        let mut map = write(&self.digests.map);
        if map.len() >= MAX_DIGESTS {
            map.clear();
        }
        map.insert(d.fingerprint, d.hash.clone());
    }

    fn ms_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts a failed authentication from `ip`; returns the seconds to wait when it is over the limit.
    pub fn note_failure(&self, ip: std::net::IpAddr) -> Option<u64> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() > MAX_MISSES {
            f.retain(|_, (_, start)| start.elapsed() < AUTH_FAILURE_WINDOW);
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= AUTH_FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
        if e.0 <= MAX_AUTH_FAILURES {
            return None;
        }
        let until = self.ms_since_epoch(e.1 + AUTH_FAILURE_WINDOW);
        self.blocked_until_ms.fetch_max(until, std::sync::atomic::Ordering::Relaxed);
        Some(AUTH_FAILURE_WINDOW.saturating_sub(e.1.elapsed()).as_secs().max(1))
    }

    /// Whether `ip` is over its failure budget now (checked before any lookup).
    pub fn blocked(&self, ip: std::net::IpAddr) -> Option<u64> {
        // The common case, no address blocked: one atomic load instead of the lock.
        if self.ms_since_epoch(Instant::now()) >= self.blocked_until_ms.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.get(&ip)
            .filter(|(n, start)| *n > MAX_AUTH_FAILURES && start.elapsed() < AUTH_FAILURE_WINDOW)
            .map(|(_, start)| AUTH_FAILURE_WINDOW.saturating_sub(start.elapsed()).as_secs().max(1))
    }

    /// The key with this hash, from memory when fresh. Unknown keys always ask the store
    /// (one indexed lookup) so a key created on another node works at once.
    ///
    /// One query per key however many requests present it at once: lookups of a key that isn't
    /// in memory wait for the one load in flight. And an entry past three quarters of its TTL
    /// is refreshed by the first lookup that finds no load in flight, while the others are
    /// still served from memory, so a key in steady use never expires under its traffic.
    pub async fn get(&self, store: &Store, hash: &str) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        match cached(&self.map, hash, self.ttl) {
            Cached::Fresh(rec) => Ok(Some(rec)),
            Cached::DueForRefresh(rec) => {
                let load = self.loading(hash);
                let Ok(_guard) = load.lock.try_lock() else { return Ok(Some(rec)) };
                if let Some(now) = fresh(&self.map, hash, refresh_at(self.ttl)) {
                    return Ok(Some(now));
                }
                // The entry is still valid: a store that fails now doesn't fail the request.
                Ok(self.load(store, hash).await.unwrap_or(Some(rec)))
            }
            Cached::Absent => {
                if self.known_missing(hash) {
                    return Ok(None);
                }
                let load = self.loading(hash);
                let _guard = load.lock.lock().await;
                if let Some(rec) = fresh(&self.map, hash, self.ttl) {
                    return Ok(Some(rec));
                }
                if self.known_missing(hash) {
                    return Ok(None);
                }
                self.load(store, hash).await
            }
        }
    }

    fn known_missing(&self, hash: &str) -> bool {
        read(&self.misses).get(hash).is_some_and(|at| at.elapsed() < NEGATIVE_TTL)
    }

    /// The lock of `hash`'s load, shared by every lookup of it until the last one is done.
    fn loading<'a>(&'a self, hash: &'a str) -> Loading<'a> {
        let mut m = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        let lock = m.entry(hash.to_owned()).or_default().clone();
        Loading { cache: self, hash, lock }
    }

    /// Asks the store, and keeps the answer unless an invalidation raced with the query.
    async fn load(&self, store: &Store, hash: &str) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        let seen = self.changes.load(Ordering::Acquire);
        let found = store.find_key_by_hash(hash).await.inspect_err(|e| store.note_error(e))?.map(Arc::new);
        if self.changes.load(Ordering::Acquire) != seen {
            return Ok(found);
        }
        if found.is_none() {
            let mut misses = write(&self.misses);
            if misses.len() >= MAX_MISSES {
                misses.retain(|_, at| at.elapsed() < NEGATIVE_TTL);
                if misses.len() >= MAX_MISSES {
                    misses.clear();
                }
            }
            misses.insert(hash.to_owned(), Instant::now());
        }
        let mut map = write(&self.map);
        match &found {
            Some(rec) => {
                if map.len() > 100_000 {
                    map.retain(|_, (_, at)| at.elapsed() < self.ttl);
                }
                map.insert(hash.to_owned(), (rec.clone(), Instant::now()));
            }
            None => {
                map.remove(hash);
            }
        }
        Ok(found)
    }

    /// Drops this key here and tells the other nodes to.
    pub fn invalidate(&self, hash: &str) {
        self.forget(hash);
        if let Some(tx) = self.signal.get() {
            let _ = tx.send(Change::Key(hash.to_owned()));
        }
    }

    /// Drops this key here only (another node changed it).
    pub fn forget(&self, hash: &str) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        write(&self.map).remove(hash);
        write(&self.misses).remove(hash);
    }

    /// Drops every key here (signals may have been missed).
    pub fn forget_all(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        write(&self.map).clear();
        write(&self.misses).clear();
    }

    /// Sends this node's invalidations to `tx` too (once).
    pub fn share(&self, tx: UnboundedSender<Change>) {
        let _ = self.signal.set(tx);
    }
}

/// A workspace's credentials, decrypted, in routing order, with the planner's view of each
/// (`metas[i]` describes `entries[i]`), built once per load rather than per request.
#[derive(Debug, Default)]
pub struct WorkspaceCredentials {
    pub entries: Vec<(ByokRecord, Arc<Credential>)>,
    pub metas: Vec<CredentialMeta>,
}

fn meta(rec: &ByokRecord, cred: &Credential) -> CredentialMeta {
    CredentialMeta {
        disabled: rec.disabled,
        is_fallback: rec.is_fallback,
        always_use: rec.always_use,
        is_byok_only: rec.is_byok_only,
        sort_order: rec.sort_order,
        allowed_models: rec.allowed_models.clone(),
        allowed_api_key_hashes: rec.allowed_api_key_hashes.clone(),
        allowed_user_ids: rec.allowed_user_ids.clone(),
        model_mappings: rec.model_mappings.clone(),
        declared_zdr: rec.declared_zdr,
        ..CredentialMeta::new(rec.id.as_str(), rec.provider)
    }
    .with_credential(cred)
}

pub struct CredentialCache {
    ttl: Duration,
    map: RwLock<HashMap<String, (Arc<WorkspaceCredentials>, Instant)>>,
    /// One load per workspace at a time: concurrent misses wait for the first.
    loading: tokio::sync::Mutex<()>,
    known_models: Option<Arc<crate::metrics::KnownModels>>,
    /// As in [`KeyCache`]: a load that raced with an invalidation is not cached.
    changes: AtomicU64,
    signal: std::sync::OnceLock<UnboundedSender<Change>>,
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, map: RwLock::new(HashMap::new()), loading: tokio::sync::Mutex::new(()), known_models: None, changes: AtomicU64::new(0), signal: std::sync::OnceLock::new() }
    }

    /// Model mappings of loaded credentials become names a metric label may carry.
    pub fn with_known_models(mut self, known: Arc<crate::metrics::KnownModels>) -> Self {
        self.known_models = Some(known);
        self
    }

    /// As [`KeyCache::get`]: past three quarters of its TTL a workspace's entry is refreshed by
    /// one lookup while the others are still served, so it doesn't expire under traffic.
    pub async fn get(&self, store: &Store, workspace_id: &str) -> Result<Arc<WorkspaceCredentials>, StoreError> {
        match cached(&self.map, workspace_id, self.ttl) {
            Cached::Fresh(c) => Ok(c),
            Cached::DueForRefresh(c) => {
                let Ok(_guard) = self.loading.try_lock() else { return Ok(c) };
                if let Some(now) = fresh(&self.map, workspace_id, refresh_at(self.ttl)) {
                    return Ok(now);
                }
                // Still valid: a store that fails now doesn't fail the request.
                Ok(self.load(store, workspace_id).await.unwrap_or(c))
            }
            Cached::Absent => {
                let _guard = self.loading.lock().await;
                if let Some(c) = fresh(&self.map, workspace_id, self.ttl) {
                    return Ok(c);
                }
                self.load(store, workspace_id).await
            }
        }
    }

    /// Loads and decrypts; called with `loading` held.
    async fn load(&self, store: &Store, workspace_id: &str) -> Result<Arc<WorkspaceCredentials>, StoreError> {
        let seen = self.changes.load(Ordering::Acquire);
        let mut entries = Vec::new();
        for (rec, cred) in store.load_byok_for_routing(workspace_id).await.inspect_err(|e| store.note_error(e))? {
            match cred {
                Ok(c) => entries.push((rec, Arc::new(c))),
                // Never fail every request because one row is damaged; say which row, not its secret.
                Err(e) => tracing::error!(credential_id = %rec.id, error = %e, "stored credential cannot be opened; skipping it"),
            }
        }
        if let Some(known) = &self.known_models {
            known.add(entries.iter().flat_map(|(r, _)| r.model_mappings.iter().flat_map(|m| [m.gateway_model_slug.as_str(), m.custom_model_id.as_str()])));
        }
        let metas = entries.iter().map(|(r, c)| meta(r, c)).collect();
        let creds = Arc::new(WorkspaceCredentials { entries, metas });
        if self.changes.load(Ordering::Acquire) == seen {
            write(&self.map).insert(workspace_id.to_owned(), (creds.clone(), Instant::now()));
        }
        Ok(creds)
    }

    pub fn invalidate(&self, workspace_id: &str) {
        self.forget(workspace_id);
        self.send(Change::Credentials(Some(workspace_id.to_owned())));
    }

    /// Drops every workspace's entry: a global credential is part of each of them.
    pub fn invalidate_all(&self) {
        self.forget_all();
        self.send(Change::Credentials(None));
    }

    fn send(&self, c: Change) {
        if let Some(tx) = self.signal.get() {
            let _ = tx.send(c);
        }
    }

    /// Drops a workspace's entry here only (another node changed it).
    pub fn forget(&self, workspace_id: &str) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        write(&self.map).remove(workspace_id);
    }

    pub fn forget_all(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        write(&self.map).clear();
    }

    /// Sends this node's invalidations to `tx` too (once).
    pub fn share(&self, tx: UnboundedSender<Change>) {
        let _ = self.signal.set(tx);
    }

    /// Drops what a change to `rec` affects: its workspace, or every workspace for a global one.
    pub fn invalidate_for(&self, rec: &ByokRecord) {
        match &rec.workspace_id {
            Some(ws) => self.invalidate(ws),
            None => self.invalidate_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_found_key_s_digest_comes_from_memory_and_only_its_own() {
        let keys = KeyCache::new(Duration::from_secs(30));
        let raw = "kw-0123456789abcdef0123456789abcdef0123456789abcdef";
        let first = keys.digest(raw);
        assert!(!first.kept);
        assert_eq!(&*first.hash, keyway_crypto::hash_api_key(raw));
        keys.remember_digest(&first);
        let again = keys.digest(raw);
        assert!(again.kept);
        assert_eq!(again.hash, first.hash);
        // A key one character away is hashed, not mistaken for the kept one.
        let near = "kw-0123456789abcdef0123456789abcdef0123456789abcdeF";
        let other = keys.digest(near);
        assert!(!other.kept);
        assert_eq!(&*other.hash, keyway_crypto::hash_api_key(near));
    }

    /// A store on a fresh SQLite file, with one workspace.
    async fn store_with_workspace() -> (Store, keyway_store::Workspace, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let root = keyway_crypto::MasterKey::generate();
        let store = Store::connect(&Store::sqlite_url(dir.path()), Arc::new(keyway_crypto::Keyring::new(root))).await.unwrap();
        let ws = store.create_workspace("herd", "herd").await.unwrap();
        (store, ws, dir)
    }

    /// 64 requests with the same key when its entry has expired (or was never loaded): one
    /// query, not 64. Each request of a herd used to ask the store itself, which opened every
    /// connection of the pool (a thread and a page cache each) and queued them all behind
    /// SQLite's one writer lock every 30 s under load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_herd_of_lookups_of_an_expired_key_makes_one_query() {
        let (store, ws, _dir) = store_with_workspace().await;
        let (rec, _raw) = store.create_key(&ws.id, "k", keyway_store::KeyKind::Inference, false, &Default::default()).await.unwrap();
        let keys = Arc::new(KeyCache::new(Duration::from_millis(200)));
        let herd = || {
            let lookups: Vec<_> = (0..64)
                .map(|_| {
                    let (keys, store, hash) = (keys.clone(), store.clone(), rec.hash.clone());
                    tokio::spawn(async move { keys.get(&store, &hash).await.unwrap().map(|r| r.id.clone()) })
                })
                .collect();
            futures::future::join_all(lookups)
        };
        // Past three quarters of the TTL (150 ms) the entry is refreshed ahead by one lookup;
        // past the TTL it is loaded again by one.
        for (round, then_wait) in [("never loaded", 160), ("due for refresh", 250), ("expired", 0)] {
            let before = store.query_count();
            for found in herd().await {
                assert_eq!(found.unwrap().as_deref(), Some(rec.id.as_str()), "{round}");
            }
            assert_eq!(store.query_count() - before, 1, "{round}: one query for the herd");
            assert!(keys.loading.lock().unwrap().is_empty(), "{round}: no load lock left behind");
            tokio::time::sleep(Duration::from_millis(then_wait)).await;
        }
        // A fresh entry asks nothing.
        let before = store.query_count();
        herd().await;
        assert_eq!(store.query_count(), before);
    }

    /// A workspace's credentials: one load for a herd, refreshed ahead of their expiry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_workspace_s_credentials_are_loaded_once_for_a_herd_and_refreshed_ahead() {
        let (store, ws, _dir) = store_with_workspace().await;
        let creds = Arc::new(CredentialCache::new(Duration::from_millis(200)));
        for (round, then_wait) in [("never loaded", 160), ("due for refresh", 250), ("expired", 0)] {
            let before = store.query_count();
            let lookups: Vec<_> = (0..64)
                .map(|_| {
                    let (creds, store, ws) = (creds.clone(), store.clone(), ws.id.clone());
                    tokio::spawn(async move { creds.get(&store, &ws).await.unwrap().entries.len() })
                })
                .collect();
            for n in futures::future::join_all(lookups).await {
                assert_eq!(n.unwrap(), 0, "{round}");
            }
            assert_eq!(store.query_count() - before, 1, "{round}: one load for the herd");
            tokio::time::sleep(Duration::from_millis(then_wait)).await;
        }
    }

    /// A lookup whose request goes away while it waits for another's load leaves no lock behind.
    #[tokio::test]
    async fn a_lookup_dropped_while_waiting_leaves_no_load_lock() {
        let keys = KeyCache::new(Duration::from_secs(30));
        let first = keys.loading("h");
        let held = first.lock.try_lock().unwrap();
        let waiter = async {
            let load = keys.loading("h");
            let _g = load.lock.lock().await;
        };
        // Polled once (it waits on the held lock), then dropped.
        assert!(futures::FutureExt::now_or_never(waiter).is_none());
        drop(held);
        drop(first);
        assert!(keys.loading.lock().unwrap().is_empty());
    }

    #[test]
    fn fingerprints_are_keyed_per_process_and_the_memo_is_bounded() {
        let (a, b) = (KeyCache::new(Duration::from_secs(30)), KeyCache::new(Duration::from_secs(30)));
        let raw = "kw-fingerprint-test-key";
        assert_ne!(a.digests.fingerprint(raw), b.digests.fingerprint(raw), "the fingerprint's keys are drawn at random");
        for i in 0..=MAX_DIGESTS {
            let d = a.digest(&format!("kw-{i}"));
            a.remember_digest(&d);
        }
        assert!(read(&a.digests.map).len() <= MAX_DIGESTS);
    }
}
