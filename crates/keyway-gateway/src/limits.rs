//! Limits per Keyway key and per workspace, checked in memory before a request goes upstream:
//! requests per minute and tokens per minute (GCRA), concurrent requests, and daily/monthly spend
//! budgets. A request must pass its key's limits and its workspace's (`[limits]` in the config).
//! Money (credits, budgets) is checked before these, by [`crate::admission`], from [`crate::billing`].
//!
//! **GCRA.** Each rate is a "theoretical arrival time" (TAT) advanced by `n × T` per admitted
//! cell, `T = 60 s / per_minute`; a request is refused when the new TAT would lie more than
//! `burst × T` ahead of now. The burst is the per-minute figure itself: a fresh key may spend its
//! whole minute at once, then refills evenly. The TAT is one atomic updated by compare-and-swap,
//! so concurrent requests can't over-admit. (We keep our own small GCRA rather than `governor`
//! because token cells are corrected after the answer, when the real token count is known.)
//!
//! Tokens: a request reserves its estimate (prompt characters / 4 plus `max_tokens`); when it
//! ends, the difference to the upstream's reported usage is added or given back.
//!
//! Everything here is per node; with `redis_url`, `cluster.rs` checks the same limits on counters
//! every node shares, after these pass (and these alone hold while Redis is unreachable).

use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use keyway_store::{ApiKeyRecord, Limits, Store};
use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const MINUTE_NS: u64 = 60_000_000_000;

/// A generic cell-rate limiter: `per_minute` cells per minute, at most `per_minute` at once.
#[derive(Debug)]
pub struct Gcra {
    /// Nanoseconds per cell.
    interval: u64,
    burst: u64,
    limit: u64,
    tat: AtomicU64,
}

/// A successful check: what remains, and when the bucket is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

impl Gcra {
    pub fn per_minute(n: u64) -> Self {
        let n = n.max(1);
        Self { interval: (MINUTE_NS / n).max(1), burst: n, limit: n, tat: AtomicU64::new(0) }
    }

    /// Takes `n` cells at `now` (ns on the limiter's clock), or says how long until they fit.
    /// More cells than the burst are clamped to the burst: such a request runs when the bucket is full.
    pub fn check_n(&self, n: u64, now: u64) -> Result<RateState, (RateState, Duration)> {
        let n = n.min(self.burst);
        let window = self.burst.saturating_mul(self.interval);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            let new = base.saturating_add(n.saturating_mul(self.interval));
            let horizon = now.saturating_add(window);
            if new > horizon {
                let state = RateState { limit: self.limit, remaining: 0, reset: Duration::from_nanos(base - now) };
                return Err((state, Duration::from_nanos(new - horizon)));
            }
            match self.tat.compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let remaining = (horizon - new) / self.interval;
                    return Ok(RateState { limit: self.limit, remaining, reset: Duration::from_nanos(new - now) });
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Adds (`delta > 0`) or gives back (`delta < 0`) cells after the fact.
    pub fn adjust(&self, delta: i64) {
        let ns = delta.unsigned_abs().saturating_mul(self.interval);
        if delta >= 0 {
            self.tat.fetch_add(ns, Ordering::AcqRel);
        } else {
            // Never below zero: a give-back can't create credit beyond a full bucket anyway.
            let _ = self.tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(t.saturating_sub(ns)));
        }
    }
}

/// One key's or one workspace's live limiter state, rebuilt when its limits change.
#[derive(Debug)]
pub struct Bucket {
    limits: Limits,
    requests: Option<Gcra>,
    tokens: Option<Gcra>,
    in_flight: AtomicU64,
}

impl Bucket {
    fn new(limits: &Limits) -> Self {
        Self {
            limits: limits.clone(),
            requests: limits.requests_per_minute.map(Gcra::per_minute),
            tokens: limits.tokens_per_minute.map(Gcra::per_minute),
            in_flight: AtomicU64::new(0),
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }
}

fn has_rates(l: &Limits) -> bool {
    l.requests_per_minute.is_some() || l.tokens_per_minute.is_some() || l.max_concurrent.is_some()
}

/// Whose limit a check enforces, for messages.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Key,
    Workspace,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Workspace => "workspace",
        }
    }
}

/// All keys' and workspaces' limiters; a key or workspace with no limits never gets one.
pub struct Limiter {
    epoch: Instant,
    keys: RwLock<HashMap<String, Arc<Bucket>>>,
    workspaces: RwLock<HashMap<String, Arc<Bucket>>>,
    /// `[limits.workspaces]`, by workspace id.
    workspace_limits: HashMap<String, Limits>,
    /// `[limits.workspace_default]`: every workspace not in `workspace_limits`.
    workspace_default: Option<Limits>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self { epoch: Instant::now(), keys: RwLock::default(), workspaces: RwLock::default(), workspace_limits: HashMap::new(), workspace_default: None }
    }
}

fn bucket(map: &RwLock<HashMap<String, Arc<Bucket>>>, id: &str, l: &Limits) -> Arc<Bucket> {
    if let Some(k) = map.read().unwrap_or_else(|p| p.into_inner()).get(id) {
        if k.limits == *l {
            return k.clone();
        }
    }
    let mut map = map.write().unwrap_or_else(|p| p.into_inner());
    let entry = map.entry(id.to_owned()).or_insert_with(|| Arc::new(Bucket::new(l)));
    if entry.limits != *l {
        // New limits start a fresh window; requests in flight keep their own counter handle.
        *entry = Arc::new(Bucket::new(l));
    }
    entry.clone()
}

impl Limiter {
    /// `[limits]` of the config. Workspaces may be named by id or slug; slugs are resolved here,
    /// once, so a name that matches no workspace yet is kept as an id (and warned about).
    pub async fn from_config(cfg: &crate::config::LimitsConfig, store: &Store) -> Result<Self, keyway_store::StoreError> {
        let mut workspace_limits = HashMap::new();
        if !cfg.workspaces.is_empty() {
            let all = store.list_workspaces().await?;
            for (name, l) in &cfg.workspaces {
                let id = match all.iter().find(|w| w.id == *name || w.slug == *name) {
                    Some(w) => w.id.clone(),
                    None => {
                        tracing::warn!(workspace = %name, "[limits.workspaces]: no workspace has this id or slug (yet); it applies to a workspace with this id");
                        name.clone()
                    }
                };
                workspace_limits.insert(id, l.clone());
            }
        }
        Ok(Self { workspace_limits, workspace_default: cfg.workspace_default.clone(), ..Self::default() })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The limits configured for a workspace (its own entry, else the default), if any.
    pub fn workspace_limits(&self, workspace_id: &str) -> Option<&Limits> {
        self.workspace_limits.get(workspace_id).or(self.workspace_default.as_ref())
    }

    /// The limiter for this key, (re)built when its limits differ from the cached record's.
    pub fn for_key(&self, key: &ApiKeyRecord) -> Option<Arc<Bucket>> {
        has_rates(&key.limits).then(|| bucket(&self.keys, &key.hash, &key.limits))
    }

    /// The limiter shared by every key of a workspace.
    pub fn for_workspace(&self, workspace_id: &str) -> Option<Arc<Bucket>> {
        let l = self.workspace_limits(workspace_id).filter(|l| has_rates(l))?;
        Some(bucket(&self.workspaces, workspace_id, l))
    }
}

/// A rate or concurrency limit refused the request: 429 with `Retry-After` and the
/// `x-ratelimit-*` headers. Headers boxed: a refusal is rare, and the `Result` on the admission
/// path stays small.
#[derive(Debug)]
pub struct RateRefusal {
    pub message: String,
    pub retry_after: Duration,
    pub headers: Box<HeaderMap>,
}

impl IntoResponse for RateRefusal {
    fn into_response(self) -> Response {
        let mut resp = ApiError::RateLimited { message: self.message, retry_after: Some(self.retry_after) }.into_response();
        resp.headers_mut().extend(*self.headers);
        resp
    }
}

/// What one request took from one bucket. Dropping it frees the concurrency slot.
#[derive(Debug)]
struct Hold {
    bucket: Arc<Bucket>,
    slot: bool,
    request_cell: bool,
    tokens: u64,
}

impl Hold {
    /// Gives back the rate cells of a request that a later check refused.
    fn give_back(&mut self) {
        if std::mem::take(&mut self.request_cell) {
            if let Some(r) = &self.bucket.requests {
                r.adjust(-1);
            }
        }
        let tokens = std::mem::take(&mut self.tokens);
        if let (Some(t), true) = (&self.bucket.tokens, tokens > 0) {
            t.adjust(-i64::try_from(tokens).unwrap_or(i64::MAX));
        }
    }

    fn settle_tokens(&mut self, actual: u64) {
        if let Some(t) = &self.bucket.tokens {
            let delta = i64::try_from(actual).unwrap_or(i64::MAX).saturating_sub(i64::try_from(self.tokens).unwrap_or(i64::MAX));
            t.adjust(delta);
            self.tokens = actual;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.slot {
            self.bucket.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What a request holds of the rate limits while it runs: its concurrency slots and token
/// reservations (dropping it frees the slots), and the states its headers show.
#[derive(Debug, Default)]
pub struct RateHolds {
    key: Option<Hold>,
    workspace: Option<Hold>,
    /// `x-ratelimit-*` headers for the response.
    pub rates: RateHeaders,
}

impl RateHolds {
    /// Corrects the token reservations with what the upstream reported.
    pub fn settle_tokens(&mut self, actual: u64) {
        for h in [self.key.as_mut(), self.workspace.as_mut()].into_iter().flatten() {
            h.settle_tokens(actual);
        }
    }

    /// Gives back the rate cells taken on this node, for a request refused after all (by the
    /// shared counters): the node's own counters then track what was admitted.
    pub fn give_back(&mut self) {
        for h in [self.key.as_mut(), self.workspace.as_mut()].into_iter().flatten() {
            h.give_back();
        }
    }
}

impl Limiter {
    /// Checks the rate and concurrency limits of `key` and of its workspace and takes the
    /// request's share (`tokens` toward tokens per minute), or refuses, giving back what it took.
    pub fn take(&self, key: &ApiKeyRecord, tokens: u64) -> Result<RateHolds, RateRefusal> {
        let mut holds = RateHolds::default();
        let now = self.now();
        if let Some(b) = self.for_key(key) {
            holds.key = Some(take(b, Scope::Key, tokens, now, &mut holds.rates)?);
        }
        if let Some(b) = self.for_workspace(&key.workspace_id) {
            match take(b, Scope::Workspace, tokens, now, &mut holds.rates) {
                Ok(h) => holds.workspace = Some(h),
                Err(refusal) => {
                    if let Some(h) = holds.key.as_mut() {
                        h.give_back();
                    }
                    return Err(refusal);
                }
            }
        }
        Ok(holds)
    }

    /// Whether a tokens-per-minute limit applies to `key` (so the request's tokens must be estimated).
    pub fn counts_tokens(&self, key: &ApiKeyRecord) -> bool {
        key.limits.tokens_per_minute.is_some() || self.workspace_limits(&key.workspace_id).is_some_and(|l| l.tokens_per_minute.is_some())
    }
}

/// `6m0s`, `1.5s`, `250ms`: OpenAI's `x-ratelimit-reset-*` format. Integers written with itoa:
/// a float's `{:.3}` cost ~3k instructions, `format!` itself ~500, on every answer with limits.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    let mut out = String::with_capacity(16);
    let mut num = itoa::Buffer::new();
    if ms < 1000 {
        out.push_str(num.format(ms));
        out.push_str("ms");
    } else if ms < 60_000 {
        out.push_str(num.format(ms / 1000));
        let frac = ms % 1000;
        if frac != 0 {
            // 1.5s, 1.25s, 1.125s: the fraction's digits without trailing zeros.
            let digits = num.format(frac + 1000);
            out.push('.');
            out.push_str(digits.get(1..).unwrap_or_default().trim_end_matches('0'));
        }
        out.push('s');
    } else {
        let whole = d.as_secs();
        out.push_str(num.format(whole / 60));
        out.push('m');
        out.push_str(num.format(whole % 60));
        out.push('s');
    }
    out
}

pub(crate) fn put(h: &mut HeaderMap, name: HeaderName, v: String) {
    if let Ok(v) = HeaderValue::try_from(v) {
        h.insert(name, v);
    }
}

#[derive(Debug, Clone, Copy)]
enum Rate {
    Requests,
    Tokens,
}

// Built at compile time: `from_static` at run time validates the name byte by byte each call.
const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

fn rate_headers(h: &mut HeaderMap, kind: Rate, s: &RateState) {
    let (limit, remaining, reset) = match kind {
        Rate::Requests => (LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS),
        Rate::Tokens => (LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS),
    };
    h.insert(limit, HeaderValue::from(s.limit));
    h.insert(remaining, HeaderValue::from(s.remaining));
    put(h, reset, format_reset(s.reset));
}

/// The rate states a response's `x-ratelimit-*` headers show. A key and its workspace may both
/// limit the same rate: the tighter one (fewer remaining) is kept, and the headers are written
/// once, when the response is built.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateHeaders {
    requests: Option<RateState>,
    tokens: Option<RateState>,
}

impl RateHeaders {
    fn keep_tighter(&mut self, kind: Rate, s: RateState) {
        let slot = match kind {
            Rate::Requests => &mut self.requests,
            Rate::Tokens => &mut self.tokens,
        };
        if slot.is_none_or(|c| s.remaining < c.remaining) {
            *slot = Some(s);
        }
    }

    pub fn write(&self, h: &mut HeaderMap) {
        if let Some(s) = &self.requests {
            rate_headers(h, Rate::Requests, s);
        }
        if let Some(s) = &self.tokens {
            rate_headers(h, Rate::Tokens, s);
        }
    }

    /// The headers of a refusal by `kind` at `s`: what passed so far, and the refusing state.
    fn refusal(mut self, kind: Rate, s: RateState) -> Box<HeaderMap> {
        match kind {
            Rate::Requests => self.requests = Some(s),
            Rate::Tokens => self.tokens = Some(s),
        }
        let mut h = HeaderMap::new();
        self.write(&mut h);
        Box::new(h)
    }
}

/// Takes one request's share of `bucket`, or refuses (giving back what it took).
fn take(bucket: Arc<Bucket>, scope: Scope, tokens: u64, now: u64, rates: &mut RateHeaders) -> Result<Hold, RateRefusal> {
    let mut hold = Hold { bucket, slot: false, request_cell: false, tokens: 0 };
    let b = hold.bucket.clone();
    if let Some(max) = b.limits.max_concurrent {
        let before = b.in_flight.fetch_add(1, Ordering::AcqRel);
        hold.slot = true; // released by Drop, also on refusal below
        if before >= max {
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static("x-ratelimit-limit-concurrent"), HeaderValue::from(max));
            headers.insert(HeaderName::from_static("x-ratelimit-remaining-concurrent"), HeaderValue::from_static("0"));
            return Err(RateRefusal {
                message: format!("this {} allows {max} concurrent requests; retry when one finishes", scope.name()),
                retry_after: Duration::from_secs(1),
                headers: Box::new(headers),
            });
        }
    }
    if let Some(r) = &b.requests {
        match r.check_n(1, now) {
            Ok(s) => {
                hold.request_cell = true;
                rates.keep_tighter(Rate::Requests, s);
            }
            Err((s, wait)) => {
                let message = format!("rate limit reached: {} requests per minute for this {}", s.limit, scope.name());
                return Err(RateRefusal { message, retry_after: wait, headers: rates.refusal(Rate::Requests, s) });
            }
        }
    }
    if let Some(t) = &b.tokens {
        let want = tokens.max(1);
        match t.check_n(want, now) {
            Ok(s) => {
                hold.tokens = want.min(s.limit);
                rates.keep_tighter(Rate::Tokens, s);
            }
            Err((s, wait)) => {
                hold.give_back(); // this request won't run: its request cell goes back
                let message = format!("rate limit reached: {} tokens per minute for this {}", s.limit, scope.name());
                return Err(RateRefusal { message, retry_after: wait, headers: rates.refusal(Rate::Tokens, s) });
            }
        }
    }
    Ok(hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_steady_refill() {
        let g = Gcra::per_minute(60); // one per second, 60 at once
        let now = 10 * S;
        for i in 0..60 {
            let s = g.check_n(1, now).unwrap();
            assert_eq!(s.remaining, 59 - i);
        }
        let (s, wait) = g.check_n(1, now).unwrap_err();
        assert_eq!(s.remaining, 0);
        assert_eq!(wait, Duration::from_secs(1));
        assert!(g.check_n(1, now + S - 1).is_err());
        assert!(g.check_n(1, now + S).is_ok(), "one cell refills after T");
        assert!(g.check_n(1, now + S).is_err());
    }

    #[test]
    fn token_cells_and_adjustments() {
        let g = Gcra::per_minute(1000);
        assert_eq!(g.check_n(600, 0).unwrap().remaining, 400);
        assert!(g.check_n(500, 0).is_err());
        g.adjust(-200); // the request used 400, not 600
        assert_eq!(g.check_n(500, 0).unwrap().remaining, 100);
        g.adjust(50);
        assert!(g.check_n(60, 0).is_err());
        // More than the burst is clamped: it runs only when the bucket is full.
        let g = Gcra::per_minute(10);
        assert!(g.check_n(1_000, 0).is_ok());
        assert!(g.check_n(1, 0).is_err());
    }

    #[test]
    fn no_over_admission_under_contention() {
        let g = Arc::new(Gcra::per_minute(50));
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (g, a) = (g.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if g.check_n(1, 5 * S).is_ok() {
                            a.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn reset_format() {
        assert_eq!(format_reset(Duration::from_millis(250)), "250ms");
        assert_eq!(format_reset(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_reset(Duration::from_secs(1)), "1s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_reset(Duration::from_millis(1250)), "1.25s");
        assert_eq!(format_reset(Duration::from_millis(1005)), "1.005s");
        assert_eq!(format_reset(Duration::from_millis(59_999)), "59.999s");
        assert_eq!(format_reset(Duration::from_millis(999)), "999ms");
        assert_eq!(format_reset(Duration::ZERO), "0ms");
        assert_eq!(format_reset(Duration::from_millis(61_500)), "1m1s");
        assert_eq!(format_reset(Duration::from_millis(1050)), "1.05s");
        assert_eq!(format_reset(Duration::from_millis(1007)), "1.007s");
        assert_eq!(format_reset(Duration::from_micros(59_999_900)), "59.999s");
        assert_eq!(format_reset(Duration::from_millis(61_500)), "1m1s");
    }
}
