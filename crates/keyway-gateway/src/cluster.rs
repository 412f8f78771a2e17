//! Several nodes acting as one gateway (docs/deploy.md).
//!
//! - **Shared counters** (`redis_url`): after this node's own limits pass ([`crate::limits`]),
//!   the same limits, the credit balance and the budgets are taken from counters in Redis that
//!   every node shares, in one round trip ([`keyway_store::shared`]). While Redis is unreachable
//!   the node's own counters alone decide (fail open: `keyway_shared_unavailable_total` and a
//!   log line), or the request is refused with 503 when `[cluster] fail_closed` is set.
//! - **Cooldowns**: a credential cooling down or found broken here is published on a Redis
//!   channel and merged into every other node's health board.
//! - **Change signals** (a shared PostgreSQL): invalidating a key or a workspace's credentials
//!   here sends `NOTIFY`; every node drops its cached copy when the signal arrives
//!   ([`keyway_store::signal`]). A top-up makes the other nodes re-read the balances.

use crate::admission::{Admission, Refusal};
use crate::billing::{has_budget, MoneyRefusal};
use crate::limits::RateRefusal;
use crate::state::SharedState;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use keyway_core::route::RoutePlan;
use keyway_store::shared::{keys, Check, Message, Shared, SharedError, Verdict};
use keyway_store::signal::{self, Change};
use keyway_store::{ApiKeyRecord, Engine, Limits};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// This node's part in the cluster, built at start.
pub struct Cluster {
    shared: Option<Shared>,
    fail_closed: bool,
    /// Requests admitted (or refused, with `fail_closed`) without the shared counters.
    unavailable: AtomicU64,
    /// Tags this node's cooldown messages, so it skips its own.
    node: String,
}

impl Cluster {
    /// Connects to Redis (one attempt; a node starts while Redis is down and joins it later).
    pub async fn new(config: &crate::config::Config) -> Result<Self, SharedError> {
        let c = &config.cluster;
        let shared = match &config.redis_url {
            Some(url) => Some(Shared::start(url, &c.key_prefix, Duration::from_secs(c.slot_lease_secs)).await?),
            None => None,
        };
        Ok(Self { shared, fail_closed: c.fail_closed, unavailable: AtomicU64::new(0), node: uuid::Uuid::new_v4().simple().to_string() })
    }

    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
    }

    /// `keyway_shared_unavailable_total`.
    pub fn unavailable_count(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// `keyway_shared_up`: 1 when Redis answers, 0 when it doesn't, absent without Redis.
    pub fn up(&self) -> Option<bool> {
        self.shared.as_ref().map(Shared::is_up)
    }
}

/// Why a shared check exists, for the refusal's message.
#[derive(Debug, Clone, Copy)]
enum What {
    Requests(u64),
    Tokens(u64),
    Concurrent(u64),
    Credits(i64),
    /// (period name, cap, when the period ends: unix ms)
    Budget(&'static str, i64, i64),
}

fn micros(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn rates(out: &mut Vec<(Check, &'static str, What)>, scope: char, id: &str, l: &Limits, tokens: u64) {
    let name = if scope == 'k' { "key" } else { "workspace" };
    if let Some(n) = l.requests_per_minute {
        out.push((Check::Rate { key: keys::rate(scope, id, "r"), per_minute: n, cells: 1, tokens: false }, name, What::Requests(n)));
    }
    if let Some(n) = l.tokens_per_minute {
        out.push((Check::Rate { key: keys::rate(scope, id, "t"), per_minute: n, cells: tokens.max(1).min(n), tokens: true }, name, What::Tokens(n)));
    }
    if let Some(m) = l.max_concurrent {
        out.push((Check::Slot { key: keys::slots(scope, id), max: m }, name, What::Concurrent(m)));
    }
}

fn budgets(out: &mut Vec<(Check, &'static str, What)>, scope: char, id: &str, l: &Limits, want: i64, spent: (u64, u64), now_ms: i64) {
    use keyway_core::pricing::{day_of, day_start_ms, Month};
    let name = if scope == 'k' { "key" } else { "workspace" };
    let day = day_of(now_ms);
    let month = Month::of(now_ms);
    if let Some(cap) = l.budget_daily_micros {
        let ttl = Duration::from_secs(2 * 86_400);
        out.push((Check::Capped { key: keys::spend(scope, id, 'd', day), want, cap: micros(cap), seed: micros(spent.0), ttl }, name, What::Budget("daily", micros(cap), day_start_ms(day + 1))));
    }
    if let Some(cap) = l.budget_monthly_micros {
        let ttl = Duration::from_secs(32 * 86_400);
        let end = month.next().start_ms();
        out.push((Check::Capped { key: keys::spend(scope, id, 'm', month.start_ms()), want, cap: micros(cap), seed: micros(spent.1), ttl }, name, What::Budget("monthly", micros(cap), end)));
    }
}

/// The shared checks of `key`'s request: the same limits the node checked, plus money.
fn checks(state: &SharedState, key: &ApiKeyRecord, adm: &Admission) -> Vec<(Check, &'static str, What)> {
    let mut out = Vec::new();
    let d = &adm.demand;
    let tokens = d.prompt_tokens.saturating_add(d.max_output_tokens);
    let ws_limits = state.limiter.workspace_limits(&key.workspace_id);
    rates(&mut out, 'k', &key.hash, &key.limits, tokens);
    if let Some(l) = ws_limits {
        rates(&mut out, 'w', &key.workspace_id, l, tokens);
    }
    let credits = state.billing.credits_enabled();
    let key_budget = has_budget(&key.limits);
    let ws_budget = ws_limits.filter(|l| has_budget(l));
    if !(credits || key_budget || ws_budget.is_some()) {
        return out;
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let seeds = state.billing.seeds(&key.hash, &key.workspace_id, now_ms);
    if credits {
        let want = micros(d.money.charged_micros);
        out.push((Check::Balance { key: keys::balance(&key.workspace_id), want, seed: seeds.balance }, "workspace", What::Credits(want)));
    }
    let want = micros(d.money.spend_micros.max(1));
    if key_budget {
        budgets(&mut out, 'k', &key.hash, &key.limits, want, seeds.key, now_ms);
    }
    if let Some(l) = ws_budget {
        budgets(&mut out, 'w', &key.workspace_id, l, want, seeds.workspace, now_ms);
    }
    out
}

fn headers(pairs: &[(&'static str, String)]) -> Box<HeaderMap> {
    let mut h = HeaderMap::new();
    for (name, v) in pairs {
        if let Ok(v) = HeaderValue::try_from(v.as_str()) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    Box::new(h)
}

fn limited(message: String, wait: Duration, pairs: &[(&'static str, String)]) -> Refusal {
    Refusal::Rate(RateRefusal { message, retry_after: wait.max(Duration::from_millis(1)), headers: headers(pairs) })
}

fn refusal(scope: &str, what: What, wait: Duration, value: i64) -> Refusal {
    let reset = crate::limits::format_reset(wait);
    match what {
        What::Requests(n) => limited(
            format!("rate limit reached: {n} requests per minute for this {scope}"),
            wait,
            &[("x-ratelimit-limit-requests", n.to_string()), ("x-ratelimit-remaining-requests", "0".into()), ("x-ratelimit-reset-requests", reset)],
        ),
        What::Tokens(n) => limited(
            format!("rate limit reached: {n} tokens per minute for this {scope}"),
            wait,
            &[("x-ratelimit-limit-tokens", n.to_string()), ("x-ratelimit-remaining-tokens", "0".into()), ("x-ratelimit-reset-tokens", reset)],
        ),
        What::Concurrent(m) => limited(
            format!("this {scope} allows {m} concurrent requests; retry when one finishes"),
            Duration::from_secs(1),
            &[("x-ratelimit-limit-concurrent", m.to_string()), ("x-ratelimit-remaining-concurrent", "0".into())],
        ),
        What::Credits(want) => Refusal::Money(MoneyRefusal::Payment(format!(
            "insufficient credits: the balance, less what requests in flight on every node hold, is {} USD and this request may cost up to {} USD; add credits (POST /api/v1/credits)",
            crate::billing::usd(value),
            crate::billing::usd(want)
        ))),
        What::Budget(period, cap, end_ms) => {
            let wait = Duration::from_millis(u64::try_from(end_ms - chrono::Utc::now().timestamp_millis()).unwrap_or(0).max(1));
            Refusal::Money(MoneyRefusal::OverBudget {
                message: format!("this {scope}'s {period} budget of {} USD is spent ({} USD used or held by requests in flight)", crate::billing::usd(cap), crate::billing::usd(value)),
                retry_after: wait,
                headers: headers(&[("x-ratelimit-limit-budget-micros", cap.to_string()), ("x-ratelimit-remaining-budget-micros", "0".into()), ("x-ratelimit-reset-budget", crate::limits::format_reset(wait))]),
            })
        }
    }
}

/// [`crate::admission::admit_request`], then the shared counters when there are any.
pub async fn admit_request(state: &SharedState, key: &ApiKeyRecord, body: &keyway_providers::RequestBody, route: &RoutePlan<'_>) -> Result<Admission, Refusal> {
    let mut adm = crate::admission::admit_request(state, key, body, route)?;
    let Some(shared) = &state.cluster.shared else { return Ok(adm) };
    let mut checks = checks(state, key, &adm);
    if checks.is_empty() {
        return Ok(adm);
    }
    let whys: Vec<(&'static str, What)> = checks.iter().map(|(_, s, w)| (*s, *w)).collect();
    match shared.admit(checks.drain(..).map(|(c, _, _)| c).collect()).await {
        Ok(Verdict::Admitted(hold, _)) => {
            adm.shared = Some(hold);
            Ok(adm)
        }
        Ok(Verdict::Refused { index, wait, value }) => {
            adm.give_back();
            let Some((scope, what)) = whys.get(index).copied() else { return Err(Refusal::Unavailable("shared limits answered oddly".into())) };
            Err(refusal(scope, what, wait, value))
        }
        Err(e) => {
            state.cluster.unavailable.fetch_add(1, Ordering::Relaxed);
            if state.cluster.fail_closed {
                adm.give_back();
                return Err(Refusal::Unavailable(format!("limits shared across nodes can't be checked ({e}); retry shortly")));
            }
            Ok(adm)
        }
    }
}

/// Wires the caches, the health board and the ledger to the other nodes; call once the state
/// is built. Its tasks hold the state weakly and end with it.
pub fn start(state: &SharedState) {
    if state.store.engine() == Engine::Postgres {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        state.keys.share(tx.clone());
        state.credentials.share(tx);
        let (store, node) = (state.store.clone().with_separate_count(), state.cluster.node.clone());
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                store.notify(&node, &c).await;
            }
        });
        let mut changes = signal::listen(state.config.database_url(), state.cluster.node.clone());
        let weak = Arc::downgrade(state);
        tokio::spawn(async move {
            while let Some(c) = changes.recv().await {
                let Some(state) = weak.upgrade() else { return };
                apply(&state, c);
            }
        });
    }
    let Some(shared) = state.cluster.shared.clone() else { return };
    state.billing.share(shared.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    state.health.share(tx);
    let (node, out) = (state.cluster.node.clone(), shared.clone());
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            out.publish("health", format!("{node}|{p}"));
        }
    });
    let mut sub = shared.subscribe("health");
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        while let Some(m) = sub.recv().await {
            let Some(state) = weak.upgrade() else { return };
            if let Message::Payload(p) = m {
                match p.split_once('|') {
                    Some((from, rest)) if from != state.cluster.node => state.health.merge_remote(rest),
                    _ => {}
                }
            }
        }
    });
}

/// A top-up this node accepted (and the store committed): the shared balance grows by it, and
/// the other nodes' ledgers learn it at once rather than at their next reconciliation.
pub async fn credited(state: &SharedState, ws: &str, amount: i64) {
    if let Some(shared) = &state.cluster.shared {
        shared.add(vec![(keys::balance(ws), amount)]);
    }
    state.store.notify(&state.cluster.node, &Change::Credits(ws.to_owned(), amount)).await;
}

fn apply(state: &SharedState, change: Change) {
    match change {
        Change::Key(hash) => state.keys.forget(&hash),
        Change::Credentials(Some(ws)) => state.credentials.forget(&ws),
        Change::Credentials(None) => state.credentials.forget_all(),
        // The next reconciliation sets the absolute figure from the store; until then, the delta.
        Change::Credits(ws, amount) => state.billing.credit(&ws, amount),
        Change::Resync => {
            state.keys.forget_all();
            state.credentials.forget_all();
        }
    }
}
