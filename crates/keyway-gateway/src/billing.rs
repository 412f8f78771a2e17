//! Money in memory: each workspace's credit balance and monthly BYOK count, each key's daily and
//! monthly spend. Loaded from the store at start, updated as generations are charged, and
//! reconciled with the store periodically, so no request waits on a database query.
//!
//! A generation's charge (see `keyway_core::pricing`) is applied here the moment it is settled
//! and written to the store later with the generation row itself (the usage writer's batch).
//! Until then it is *pending*. Reconciling sets `usage = usage in the store + pending`, which is
//! right on one node and picks up other nodes' charges and top-ups when several share a store.
//! A batch committing while the store is read would be counted twice or not at all, so the
//! writer brackets each batch with a sequence number and a reconcile that saw it move is
//! discarded and retried at the next tick.

use crate::error::ApiError;
use axum::response::{IntoResponse, Response};
use crate::usage::{GenerationRecord, UsageHook};
use keyway_core::pricing::{self, Charge, FeeRules, Month, MonthlyCounter, Prices};
use keyway_store::{ApiKeyRecord, GenerationRow, Limits, Store, StoreError};
use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
struct Account {
    /// Top-ups and adjustments.
    credits: i64,
    /// Everything charged, including pending charges.
    usage: i64,
    /// Charged here but not yet in the store.
    pending: i64,
    /// Estimates held by admitted requests still running (see [`Reservation`]).
    reserved: i64,
    month: Month,
    month_usage: i64,
    byok: MonthlyCounter,
}

impl Account {
    fn balance(&self) -> i64 {
        self.credits.saturating_sub(self.usage)
    }

    fn roll(&mut self, now_ms: i64) {
        let m = Month::of(now_ms);
        if m != self.month {
            self.month = m;
            self.month_usage = 0;
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Spend {
    day: i64,
    day_micros: u64,
    month: Month,
    month_micros: u64,
    /// Estimates held by admitted requests still running, counted against both periods.
    reserved: u64,
}

impl Spend {
    fn roll(&mut self, now_ms: i64) {
        let (d, m) = (pricing::day_of(now_ms), Month::of(now_ms));
        if d != self.day {
            self.day = d;
            self.day_micros = 0;
        }
        if m != self.month {
            self.month = m;
            self.month_micros = 0;
        }
    }
}

/// See [`Ledger::seeds`]: (today, this month) for the key and for the workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seeds {
    pub balance: i64,
    pub key: (u64, u64),
    pub workspace: (u64, u64),
}

/// What `GET /api/v1/credits` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub credits_micros: i64,
    pub usage_micros: i64,
    pub balance_micros: i64,
    pub used_this_month_micros: i64,
    pub byok_requests_this_month: u64,
}

pub struct Ledger {
    rules: FeeRules,
    credits_enabled: bool,
    accounts: RwLock<HashMap<String, Arc<Mutex<Account>>>>,
    spend: RwLock<HashMap<String, Arc<Mutex<Spend>>>>,
    /// Each workspace's daily and monthly spend (for `[limits]` budgets).
    ws_spend: RwLock<HashMap<String, Arc<Mutex<Spend>>>>,
    /// Odd while the usage writer is committing a batch (see the module doc).
    seq: AtomicU64,
    /// Set when nodes share counters: charges and top-ups are applied there too (`cluster.rs`).
    shared: std::sync::OnceLock<keyway_store::shared::Shared>,
}

impl Ledger {
    pub fn new(cfg: &crate::config::Billing) -> Self {
        Self {
            rules: FeeRules { byok_fee_percent: cfg.byok_fee_percent, byok_free_requests_per_month: cfg.byok_free_requests_per_month },
            credits_enabled: cfg.credits_enabled,
            accounts: RwLock::new(HashMap::new()),
            spend: RwLock::new(HashMap::new()),
            ws_spend: RwLock::new(HashMap::new()),
            seq: AtomicU64::new(0),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Applies charges and top-ups to the shared balances and budgets too.
    pub fn share(&self, shared: keyway_store::shared::Shared) {
        let _ = self.shared.set(shared);
    }

    /// This node's view of what the shared counters start from when Redis has none: the
    /// workspace's balance, and the key's and workspace's spend today and this month.
    pub fn seeds(&self, key_hash: &str, ws: &str, now_ms: i64) -> Seeds {
        let balance = self.balance(ws, now_ms).balance_micros;
        let spent = |s: Arc<Mutex<Spend>>| {
            let mut s = lock(&s);
            s.roll(now_ms);
            (s.day_micros, s.month_micros)
        };
        Seeds { balance, key: spent(self.spend_of(key_hash)), workspace: spent(self.ws_spend_of(ws)) }
    }

    pub fn credits_enabled(&self) -> bool {
        self.credits_enabled
    }

    pub fn rules(&self) -> FeeRules {
        self.rules
    }

    fn account(&self, ws: &str) -> Arc<Mutex<Account>> {
        if let Some(a) = self.accounts.read().unwrap_or_else(|p| p.into_inner()).get(ws) {
            return a.clone();
        }
        self.accounts.write().unwrap_or_else(|p| p.into_inner()).entry(ws.to_owned()).or_default().clone()
    }

    fn spend_of(&self, key_hash: &str) -> Arc<Mutex<Spend>> {
        spend_in(&self.spend, key_hash)
    }

    fn ws_spend_of(&self, ws: &str) -> Arc<Mutex<Spend>> {
        spend_in(&self.ws_spend, ws)
    }

    /// The most `attempts` (prices, is BYOK) could charge the workspace, and count toward
    /// budgets, if the request uses `prompt_tokens` and `max_output_tokens`: fallback may reach
    /// any attempt, so the maximum of each.
    pub fn estimate(&self, ws: &str, prompt_tokens: u64, max_output_tokens: u64, attempts: impl Iterator<Item = (Prices, bool)>, now_ms: i64) -> Estimate {
        let ordinal = lock(&self.account(ws)).byok.current(now_ms) + 1;
        attempts.fold(Estimate::default(), |e, (p, byok)| {
            let c = pricing::charge(pricing::estimate_micros(&p, prompt_tokens, max_output_tokens), byok, ordinal, &self.rules);
            Estimate { charged_micros: e.charged_micros.max(c.charged_micros), spend_micros: e.spend_micros.max(c.cost_micros.saturating_add(c.fee_micros)) }
        })
    }

    /// Admits a request's money or refuses it: 402 when credits are on and the balance, less
    /// what running requests hold, is not positive or can't cover `estimate.charged_micros` (a
    /// positive balance is required even when a BYOK key would serve); 429 when the key's or the
    /// workspace's daily or monthly budget is spent or held. What passes is held until the
    /// returned reservation drops, so requests admitted at the same moment can't all pass on
    /// the same balance: they over-admit by at most one request's estimate error.
    pub fn reserve(&self, key: &ApiKeyRecord, ws_limits: Option<&Limits>, estimate: Estimate, now_ms: i64) -> Result<Reservation, MoneyRefusal> {
        let mut r = Reservation::default();
        // While nodes share a balance in Redis, it decides (`cluster.rs`): this node's copy may
        // not have heard of a top-up on another node yet.
        let shared_decides = self.shared.get().is_some_and(keyway_store::shared::Shared::is_up);
        if self.credits_enabled && !shared_decides {
            let account = self.account(&key.workspace_id);
            let needed = i64::try_from(estimate.charged_micros).unwrap_or(i64::MAX);
            {
                let mut a = lock(&account);
                a.roll(now_ms);
                let available = a.balance().saturating_sub(a.reserved);
                if available <= 0 || available < needed {
                    return Err(MoneyRefusal::Payment(format!(
                        "insufficient credits: the balance is {} USD ({} USD held by requests in flight) and this request may cost up to {} USD; add credits (POST /api/v1/credits)",
                        usd(a.balance()),
                        usd(a.reserved),
                        usd(needed)
                    )));
                }
                a.reserved = a.reserved.saturating_add(needed);
            }
            r.account = Some((account, needed));
        }
        let want = estimate.spend_micros.max(1);
        if has_budget(&key.limits) {
            r.key = Some(hold_budget(self.spend_of(&key.hash), "key", &key.limits, want, now_ms)?);
        }
        if let Some(l) = ws_limits.filter(|l| has_budget(l)) {
            r.workspace = Some(hold_budget(self.ws_spend_of(&key.workspace_id), "workspace", l, want, now_ms)?);
        }
        Ok(r)
    }

    /// Prices a finished generation, fills its `cost_micros`/`fee_micros`, and charges it.
    /// Only generations an upstream served are charged (and count toward the BYOK waiver).
    pub fn settle(&self, rec: &mut GenerationRecord, prices: Option<Prices>) -> Charge {
        let now_ms = rec.created_at_ms.max(chrono::Utc::now().timestamp_millis());
        self.settle_at(rec, prices, now_ms)
    }

    /// [`Ledger::settle`] at `now_ms` (UTC ms): the clock decides the day and month charged.
    pub fn settle_at(&self, rec: &mut GenerationRecord, prices: Option<Prices>, now_ms: i64) -> Charge {
        if rec.provider.is_none() {
            return Charge::default();
        }
        let cost = prices.map(|p| pricing::cost_micros(&rec.usage.unwrap_or_default(), &p)).unwrap_or(0);
        let charge = {
            let account = self.account(&rec.workspace_id);
            let mut a = lock(&account);
            a.roll(now_ms);
            let ordinal = if rec.is_byok { a.byok.next(now_ms) } else { 0 };
            let charge = pricing::charge(cost, rec.is_byok, ordinal, &self.rules);
            let c = i64::try_from(charge.charged_micros).unwrap_or(i64::MAX);
            a.usage = a.usage.saturating_add(c);
            a.pending = a.pending.saturating_add(c);
            a.month_usage = a.month_usage.saturating_add(c);
            charge
        };
        let total = charge.cost_micros.saturating_add(charge.fee_micros);
        for spend in [self.spend_of(&rec.api_key_hash), self.ws_spend_of(&rec.workspace_id)] {
            let mut s = lock(&spend);
            s.roll(now_ms);
            s.day_micros = s.day_micros.saturating_add(total);
            s.month_micros = s.month_micros.saturating_add(total);
        }
        rec.cost_micros = charge.cost_micros;
        rec.fee_micros = charge.fee_micros;
        if let (Some(shared), true) = (self.shared.get(), total > 0) {
            // Off the request path: the shared balance and budgets learn the real charge.
            use keyway_store::shared::keys;
            let (day, month) = (pricing::day_of(now_ms), Month::of(now_ms).start_ms());
            let (c, t) = (i64::try_from(charge.charged_micros).unwrap_or(i64::MAX), i64::try_from(total).unwrap_or(i64::MAX));
            let (k, ws) = (rec.api_key_hash.as_str(), rec.workspace_id.as_str());
            let mut deltas = vec![(keys::spend('k', k, 'd', day), t), (keys::spend('k', k, 'm', month), t), (keys::spend('w', ws, 'd', day), t), (keys::spend('w', ws, 'm', month), t)];
            if self.credits_enabled && c > 0 {
                deltas.push((keys::balance(ws), -c));
            }
            shared.add(deltas);
        }
        charge
    }

    /// A top-up (or adjustment) that the store has accepted.
    pub fn credit(&self, ws: &str, amount_micros: i64) {
        let account = self.account(ws);
        let mut a = lock(&account);
        a.credits = a.credits.saturating_add(amount_micros);
    }

    pub fn balance(&self, ws: &str, now_ms: i64) -> Balance {
        let account = self.account(ws);
        let mut a = lock(&account);
        a.roll(now_ms);
        Balance {
            credits_micros: a.credits,
            usage_micros: a.usage,
            balance_micros: a.balance(),
            used_this_month_micros: a.month_usage,
            byok_requests_this_month: a.byok.current(now_ms),
        }
    }

    /// Re-reads the store's totals and applies them (see the module doc). Returns false when a
    /// batch was being written meanwhile and the result was discarded.
    pub async fn reconcile(&self, store: &Store) -> Result<bool, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let month = Month::of(now_ms);
        let day_start = pricing::day_start_ms(pricing::day_of(now_ms));
        let s0 = self.seq.load(Ordering::Acquire);
        if s0 % 2 == 1 {
            return Ok(false);
        }
        let totals = store.credit_totals(month.start_ms()).await?;
        let by_day = store.key_spend_since(day_start).await?;
        let by_month = store.key_spend_since(month.start_ms()).await?;
        let by_ws = store.workspace_spend_since(day_start, month.start_ms()).await?;
        if self.seq.load(Ordering::Acquire) != s0 {
            return Ok(false);
        }
        for (ws, t) in totals {
            let account = self.account(&ws);
            let mut a = lock(&account);
            a.roll(now_ms);
            a.credits = t.credits_micros;
            a.usage = t.usage_micros.saturating_add(a.pending);
            a.month_usage = t.usage_since_micros.saturating_add(a.pending);
            // Counters only grow within their period: the larger of ours and the store's.
            let stored = u64::try_from(t.byok_requests_since).unwrap_or(0);
            if a.byok.month != month {
                a.byok = MonthlyCounter { month, count: 0 };
            }
            a.byok.count = a.byok.count.max(stored);
        }
        for (key, day_spend) in by_day {
            let spend = self.spend_of(&key);
            let mut s = lock(&spend);
            s.roll(now_ms);
            s.day_micros = s.day_micros.max(u64::try_from(day_spend).unwrap_or(0));
        }
        for (key, month_spend) in by_month {
            let spend = self.spend_of(&key);
            let mut s = lock(&spend);
            s.roll(now_ms);
            s.month_micros = s.month_micros.max(u64::try_from(month_spend).unwrap_or(0));
        }
        for (ws, (day_spend, month_spend)) in by_ws {
            let spend = self.ws_spend_of(&ws);
            let mut s = lock(&spend);
            s.roll(now_ms);
            s.day_micros = s.day_micros.max(u64::try_from(day_spend).unwrap_or(0));
            s.month_micros = s.month_micros.max(u64::try_from(month_spend).unwrap_or(0));
        }
        Ok(self.seq.load(Ordering::Acquire) == s0)
    }

    /// Reconciles every `every` until the ledger is dropped.
    pub fn spawn_reconciler(self: &Arc<Self>, store: Store, every: Duration) {
        crate::periodic::every(self, every, move |ledger| {
            let store = store.clone();
            async move {
                match ledger.reconcile(&store).await {
                    Ok(true) => {}
                    Ok(false) => tracing::debug!("usage batch written during reconcile; retrying next tick"),
                    Err(e) => tracing::warn!(error = %e, "reconciling credits failed"),
                }
            }
        });
    }

    fn release_pending(&self, ws: &str, charged: u64) {
        if charged == 0 {
            return;
        }
        let account = self.account(ws);
        let mut a = lock(&account);
        a.pending = a.pending.saturating_sub(i64::try_from(charged).unwrap_or(i64::MAX));
    }
}

impl UsageHook for Ledger {
    fn before_write(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    fn after_write(&self, rows: &[GenerationRow]) {
        for r in rows {
            let charged = Charge::charged(u64::try_from(r.cost_micros).unwrap_or(0), u64::try_from(r.fee_micros).unwrap_or(0), r.is_byok);
            self.release_pending(&r.workspace_id, charged);
        }
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    fn dropped(&self, rec: &GenerationRecord) {
        // The charge stays in memory; the store will never see it (reconcile gives it back).
        self.release_pending(&rec.workspace_id, Charge::charged(rec.cost_micros, rec.fee_micros, rec.is_byok));
    }
}

fn spend_in(map: &RwLock<HashMap<String, Arc<Mutex<Spend>>>>, id: &str) -> Arc<Mutex<Spend>> {
    if let Some(s) = map.read().unwrap_or_else(|p| p.into_inner()).get(id) {
        return s.clone();
    }
    map.write().unwrap_or_else(|p| p.into_inner()).entry(id.to_owned()).or_default().clone()
}

/// 429 when the daily or monthly budget in `limits` is spent or held by requests in flight
/// (catalog cost plus fee); else holds `want` against it.
fn hold_budget(spend: Arc<Mutex<Spend>>, scope: &str, limits: &Limits, want: u64, now_ms: i64) -> Result<(Arc<Mutex<Spend>>, u64), MoneyRefusal> {
    {
        let mut s = lock(&spend);
        s.roll(now_ms);
        let refuse = |what: &str, limit: u64, spent: u64, until_ms: i64| {
            let wait = Duration::from_millis(u64::try_from(until_ms - now_ms).unwrap_or(0).max(1));
            let mut headers = axum::http::HeaderMap::new();
            crate::limits::put(&mut headers, axum::http::HeaderName::from_static("x-ratelimit-limit-budget-micros"), limit.to_string());
            crate::limits::put(&mut headers, axum::http::HeaderName::from_static("x-ratelimit-remaining-budget-micros"), limit.saturating_sub(spent.saturating_add(s.reserved)).to_string());
            crate::limits::put(&mut headers, axum::http::HeaderName::from_static("x-ratelimit-reset-budget"), crate::limits::format_reset(wait));
            Err(MoneyRefusal::OverBudget {
                message: format!(
                    "this {scope}'s {what} budget of {} USD is spent ({} USD used, {} USD held by requests in flight)",
                    usd(limit as i64),
                    usd(spent as i64),
                    usd(s.reserved as i64)
                ),
                retry_after: wait,
                headers: Box::new(headers),
            })
        };
        if let Some(limit) = limits.budget_daily_micros.filter(|l| s.day_micros.saturating_add(s.reserved) >= *l) {
            return refuse("daily", limit, s.day_micros, pricing::day_start_ms(s.day + 1));
        }
        if let Some(limit) = limits.budget_monthly_micros.filter(|l| s.month_micros.saturating_add(s.reserved) >= *l) {
            return refuse("monthly", limit, s.month_micros, s.month.next().start_ms());
        }
        s.reserved = s.reserved.saturating_add(want);
    }
    Ok((spend, want))
}

/// Whether `l` sets a daily or monthly spend budget.
pub fn has_budget(l: &Limits) -> bool {
    l.budget_daily_micros.is_some() || l.budget_monthly_micros.is_some()
}

/// Why the money check refused a request.
#[derive(Debug)]
pub enum MoneyRefusal {
    /// 402: the workspace's credits can't cover the request.
    Payment(String),
    /// 429 with `Retry-After` (the period's end) and the `x-ratelimit-*-budget` headers: a
    /// daily or monthly budget is spent. Headers boxed: a refusal is rare.
    OverBudget { message: String, retry_after: Duration, headers: Box<axum::http::HeaderMap> },
}

impl IntoResponse for MoneyRefusal {
    fn into_response(self) -> Response {
        match self {
            MoneyRefusal::Payment(m) => ApiError::PaymentRequired(m).into_response(),
            MoneyRefusal::OverBudget { message, retry_after, headers } => {
                let mut resp = ApiError::RateLimited { message, retry_after: Some(retry_after) }.into_response();
                resp.headers_mut().extend(*headers);
                resp
            }
        }
    }
}

/// What a request may cost before it runs (see [`Ledger::estimate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Charged to the workspace's credits: the full price for system traffic, the fee for BYOK.
    pub charged_micros: u64,
    /// Counted toward spend budgets: catalog cost plus fee.
    pub spend_micros: u64,
}

/// Money an admitted request holds against credits and budgets until it ends; dropping it
/// gives the hold back (the real charge is applied by [`Ledger::settle`]).
#[derive(Debug, Default)]
pub struct Reservation {
    account: Option<(Arc<Mutex<Account>>, i64)>,
    key: Option<(Arc<Mutex<Spend>>, u64)>,
    workspace: Option<(Arc<Mutex<Spend>>, u64)>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some((a, n)) = self.account.take() {
            let mut a = lock(&a);
            a.reserved = a.reserved.saturating_sub(n);
        }
        for (s, n) in [self.key.take(), self.workspace.take()].into_iter().flatten() {
            let mut s = lock(&s);
            s.reserved = s.reserved.saturating_sub(n);
        }
    }
}

/// Micros as USD for people (messages) and OpenRouter's float fields.
pub fn usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Billing;
    use keyway_core::Usage;
    use keyway_store::Limits;

    fn rec(ws: &str, byok: bool, usage: Usage) -> GenerationRecord {
        GenerationRecord {
            api_key_hash: "k".into(),
            model: Some("openai/gpt-4o-mini".into()),
            provider: Some("openai".into()),
            credential_id: Some(if byok { "c1".into() } else { "system".into() }),
            is_byok: byok,
            usage: Some(usage),
            created_at_ms: chrono::Utc::now().timestamp_millis(),
            ..GenerationRecord::for_test("gen-1", ws)
        }
    }

    const MINI: Prices = Prices { input_per_mtok_micros: 150_000, output_per_mtok_micros: 600_000, cached_input_per_mtok_micros: Some(75_000), per_request_micros: 0 };
    const U: Usage = Usage { prompt_tokens: 1000, completion_tokens: 500, cached_tokens: 0, cache_write_tokens: 0 };

    #[test]
    fn settle_charges_system_fully_and_byok_after_the_waiver() {
        let l = Ledger::new(&Billing { credits_enabled: true, byok_fee_percent: 5, byok_free_requests_per_month: 1, ..Billing::default() });
        l.credit("w", 10_000);
        let mut r = rec("w", false, U);
        assert_eq!(l.settle(&mut r, Some(MINI)).charged_micros, 450);
        assert_eq!((r.cost_micros, r.fee_micros), (450, 0));
        let mut r = rec("w", true, U);
        assert_eq!(l.settle(&mut r, Some(MINI)).charged_micros, 0, "first BYOK request of the month is free");
        let mut r = rec("w", true, U);
        assert_eq!(l.settle(&mut r, Some(MINI)).charged_micros, 23);
        assert_eq!((r.cost_micros, r.fee_micros), (450, 23));
        let b = l.balance("w", chrono::Utc::now().timestamp_millis());
        assert_eq!(b.balance_micros, 10_000 - 473);
        assert_eq!(b.used_this_month_micros, 473);
        assert_eq!(b.byok_requests_this_month, 2);
        // A request nothing served is never charged.
        let mut r = rec("w", false, U);
        r.provider = None;
        assert_eq!(l.settle(&mut r, Some(MINI)), Charge::default());
    }

    fn key(limits: Limits) -> ApiKeyRecord {
        ApiKeyRecord {
            id: "id".into(),
            workspace_id: "w".into(),
            hash: "k".into(),
            name: "n".into(),
            label: "l".into(),
            kind: keyway_store::KeyKind::Inference,
            admin: false,
            role: keyway_store::Role::Inference,
            disabled: false,
            limits,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn est(charged_micros: u64) -> Estimate {
        Estimate { charged_micros, spend_micros: charged_micros }
    }

    #[test]
    fn credits_check_needs_a_positive_balance_that_covers_the_estimate() {
        let l = Ledger::new(&Billing { credits_enabled: true, byok_fee_percent: 5, byok_free_requests_per_month: 0, ..Billing::default() });
        let now = chrono::Utc::now().timestamp_millis();
        let k = key(Limits::default());
        assert!(matches!(l.reserve(&k, None, est(0), now), Err(MoneyRefusal::Payment(_))), "zero balance refuses even a free request");
        l.credit("w", 1000);
        assert!(l.reserve(&k, None, est(1000), now).is_ok());
        assert!(l.reserve(&k, None, est(1001), now).is_err());
        // The estimate over a plan is the worst attempt: a BYOK fee or a full system price.
        let e = l.estimate("w", 1000, 1000, [(MINI, true), (MINI, false)].into_iter(), now);
        assert_eq!(e, Estimate { charged_micros: 750, spend_micros: 788 });
        let e = l.estimate("w", 1000, 1000, [(MINI, true)].into_iter(), now);
        assert_eq!(e, Estimate { charged_micros: 38, spend_micros: 788 });
        let off = Ledger::new(&Billing::default());
        assert!(off.reserve(&k, None, est(u64::MAX), now).is_ok(), "credits are off by default");
    }

    #[test]
    fn credit_reservations_hold_the_balance_until_dropped() {
        let l = Ledger::new(&Billing { credits_enabled: true, ..Billing::default() });
        let now = chrono::Utc::now().timestamp_millis();
        let k = key(Limits::default());
        l.credit("w", 1000);
        let r1 = l.reserve(&k, None, est(400), now).unwrap();
        let r2 = l.reserve(&k, None, est(400), now).unwrap();
        assert!(matches!(l.reserve(&k, None, est(400), now), Err(MoneyRefusal::Payment(_))), "800 of 1000 held: a third 400 doesn't fit");
        assert!(l.reserve(&k, None, est(200), now).is_ok(), "exactly the rest fits (and is given back at once)");
        // The first request ends having cost 100: settled, then its hold drops.
        let mut r = rec("w", false, Usage { prompt_tokens: 0, completion_tokens: 167, ..Usage::default() });
        assert_eq!(l.settle(&mut r, Some(MINI)).charged_micros, 100);
        drop(r1);
        assert!(l.reserve(&k, None, est(500), now).is_ok(), "1000 - 100 charged - 400 held = 500");
        assert!(l.reserve(&k, None, est(501), now).is_err());
        drop(r2);
        assert!(l.reserve(&k, None, est(900), now).is_ok());
        assert_eq!(lock(&l.account("w")).reserved, 0);
    }

    #[test]
    fn budgets_refuse_once_spent_with_retry_after_until_the_period_ends() {
        let l = Ledger::new(&Billing::default());
        let k = key(Limits { budget_daily_micros: Some(900), ..Limits::default() });
        let now = chrono::Utc::now().timestamp_millis();
        assert!(l.reserve(&k, None, est(1), now).is_ok());
        l.settle(&mut rec("w", false, U), Some(MINI));
        assert!(l.reserve(&k, None, est(1), now).is_ok(), "450 of 900 spent");
        l.settle(&mut rec("w", false, U), Some(MINI));
        match l.reserve(&k, None, est(1), now) {
            Err(MoneyRefusal::OverBudget { retry_after, headers, .. }) => {
                assert!(retry_after <= Duration::from_secs(86_400));
                assert_eq!(headers["x-ratelimit-limit-budget-micros"], "900");
                assert_eq!(headers["x-ratelimit-remaining-budget-micros"], "0");
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        // The next UTC day starts afresh.
        assert!(l.reserve(&k, None, est(1), now + 86_400_000).is_ok());
    }

    #[test]
    fn budget_reservations_bound_concurrent_admission() {
        let l = Ledger::new(&Billing::default());
        let now = chrono::Utc::now().timestamp_millis();
        let k = key(Limits { budget_monthly_micros: Some(1000), ..Limits::default() });
        let ws = Limits { budget_daily_micros: Some(10_000), ..Limits::default() };
        // Admitted while spent + held < budget: 300 + 300 + 300 + 300 (the last crosses it).
        let held: Vec<_> = (0..10).filter_map(|_| l.reserve(&k, Some(&ws), est(300), now).ok()).collect();
        assert_eq!(held.len(), 4);
        assert_eq!(lock(&l.ws_spend_of("w")).reserved, 1200, "the workspace holds the same estimates");
        drop(held);
        assert_eq!(lock(&l.spend_of("k")).reserved, 0);
        assert_eq!(lock(&l.ws_spend_of("w")).reserved, 0);
        // A workspace budget refuses every key of the workspace, with its own message.
        let ws = Limits { budget_monthly_micros: Some(400), ..Limits::default() };
        l.settle(&mut rec("w", false, U), Some(MINI));
        match l.reserve(&key(Limits::default()), Some(&ws), est(1), now) {
            Err(MoneyRefusal::OverBudget { message, retry_after, .. }) => {
                assert!(message.contains("workspace's monthly budget"), "{message}");
                assert!(retry_after <= Duration::from_secs(31 * 86_400));
            }
            other => panic!("expected a 429, got {other:?}"),
        }
    }

    #[test]
    fn month_rollover_resets_monthly_usage_and_the_byok_waiver() {
        let l = Ledger::new(&Billing { credits_enabled: true, byok_fee_percent: 5, byok_free_requests_per_month: 1, ..Billing::default() });
        let feb_1 = Month::of(1_769_904_000_000).start_ms(); // 2026-02-01T00:00Z
        assert_eq!(feb_1, 1_769_904_000_000);
        let jan_31 = feb_1 - 60_000;
        l.credit("w", 100_000);
        let settle = |byok: bool, at: i64| l.settle_at(&mut rec("w", byok, U), Some(MINI), at);
        assert_eq!(settle(true, jan_31).fee_micros, 0, "January's first BYOK request is waived");
        assert_eq!(settle(true, jan_31).fee_micros, 23);
        assert_eq!(settle(false, jan_31).charged_micros, 450);
        let jan = l.balance("w", jan_31);
        assert_eq!((jan.used_this_month_micros, jan.byok_requests_this_month), (473, 2));
        let k = key(Limits { budget_monthly_micros: Some(1000), ..Limits::default() });
        assert!(l.reserve(&k, None, est(1), jan_31).is_err(), "January: 450 + 473 + 450 = 1373 spent of 1000");
        // February: nothing used yet, and the waiver counts from 1 again.
        let feb = l.balance("w", feb_1);
        assert_eq!((feb.used_this_month_micros, feb.byok_requests_this_month), (0, 0));
        assert_eq!(feb.balance_micros, 100_000 - 473, "the balance itself carries over");
        assert_eq!(settle(true, feb_1).fee_micros, 0, "February's first BYOK request is waived");
        assert_eq!(settle(true, feb_1 + 1).fee_micros, 23);
        let feb = l.balance("w", feb_1 + 1);
        assert_eq!((feb.used_this_month_micros, feb.byok_requests_this_month, feb.usage_micros), (23, 2, 496));
        // A key's monthly budget restarts with the month too.
        assert!(l.reserve(&k, None, est(1), feb_1 + 2).is_ok(), "February: 450 + 473 = 923 spent");
    }

    #[test]
    fn pending_is_released_when_written_or_dropped() {
        let l = Ledger::new(&Billing::default());
        let mut r = rec("w", false, U);
        l.settle(&mut r, Some(MINI));
        assert_eq!(lock(&l.account("w")).pending, 450);
        l.dropped(&r);
        assert_eq!(lock(&l.account("w")).pending, 0);
        assert_eq!(lock(&l.account("w")).usage, 450, "the charge itself stays");
    }
}
