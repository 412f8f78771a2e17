//! Per-credential health: cooldowns after 429s, "unhealthy" after repeated auth failures, and
//! parking after an answer that says the account is out of money or quota.
//!
//! A 429 is a problem of the key that got it, not of the provider, so state is per credential.
//! A degraded credential (cooling down or unhealthy) is not dropped from plans, only moved to the
//! end of its section: if it's the only key left, the request still gets a chance. A parked one
//! (quota exhausted) is left out of every plan until its recheck time: trying it again would only
//! earn the same refusal, and add its latency to every request.
//!
//! Pure: every update takes `now`. The gateway keeps one [`HealthTable`] per node (behind a
//! lock) and records each attempt's [`Outcome`].

use foldhash::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What an attempt's failure says about its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// 429 or a rate-limit stream event.
    RateLimited { retry_after: Option<Duration> },
    /// The account behind the key is out of money or quota (OpenAI `insufficient_quota`,
    /// Anthropic's "credit balance is too low", a daily quota): no point retrying for a while.
    QuotaExhausted,
    /// 401/403: the key is wrong, revoked or lacks access.
    AuthFailed,
    /// 5xx, timeout, connection or protocol failure: the provider's trouble, not this key's.
    UpstreamError,
    /// 400-class: the request's fault; says nothing about the key.
    RequestError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    RateLimited,
    Auth,
    Upstream,
    QuotaExhausted,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Auth => "auth",
            FailureKind::Upstream => "upstream",
            FailureKind::QuotaExhausted => "quota_exhausted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// First cooldown after a 429 without `Retry-After` (or an auth failure); doubles each time.
    pub base_cooldown: Duration,
    /// Cap of the doubling cooldown.
    pub max_cooldown: Duration,
    /// Cap of an upstream's `Retry-After` (a degraded key is still tried last, so a cap only
    /// bounds how long it is demoted).
    pub max_retry_after: Duration,
    /// Consecutive 401/403s after which a key is marked unhealthy (until it succeeds again).
    pub unhealthy_after_auth_failures: u32,
    /// How long a credential whose account ran out of quota is left out of plans before one
    /// request tries it again (`routing.quota_recheck_secs`).
    pub quota_recheck: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            base_cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(3600),
            unhealthy_after_auth_failures: 3,
            quota_recheck: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CredentialHealth {
    pub cooldown_until: Option<SystemTime>,
    pub consecutive_rate_limits: u32,
    pub consecutive_auth_failures: u32,
    pub unhealthy: bool,
    pub last_used: Option<SystemTime>,
    /// The last attempt that succeeded (the dashboard's "last success").
    pub last_success: Option<SystemTime>,
    pub last_failure: Option<(SystemTime, FailureKind)>,
    /// The upstream's HTTP status of the last failure, when it answered one.
    pub last_failure_status: Option<u16>,
    /// Parked (quota exhausted) until then; cleared by a success or an owner re-enabling the key.
    pub quota_exhausted_until: Option<SystemTime>,
}

impl CredentialHealth {
    pub fn is_cooling(&self, now: SystemTime) -> bool {
        self.cooldown_until.is_some_and(|t| t > now)
    }

    /// Parked because its account is out of quota: the planner leaves it out until then.
    pub fn is_parked(&self, now: SystemTime) -> bool {
        self.quota_exhausted_until.is_some_and(|t| t > now)
    }

    /// Cooling down or unhealthy: the planner moves it to the end of its section.
    pub fn is_degraded(&self, now: SystemTime) -> bool {
        self.unhealthy || self.is_cooling(now)
    }

    /// The state after an attempt with this credential ended in `outcome` at `now`.
    #[must_use]
    pub fn after(self, outcome: Outcome, now: SystemTime, policy: &HealthPolicy) -> Self {
        let mut h = self;
        h.last_used = Some(now);
        match outcome {
            Outcome::Success => {
                h.last_success = Some(now);
                h.cooldown_until = None;
                h.consecutive_rate_limits = 0;
                h.consecutive_auth_failures = 0;
                h.unhealthy = false;
                h.quota_exhausted_until = None;
            }
            Outcome::RateLimited { retry_after } => {
                // The upstream accepted the key enough to rate-limit it: it is not broken.
                h.consecutive_auth_failures = 0;
                h.unhealthy = false;
                h.consecutive_rate_limits = h.consecutive_rate_limits.saturating_add(1);
                let wait = match retry_after {
                    Some(d) => d.min(policy.max_retry_after),
                    None => backoff(policy, h.consecutive_rate_limits),
                };
                h.cooldown_until = Some(later(now, wait));
                h.last_failure = Some((now, FailureKind::RateLimited));
            }
            Outcome::AuthFailed => {
                h.consecutive_auth_failures = h.consecutive_auth_failures.saturating_add(1);
                h.unhealthy = h.consecutive_auth_failures >= policy.unhealthy_after_auth_failures;
                h.cooldown_until = Some(later(now, backoff(policy, h.consecutive_auth_failures)));
                h.last_failure = Some((now, FailureKind::Auth));
            }
            Outcome::QuotaExhausted => {
                // The upstream knew the key well enough to bill it: the key itself is fine.
                h.consecutive_auth_failures = 0;
                h.unhealthy = false;
                h.quota_exhausted_until = Some(later(now, policy.quota_recheck));
                h.last_failure = Some((now, FailureKind::QuotaExhausted));
            }
            Outcome::UpstreamError => h.last_failure = Some((now, FailureKind::Upstream)),
            Outcome::RequestError => {}
        }
        h
    }
}

/// `base * 2^(n-1)`, capped.
fn backoff(policy: &HealthPolicy, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    policy.base_cooldown.saturating_mul(factor).min(policy.max_cooldown)
}

fn later(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_add(d).unwrap_or(now)
}

/// Which credential a health record is about. Request-scoped credentials have none: they live
/// for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthKey<'a> {
    Byok(&'a str),
    /// Index into the operator's system credentials.
    System(usize),
}

/// Where the planner reads health from.
pub trait HealthSource {
    fn health(&self, key: HealthKey<'_>) -> Option<CredentialHealth>;
}

/// No health information: every credential counts as healthy.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHealth;

impl HealthSource for NoHealth {
    fn health(&self, _: HealthKey<'_>) -> Option<CredentialHealth> {
        None
    }
}

/// Health of every credential this node has used.
#[derive(Debug, Clone, Default)]
pub struct HealthTable {
    policy: HealthPolicy,
    byok: HashMap<Arc<str>, CredentialHealth>,
    system: HashMap<usize, CredentialHealth>,
}

impl HealthTable {
    pub fn new(policy: HealthPolicy) -> Self {
        Self { policy, ..Self::default() }
    }

    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    pub fn get(&self, key: HealthKey<'_>) -> Option<CredentialHealth> {
        match key {
            HealthKey::Byok(id) => self.byok.get(id).copied(),
            HealthKey::System(i) => self.system.get(&i).copied(),
        }
    }

    /// Applies an attempt's outcome; returns the new state (e.g. to flag a broken key).
    pub fn record(&mut self, key: HealthKey<'_>, outcome: Outcome, now: SystemTime) -> CredentialHealth {
        self.record_status(key, outcome, None, now)
    }

    /// As [`HealthTable::record`], keeping the upstream's HTTP status of a failure (for `health`).
    pub fn record_status(&mut self, key: HealthKey<'_>, outcome: Outcome, status: Option<u16>, now: SystemTime) -> CredentialHealth {
        let mut next = self.get(key).unwrap_or_default().after(outcome, now, &self.policy);
        if !matches!(outcome, Outcome::Success | Outcome::RequestError) {
            next.last_failure_status = status;
        }
        self.set(key, next);
        next
    }

    /// Replaces a record (e.g. from shared state).
    pub fn set(&mut self, key: HealthKey<'_>, health: CredentialHealth) {
        match key {
            HealthKey::Byok(id) => match self.byok.get_mut(id) {
                Some(h) => *h = health,
                None => {
                    self.byok.insert(Arc::from(id), health);
                }
            },
            HealthKey::System(i) => {
                self.system.insert(i, health);
            }
        }
    }

    /// Forgets a credential (deleted, or its key replaced: a new key starts healthy).
    pub fn reset(&mut self, key: HealthKey<'_>) {
        match key {
            HealthKey::Byok(id) => {
                self.byok.remove(id);
            }
            HealthKey::System(i) => {
                self.system.remove(&i);
            }
        }
    }
}

impl HealthSource for HealthTable {
    fn health(&self, key: HealthKey<'_>) -> Option<CredentialHealth> {
        self.get(key)
    }
}
