//! Health updates: cooldowns, exponential backoff, unhealthy after repeated auth failures.

use super::fixture::now;
use crate::route::{CredentialHealth, FailureKind, HealthKey, HealthPolicy, HealthSource, HealthTable, NoHealth, Outcome};
use std::time::Duration;

const S: fn(u64) -> Duration = Duration::from_secs;

fn after(h: CredentialHealth, o: Outcome) -> CredentialHealth {
    h.after(o, now(), &HealthPolicy::default())
}

fn rate_limited(secs: Option<u64>) -> Outcome {
    Outcome::RateLimited { retry_after: secs.map(S) }
}

#[test]
fn rate_limit_with_retry_after_cools_for_that_long() {
    let h = after(CredentialHealth::default(), rate_limited(Some(30)));
    assert_eq!(h.cooldown_until, Some(now() + S(30)));
    assert!(h.is_cooling(now() + S(29)) && h.is_degraded(now()));
    assert_eq!(h.last_failure, Some((now(), FailureKind::RateLimited)));
    assert_eq!(h.last_used, Some(now()));
}

#[test]
fn cooldown_ends_at_deadline() {
    let h = after(CredentialHealth::default(), rate_limited(Some(30)));
    assert!(!h.is_cooling(now() + S(30)));
    assert!(!h.is_degraded(now() + S(31)));
}

#[test]
fn rate_limit_without_retry_after_backs_off_exponentially() {
    let mut h = CredentialHealth::default();
    let mut waits = Vec::new();
    for _ in 0..4 {
        h = after(h, rate_limited(None));
        waits.push(h.cooldown_until.and_then(|t| t.duration_since(now()).ok()));
    }
    assert_eq!(waits, [Some(S(5)), Some(S(10)), Some(S(20)), Some(S(40))]);
}

#[test]
fn backoff_is_capped() {
    let mut h = CredentialHealth::default();
    for _ in 0..40 {
        h = after(h, rate_limited(None));
    }
    assert_eq!(h.cooldown_until, Some(now() + S(300)));
    assert_eq!(h.consecutive_rate_limits, 40);
}

#[test]
fn retry_after_is_capped() {
    let h = after(CredentialHealth::default(), rate_limited(Some(86_400)));
    assert_eq!(h.cooldown_until, Some(now() + S(3600)));
}

#[test]
fn success_clears_cooldown_and_counters() {
    let h = after(after(after(CredentialHealth::default(), rate_limited(None)), Outcome::AuthFailed), Outcome::Success);
    assert_eq!(h.cooldown_until, None);
    assert_eq!((h.consecutive_rate_limits, h.consecutive_auth_failures, h.unhealthy), (0, 0, false));
    // The last failure stays visible for the dashboard.
    assert_eq!(h.last_failure, Some((now(), FailureKind::Auth)));
}

#[test]
fn auth_failures_mark_unhealthy_after_threshold() {
    let mut h = CredentialHealth::default();
    let mut states = Vec::new();
    for _ in 0..3 {
        h = after(h, Outcome::AuthFailed);
        states.push((h.consecutive_auth_failures, h.unhealthy));
    }
    assert_eq!(states, [(1, false), (2, false), (3, true)]);
    // Unhealthy outlasts the cooldown: still degraded an hour later.
    assert!(h.is_degraded(now() + S(3600)));
}

#[test]
fn rate_limit_clears_unhealthy() {
    let mut h = CredentialHealth::default();
    for _ in 0..3 {
        h = after(h, Outcome::AuthFailed);
    }
    let h = after(h, rate_limited(Some(1)));
    assert!(!h.unhealthy);
    assert_eq!(h.consecutive_auth_failures, 0);
}

#[test]
fn upstream_error_does_not_cool_key() {
    let h = after(CredentialHealth::default(), Outcome::UpstreamError);
    assert!(!h.is_degraded(now()));
    assert_eq!(h.last_failure, Some((now(), FailureKind::Upstream)));
}

#[test]
fn request_error_changes_nothing_but_last_used() {
    let h = after(CredentialHealth::default(), Outcome::RequestError);
    assert_eq!(h, CredentialHealth { last_used: Some(now()), ..CredentialHealth::default() });
}

#[test]
fn custom_policy_threshold() {
    let policy = HealthPolicy { unhealthy_after_auth_failures: 1, ..HealthPolicy::default() };
    let h = CredentialHealth::default().after(Outcome::AuthFailed, now(), &policy);
    assert!(h.unhealthy);
}

#[test]
fn health_table_keeps_byok_and_system_apart() {
    let mut t = HealthTable::new(HealthPolicy::default());
    let h = t.record(HealthKey::Byok("k1"), rate_limited(Some(10)), now());
    assert!(h.is_cooling(now()));
    assert_eq!(t.health(HealthKey::Byok("k1")), Some(h));
    assert_eq!(t.health(HealthKey::System(0)), None);
    t.record(HealthKey::System(0), Outcome::AuthFailed, now());
    assert_eq!(t.get(HealthKey::System(0)).map(|h| h.consecutive_auth_failures), Some(1));
    // Records accumulate.
    let h = t.record(HealthKey::Byok("k1"), rate_limited(None), now());
    assert_eq!(h.consecutive_rate_limits, 2);
    t.reset(HealthKey::Byok("k1"));
    assert_eq!(t.get(HealthKey::Byok("k1")), None);
    assert_eq!(NoHealth.health(HealthKey::Byok("k1")), None);
}

#[test]
fn health_table_set_replaces() {
    let mut t = HealthTable::default();
    t.set(HealthKey::Byok("k1"), CredentialHealth { unhealthy: true, ..CredentialHealth::default() });
    t.set(HealthKey::Byok("k1"), CredentialHealth::default());
    assert_eq!(t.get(HealthKey::Byok("k1")), Some(CredentialHealth::default()));
    assert_eq!(t.policy(), &HealthPolicy::default());
}

#[test]
fn quota_exhausted_parks_for_the_recheck_time_and_success_clears_it() {
    let h = after(CredentialHealth::default(), Outcome::QuotaExhausted);
    assert_eq!(h.quota_exhausted_until, Some(now() + S(3600)));
    assert!(h.is_parked(now() + S(3599)) && !h.is_parked(now() + S(3600)));
    assert_eq!(h.last_failure, Some((now(), FailureKind::QuotaExhausted)));
    // Parking is not a cooldown: a rate limit's Retry-After would have the key hammered again soon.
    assert_eq!(h.cooldown_until, None);
    let h = after(h, Outcome::Success);
    assert_eq!(h.quota_exhausted_until, None);
}

#[test]
fn quota_recheck_follows_the_policy() {
    let policy = HealthPolicy { quota_recheck: S(60), ..HealthPolicy::default() };
    let h = CredentialHealth::default().after(Outcome::QuotaExhausted, now(), &policy);
    assert_eq!(h.quota_exhausted_until, Some(now() + S(60)));
}

#[test]
fn a_failure_keeps_its_status() {
    let mut t = HealthTable::default();
    let h = t.record_status(HealthKey::Byok("k1"), Outcome::QuotaExhausted, Some(429), now());
    assert_eq!(h.last_failure_status, Some(429));
    let h = t.record_status(HealthKey::Byok("k1"), Outcome::Success, Some(200), now());
    assert_eq!(h.last_failure_status, Some(429), "a success leaves the last failure as it was");
}
