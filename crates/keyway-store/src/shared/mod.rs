//! Counters that several gateway nodes share, in Redis: GCRA rates, concurrency slots, credit
//! balances and capped sums (budgets). One request's checks are one Lua script, so one round
//! trip admits it or refuses it atomically on every node's behalf; what it took is given back or
//! corrected later by a second script that nothing waits for.
//!
//! **Failure.** Redis being down must never stall requests: while it is unreachable every call
//! answers [`SharedError::Unavailable`] at once (no connection attempt on the request path) and a
//! background task probes it and resumes by itself. Callers fall back to their per-node counters.
//!
//! **Slots** are members of a sorted set scored by a lease deadline, renewed by the node that
//! holds them; a node that dies stops renewing, and its slots expire after one lease.
//!
//! **Shares.** Where a limit is large next to one request (a rate, a slot count, a budget or a
//! balance at least [`SHARE_PARTS`] x what a request takes, times four), the admission that
//! goes to Redis also takes a share of it (a 64th, at most 256 slots) for this node, and the next
//! requests are admitted from that share in memory, with no round trip, while it lasts; charges
//! and corrections then settle against the share too. A share this node has not drawn on for
//! [`SHARE_IDLE`] is handed back. Nothing is ever admitted beyond what Redis granted, so limits
//! hold exactly across nodes; the price is that a share held by one node is not available to
//! another until it is used or handed back (at most a 64th of a limit per node). Small limits
//! (the ones where that would show) get no shares and are decided in Redis request by request.

mod pubsub;

pub use pubsub::{Message, Subscription};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("invalid redis_url: {0}")]
    Url(String),
    /// Redis is not reachable right now (a probe runs in the background).
    #[error("Redis is unreachable")]
    Unavailable,
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A share is this part of a limit (see the module's doc).
pub const SHARE_PARTS: i64 = 64;
/// At most this many slots in one share.
const SHARE_SLOTS: i64 = 256;
/// A share not drawn on for this long is handed back.
pub const SHARE_IDLE: Duration = Duration::from_secs(1);

/// A part of a shared counter this node took in advance; `left` is what it has not used (below
/// zero when charges came out larger than what was reserved: paid back when it is handed back).
#[derive(Debug)]
struct Share {
    kind: ShareKind,
    left: i64,
    last_used: std::time::Instant,
}

#[derive(Debug, Clone)]
enum ShareKind {
    /// GCRA cells; `interval_us` per cell.
    Rate { interval_us: i64 },
    /// Slots: per grant, members `member:1..=size` in the shared set; `left` is how many of
    /// them all are free here. (Admissions racing at the start can each be granted a set.)
    Slots { groups: Vec<(String, i64)> },
    /// Money taken from a balance.
    Balance,
    /// Headroom taken under a cap.
    Capped,
}

/// How much of `check`'s limit a share would be, when the limit is large enough for one.
fn share_size(c: &Check) -> i64 {
    let (limit, want) = match c {
        Check::Rate { per_minute, cells, .. } => (i64::try_from(*per_minute).unwrap_or(i64::MAX), i64::try_from(*cells).unwrap_or(i64::MAX)),
        Check::Slot { max, .. } => (i64::try_from(*max).unwrap_or(i64::MAX), 1),
        Check::Balance { want, seed, .. } => (*seed, *want),
        Check::Capped { want, cap, seed, .. } => (cap.saturating_sub(*seed), *want),
    };
    let share = limit / SHARE_PARTS;
    let share = if matches!(c, Check::Slot { .. }) { share.min(SHARE_SLOTS) } else { share };
    if share >= want.max(1).saturating_mul(4) {
        share
    } else {
        0
    }
}

/// What one check takes from a share, when admitted from it.
fn share_want(c: &Check) -> i64 {
    match c {
        Check::Rate { cells, .. } => i64::try_from(*cells).unwrap_or(i64::MAX),
        Check::Slot { .. } => 1,
        Check::Balance { want, .. } | Check::Capped { want, .. } => *want,
    }
}

/// Counters remembered as used by this node's admissions; past it the memory starts over.
const KNOWN_COUNTERS: usize = 100_000;

/// How long an operation may take before Redis counts as down.
const TIMEOUT: Duration = Duration::from_millis(300);
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// One thing a request must pass. Keys are relative: [`Shared`] prefixes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// GCRA: `per_minute` cells a minute, all of them at once at most; takes `cells`.
    Rate { key: String, per_minute: u64, cells: u64, tokens: bool },
    /// At most `max` at once; the slot is held until the [`Hold`] drops.
    Slot { key: String, max: u64 },
    /// Takes `want` from a balance that must stay positive; `seed` is the balance to start from
    /// when Redis has none (first use, or after a restart). Given back when the hold drops.
    Balance { key: String, want: i64, seed: i64 },
    /// Adds `want` to a sum that must stay within `cap`; `seed` is the sum so far when absent.
    /// Given back when the hold drops (the real spend is added with [`Shared::add`]).
    Capped { key: String, want: i64, cap: i64, seed: i64, ttl: Duration },
}

impl Check {
    fn key(&self) -> &str {
        match self {
            Check::Rate { key, .. } | Check::Slot { key, .. } | Check::Balance { key, .. } | Check::Capped { key, .. } => key,
        }
    }
}

/// What the shared counters answered.
#[derive(Debug)]
pub enum Verdict {
    /// Every check passed: per check, (what remains, microseconds until it is whole again).
    Admitted(Hold, Vec<(i64, u64)>),
    /// `checks[index]` refused: retry after `wait`; `value` is the counter's value (a balance,
    /// a sum, the slots in use).
    Refused { index: usize, wait: Duration, value: i64 },
}

struct Inner {
    client: redis::Client,
    conn: RwLock<Option<ConnectionManager>>,
    prefix: String,
    /// This node, in slot members: `node:request`.
    node: String,
    lease: Duration,
    up: AtomicBool,
    failures: AtomicU64,
    /// Admissions that went to Redis (the others came from shares).
    round_trips: AtomicU64,
    next_id: AtomicU64,
    /// Slots this node holds, by member: renewed until released.
    held: Mutex<HashMap<String, Vec<String>>>,
    /// Shares this node took, by the counter's key (relative).
    shares: Mutex<HashMap<String, Share>>,
    /// Counters this node's admissions have taken from in Redis: charges to any other counter
    /// (a workspace without a budget, say) would be a round trip that changes nothing.
    known: Mutex<std::collections::HashSet<String>>,
    /// Counters an admission in flight is asking Redis for a share of.
    asking: Mutex<std::collections::HashSet<String>>,
    admit: Script,
    apply: Script,
}

/// A handle on the shared counters; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("prefix", &self.inner.prefix).field("up", &self.is_up()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Parses `url`, makes one connection attempt (at most ~0.6 s: a node that can reach Redis
    /// shares counters from its first request) and starts the background task that reconnects,
    /// probes and renews slots. A node starts while Redis is down and joins it when it is back.
    pub async fn start(url: &str, prefix: &str, lease: Duration) -> Result<Self, SharedError> {
        let client = redis::Client::open(url).map_err(|e| SharedError::Url(e.to_string()))?;
        let inner = Arc::new(Inner {
            client,
            conn: RwLock::new(None),
            prefix: prefix.trim_end_matches(':').to_owned(),
            node: uuid::Uuid::new_v4().simple().to_string(),
            lease: lease.max(Duration::from_secs(3)),
            up: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            round_trips: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            shares: Mutex::new(HashMap::new()),
            known: Mutex::new(std::collections::HashSet::new()),
            asking: Mutex::new(std::collections::HashSet::new()),
            admit: Script::new(include_str!("admit.lua")),
            apply: Script::new(include_str!("apply.lua")),
        });
        let this = Self { inner };
        probe(&this).await;
        tokio::spawn(maintain(Arc::downgrade(&this.inner)));
        Ok(this)
    }

    /// Whether the last operation (or probe) reached Redis.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Operations that failed because Redis was unreachable or erred.
    pub fn failure_count(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Admissions that went to Redis; the others were made from this node's shares.
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// `prefix:key`: every key and channel this node touches.
    pub fn key(&self, k: &str) -> String {
        format!("{}:{k}", self.inner.prefix)
    }

    fn conn(&self) -> Result<ConnectionManager, SharedError> {
        if !self.is_up() {
            return Err(SharedError::Unavailable);
        }
        self.inner.conn.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(SharedError::Unavailable)
    }

    fn failed(&self, e: &SharedError) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        if self.inner.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "Redis unreachable: shared limits, balances and cooldowns fall back to this node's own until it is back");
        }
    }

    async fn run<T, F>(&self, f: F) -> Result<T, SharedError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let e = SharedError::Redis(e);
                self.failed(&e);
                Err(e)
            }
            Err(_) => {
                let e = SharedError::Unavailable;
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// Runs `checks` as one atomic step: all are taken, or none. From this node's shares when
    /// they cover every check (no round trip); otherwise in Redis, taking shares where a limit
    /// is large enough for them.
    pub async fn admit(&self, checks: Vec<Check>) -> Result<Verdict, SharedError> {
        if let Some(v) = self.admit_from_shares(&checks) {
            return Ok(v.into_verdict(self, checks));
        }
        let mut conn = self.conn()?;
        let member = format!("{}:{}", self.inner.node, self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut inv = self.inner.admit.prepare_invoke();
        inv.arg(&member).arg(u64::try_from(self.inner.lease.as_millis()).unwrap_or(u64::MAX));
        let extras: Vec<i64> = {
            let shares = lock(&self.inner.shares);
            let mut asking = lock(&self.inner.asking);
            checks
                .iter()
                .map(|c| match shares.get(c.key()) {
                    // One set of slots per counter; amounts top up the share they join.
                    Some(sh) if matches!(sh.kind, ShareKind::Slots { .. }) => 0,
                    Some(sh) if sh.left >= share_want(c) => 0,
                    // Another admission is asking for this share right now (a burst at start).
                    _ if asking.contains(c.key()) => 0,
                    _ => {
                        let n = share_size(c);
                        if n > 0 {
                            asking.insert(c.key().to_owned());
                        }
                        n
                    }
                })
                .collect()
        };
        // However this admission ends, the shares it asked for are no longer being asked for.
        let _asked = Asked { shared: self, keys: checks.iter().zip(&extras).filter(|(_, e)| **e > 0).map(|(c, _)| c.key().to_owned()).collect() };
        for (c, extra) in checks.iter().zip(&extras) {
            inv.key(self.key(c.key()));
            match c {
                Check::Rate { per_minute, cells, .. } => {
                    inv.arg("r").arg(rate_interval(*per_minute)).arg((*per_minute).max(1)).arg(*cells).arg(0);
                }
                Check::Slot { max, .. } => {
                    inv.arg("s").arg(*max).arg(0).arg(0).arg(0);
                }
                Check::Balance { want, seed, .. } => {
                    inv.arg("b").arg(*want).arg(*seed).arg(0).arg(0);
                }
                Check::Capped { want, cap, seed, ttl, .. } => {
                    inv.arg("c").arg(*want).arg(*cap).arg(*seed).arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
                }
            }
            inv.arg(*extra);
        }
        self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
        {
            let mut known = lock(&self.inner.known);
            if known.len() > KNOWN_COUNTERS {
                known.clear();
            }
            for c in &checks {
                if !known.contains(c.key()) {
                    known.insert(c.key().to_owned());
                }
            }
        }
        let reply: Vec<i64> = self.run(inv.invoke_async(&mut conn)).await?;
        match reply.first() {
            Some(0) => {
                let triples: Vec<&[i64]> = reply[1..].chunks(3).collect();
                let states = triples.iter().map(|c| (c.first().copied().unwrap_or(0), c.get(1).map_or(0, |r| u64::try_from(*r).unwrap_or(0)))).collect();
                let granted: Vec<i64> = (0..checks.len()).map(|i| triples.get(i).and_then(|c| c.get(2)).copied().unwrap_or(0)).collect();
                let from_share = self.keep_shares(&checks, &granted, &member);
                let slots: Vec<String> =
                    checks.iter().zip(&from_share).filter(|(c, shared)| matches!(c, Check::Slot { .. }) && !**shared).map(|(c, _)| self.key(c.key())).collect();
                if !slots.is_empty() {
                    lock(&self.inner.held).insert(member.clone(), slots);
                }
                Ok(Verdict::Admitted(Hold { shared: Arc::downgrade(&self.inner), member, checks, settled_tokens: None, from_share }, states))
            }
            Some(1) => {
                let index = reply.get(1).map_or(0, |i| usize::try_from(*i).unwrap_or(1).saturating_sub(1));
                let wait = Duration::from_micros(reply.get(2).map_or(0, |w| u64::try_from(*w).unwrap_or(0)));
                Ok(Verdict::Refused { index, wait, value: reply.get(3).copied().unwrap_or(0) })
            }
            _ => Err(SharedError::Redis(redis::RedisError::from((redis::ErrorKind::Parse, "unexpected admission reply")))),
        }
    }

    /// Admits `checks` from this node's shares when every one of them covers its check, taking
    /// what each check wants; otherwise takes nothing.
    fn admit_from_shares(&self, checks: &[Check]) -> Option<FromShares> {
        let mut shares = lock(&self.inner.shares);
        if shares.is_empty() {
            return None;
        }
        for c in checks {
            let Some(sh) = shares.get(c.key()) else {
                tracing::debug!(counter = c.key(), "no share of this counter");
                return None;
            };
            let fits = match (&sh.kind, c) {
                (ShareKind::Rate { interval_us }, Check::Rate { per_minute, cells, .. }) => {
                    *interval_us == rate_interval(*per_minute) && sh.left >= i64::try_from(*cells).unwrap_or(i64::MAX)
                }
                (ShareKind::Slots { .. }, Check::Slot { .. }) => sh.left >= 1,
                (ShareKind::Balance, Check::Balance { want, .. }) | (ShareKind::Capped, Check::Capped { want, .. }) => sh.left > 0 && sh.left >= *want,
                _ => false,
            };
            if !fits {
                tracing::debug!(counter = c.key(), left = sh.left, "share too small");
                return None;
            }
        }
        let now = std::time::Instant::now();
        let mut states = Vec::with_capacity(checks.len());
        for c in checks {
            if let Some(sh) = shares.get_mut(c.key()) {
                sh.left -= share_want(c);
                sh.last_used = now;
                states.push((sh.left, 0));
            }
        }
        Some(FromShares(states))
    }

    /// Keeps what Redis granted on top of each check as this node's share of it; returns, per
    /// check, whether the request itself came out of a share (a granted slot share includes
    /// the request's own slot).
    fn keep_shares(&self, checks: &[Check], granted: &[i64], member: &str) -> Vec<bool> {
        let mut from_share = vec![false; checks.len()];
        if granted.iter().all(|g| *g <= 0) {
            return from_share;
        }
        let now = std::time::Instant::now();
        let mut shares = lock(&self.inner.shares);
        for (i, (c, g)) in checks.iter().zip(granted).enumerate() {
            if *g <= 0 {
                continue;
            }
            let kind = match c {
                Check::Rate { per_minute, .. } => ShareKind::Rate { interval_us: rate_interval(*per_minute) },
                Check::Slot { .. } => {
                    let size = g + 1;
                    let key = self.key(c.key());
                    let mut held = lock(&self.inner.held);
                    for j in 1..=size {
                        held.insert(format!("{member}:{j}"), vec![key.clone()]);
                    }
                    from_share[i] = true;
                    ShareKind::Slots { groups: vec![(member.to_owned(), size)] }
                }
                Check::Balance { .. } => ShareKind::Balance,
                Check::Capped { .. } => ShareKind::Capped,
            };
            // A slot share of g + 1 with the request's own slot in use leaves g; amounts leave
            // g, the request's own part having been taken on its own.
            let left = *g;
            match shares.get_mut(c.key()) {
                Some(sh) => {
                    sh.left += left;
                    sh.last_used = now;
                    // Another admission's slots joined this one's: one share, every member kept.
                    if let (ShareKind::Slots { groups }, ShareKind::Slots { groups: more }) = (&mut sh.kind, kind) {
                        groups.extend(more);
                    }
                }
                _ => {
                    shares.insert(c.key().to_owned(), Share { kind, left, last_used: now });
                }
            }
        }
        from_share
    }

    /// Hands back every share not drawn on for [`SHARE_IDLE`] (slots only once none is in use),
    /// in the background; `all` hands back every share that can go (shutdown, tests).
    pub fn hand_back_shares(&self, all: bool) {
        for (member, ops) in self.take_shares(all) {
            self.apply_later(member, ops);
        }
    }

    /// Hands back every share that can go and waits until Redis has taken them: a node that
    /// stops (SIGTERM) leaves no part of a balance or budget behind.
    pub async fn hand_back_all(&self) {
        for (member, ops) in self.take_shares(true) {
            self.apply(member, ops).await;
        }
    }

    /// Removes the shares to hand back; per call of the apply script: the slot member and its ops.
    fn take_shares(&self, all: bool) -> Vec<(String, Vec<Op>)> {
        let mut calls = Vec::new();
        let idle: Vec<(String, Share)> = lock(&self.inner.shares)
            .extract_if(|_, sh| {
                let unused = match &sh.kind {
                    ShareKind::Slots { groups } => sh.left == groups.iter().map(|(_, n)| n).sum::<i64>(),
                    _ => true,
                };
                unused && (all || sh.last_used.elapsed() >= SHARE_IDLE)
            })
            .collect();
        let mut ops = Vec::new();
        for (k, sh) in idle {
            let key = self.key(&k);
            match sh.kind {
                ShareKind::Rate { interval_us } if sh.left != 0 => ops.push(Op { key, kind: "r", value: (-sh.left).saturating_mul(interval_us) }),
                ShareKind::Rate { .. } => {}
                ShareKind::Balance if sh.left != 0 => ops.push(Op { key, kind: "n", value: sh.left }),
                ShareKind::Capped if sh.left != 0 => ops.push(Op { key, kind: "n", value: -sh.left }),
                ShareKind::Balance | ShareKind::Capped => {}
                ShareKind::Slots { groups } => {
                    for (member, size) in groups {
                        {
                            let mut held = lock(&self.inner.held);
                            for j in 1..=size {
                                held.remove(&format!("{member}:{j}"));
                            }
                        }
                        calls.push((member, vec![Op { key: key.clone(), kind: "m", value: size }]));
                    }
                }
            }
        }
        calls.push((String::new(), ops));
        calls
    }

    /// What this node holds in shares: (counter key, left), for diagnosis and tests.
    pub fn shares(&self) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = lock(&self.inner.shares).iter().map(|(k, sh)| (k.clone(), sh.left)).collect();
        v.sort();
        v
    }

    /// Adds `delta` to balances or capped sums that exist (a charge: negative on a balance,
    /// positive on a spend). A charge on a counter this node holds a share of comes out of the
    /// share; the rest runs in the background, and nothing waits.
    pub fn add(&self, deltas: Vec<(String, i64)>) {
        let mut ops = Vec::with_capacity(deltas.len());
        {
            let mut shares = lock(&self.inner.shares);
            let known = lock(&self.inner.known);
            for (k, d) in deltas {
                match shares.get_mut(k.as_str()) {
                    // Only charges: a top-up belongs to every node, so it goes to Redis.
                    Some(sh) if matches!(sh.kind, ShareKind::Balance) && d < 0 => sh.left += d,
                    Some(sh) if matches!(sh.kind, ShareKind::Capped) && d > 0 => sh.left -= d,
                    // A charge (not a top-up) to a counter no admission here has used: a
                    // workspace with no budget, credits off. Nobody made it; nothing to add to.
                    _ if is_charge(&k, d) && !known.contains(k.as_str()) => {}
                    _ => ops.push(Op { key: self.key(&k), kind: "n", value: d }),
                }
            }
        }
        self.apply_later(String::new(), ops);
    }

    fn apply_later(&self, member: String, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let this = self.clone();
        rt.spawn(async move { this.apply(member, ops).await });
    }

    async fn apply(&self, member: String, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let Ok(mut conn) = self.conn() else { return };
        let mut inv = self.inner.apply.prepare_invoke();
        inv.arg(&member);
        for op in &ops {
            inv.key(&op.key).arg(op.kind).arg(op.value);
        }
        let _: Result<i64, _> = self.run(inv.invoke_async(&mut conn)).await;
    }

    /// Publishes `payload` on `prefix:channel` (in the background).
    pub fn publish(&self, channel: &str, payload: String) {
        let Ok(mut conn) = self.conn() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let (this, channel) = (self.clone(), self.key(channel));
        rt.spawn(async move {
            let _: Result<i64, _> = this.run(redis::cmd("PUBLISH").arg(&channel).arg(&payload).query_async(&mut conn)).await;
        });
    }

    /// Messages on `prefix:channel`, resubscribing after Redis comes back (see [`Subscription`]).
    pub fn subscribe(&self, channel: &str) -> Subscription {
        pubsub::subscribe(self.inner.client.clone(), self.key(channel))
    }
}

/// Clears an admission's "asking for a share" marks when it ends, however it ends.
struct Asked<'a> {
    shared: &'a Shared,
    keys: Vec<String>,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut asking = lock(&self.shared.inner.asking);
        for k in &self.keys {
            asking.remove(k);
        }
    }
}

/// A charge: taken from a balance, or added to a spend (a top-up adds to a balance).
fn is_charge(key: &str, delta: i64) -> bool {
    (key.starts_with("cr:") && delta < 0) || (key.starts_with("sp:") && delta > 0)
}

fn rate_interval(per_minute: u64) -> i64 {
    i64::try_from((60_000_000 / per_minute.max(1)).max(1)).unwrap_or(i64::MAX)
}

/// An admission made from shares: per check, what its share has left.
struct FromShares(Vec<(i64, u64)>);

impl FromShares {
    fn into_verdict(self, shared: &Shared, checks: Vec<Check>) -> Verdict {
        let from_share = vec![true; checks.len()];
        Verdict::Admitted(Hold { shared: Arc::downgrade(&shared.inner), member: String::new(), checks, settled_tokens: None, from_share }, self.0)
    }
}

struct Op {
    key: String,
    kind: &'static str,
    value: i64,
}

/// What one admitted request took from the shared counters. Dropping it frees its slots and
/// gives back its balance and budget reservations (the real charge is added on its own).
pub struct Hold {
    /// Weak: a node that is gone frees nothing (its slots expire with their lease).
    shared: std::sync::Weak<Inner>,
    member: String,
    checks: Vec<Check>,
    settled_tokens: Option<u64>,
    /// Per check: taken from this node's share (given back to it), or from Redis.
    from_share: Vec<bool>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("member", &self.member).field("checks", &self.checks).finish_non_exhaustive()
    }
}

impl Hold {
    /// Corrects token reservations to what the upstream reported.
    pub fn settle_tokens(&mut self, actual: u64) {
        self.settled_tokens = Some(actual);
    }

    /// What each check gives back or corrects once the request is done: into its share, when
    /// it came from one that is still held; in Redis otherwise.
    fn ops(&self, shared: &Shared) -> Vec<Op> {
        let mut ops = Vec::with_capacity(self.checks.len());
        let mut shares = if self.from_share.iter().any(|s| *s) { Some(lock(&shared.inner.shares)) } else { None };
        for (i, c) in self.checks.iter().enumerate() {
            if let (true, Some(shares)) = (self.from_share.get(i).copied().unwrap_or(false), shares.as_mut()) {
                if let Some(sh) = shares.get_mut(c.key()) {
                    sh.left += match c {
                        Check::Rate { per_minute, cells, tokens: true, .. } => match self.settled_tokens {
                            Some(actual) => i64::try_from(*cells).unwrap_or(i64::MAX) - i64::try_from(actual.min(*per_minute)).unwrap_or(i64::MAX),
                            None => 0,
                        },
                        Check::Rate { .. } => 0,
                        Check::Slot { .. } => 1,
                        Check::Balance { want, .. } | Check::Capped { want, .. } => *want,
                    };
                    continue;
                }
                // The share was handed back meanwhile: Redis takes the correction.
            }
            let key = shared.key(c.key());
            match c {
                Check::Rate { per_minute, cells, tokens: true, .. } => {
                    let Some(actual) = self.settled_tokens else { continue };
                    let interval = rate_interval(*per_minute);
                    let delta = i64::try_from(actual.min(*per_minute)).unwrap_or(i64::MAX) - i64::try_from(*cells).unwrap_or(i64::MAX);
                    if delta != 0 {
                        ops.push(Op { key, kind: "r", value: delta.saturating_mul(interval) });
                    }
                }
                Check::Rate { .. } => {}
                Check::Slot { .. } => ops.push(Op { key, kind: "s", value: 0 }),
                Check::Balance { want, .. } => ops.push(Op { key, kind: "n", value: *want }),
                Check::Capped { want, .. } => ops.push(Op { key, kind: "n", value: -*want }),
            }
        }
        ops
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(inner) = self.shared.upgrade() else { return };
        let shared = Shared { inner };
        lock(&shared.inner.held).remove(&self.member);
        let ops = self.ops(&shared);
        shared.apply_later(std::mem::take(&mut self.member), ops);
    }
}

/// Connects, probes while down, renews this node's slots while up. Ends with the last handle.
async fn maintain(weak: std::sync::Weak<Inner>) {
    let mut renew_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(inner) = weak.upgrade() else { return };
        let shared = Shared { inner };
        if !shared.is_up() {
            probe(&shared).await;
            continue;
        }
        shared.hand_back_shares(false);
        if tokio::time::Instant::now() >= renew_at {
            renew_at = tokio::time::Instant::now() + shared.inner.lease / 3;
            renew(&shared).await;
        }
    }
}

async fn probe(shared: &Shared) {
    let existing = shared.inner.conn.read().unwrap_or_else(|p| p.into_inner()).clone();
    let conn = match existing {
        Some(c) => c,
        None => {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            match tokio::time::timeout(TIMEOUT * 2, ConnectionManager::new_with_config(shared.inner.client.clone(), config)).await {
                Ok(Ok(c)) => {
                    *shared.inner.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                    c
                }
                _ => return,
            }
        }
    };
    let mut c = conn;
    if let Ok(Ok(())) = tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<()>(&mut c)).await {
        if !shared.inner.up.swap(true, Ordering::Relaxed) {
            tracing::info!("Redis reachable: limits, balances and cooldowns are shared across nodes");
        }
        // Slots held through the outage were kept alive by nobody: take them again.
        renew(shared).await;
    }
}

async fn renew(shared: &Shared) {
    let held: Vec<(String, Vec<String>)> = lock(&shared.inner.held).iter().map(|(m, k)| (m.clone(), k.clone())).collect();
    if held.is_empty() {
        return;
    }
    let Ok(mut conn) = shared.conn() else { return };
    let deadline = chrono::Utc::now().timestamp_millis().saturating_add(i64::try_from(shared.inner.lease.as_millis()).unwrap_or(i64::MAX));
    let mut pipe = redis::pipe();
    for (member, keys) in &held {
        for k in keys {
            // GT: never shorten a lease another renewal set; the set itself lives a lease too.
            pipe.cmd("ZADD").arg(k).arg("GT").arg(deadline).arg(member).ignore();
            pipe.cmd("PEXPIRE").arg(k).arg(u64::try_from(shared.inner.lease.as_millis()).unwrap_or(u64::MAX)).ignore();
        }
    }
    let _: Result<(), _> = shared.run(pipe.query_async(&mut conn)).await;
}

/// The names of the shared counters, in one place: the admission that takes from them and the
/// ledger that charges them must agree.
pub mod keys {
    /// `k` (an API key, by hash) or `w` (a workspace).
    pub fn rate(scope: char, id: &str, what: &str) -> String {
        format!("rl:{scope}:{id}:{what}")
    }

    pub fn slots(scope: char, id: &str) -> String {
        format!("sl:{scope}:{id}")
    }

    /// A workspace's credit balance.
    pub fn balance(workspace_id: &str) -> String {
        format!("cr:{workspace_id}")
    }

    /// Spend in one period: `d` and the day number, or `m` and the month's first millisecond.
    pub fn spend(scope: char, id: &str, period: char, n: i64) -> String {
        format!("sp:{scope}:{id}:{period}{n}")
    }
}
