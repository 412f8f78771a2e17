//! This node's view of credential health (cooldowns, broken keys, keys out of quota), shared by
//! all requests: the same board the router plans with is what `GET /api/v1/byok` shows.

use keyway_core::route::{CredentialHealth, HealthKey, HealthPolicy, HealthSource, HealthTable, Outcome};
use serde_json::{json, Value};
use std::sync::RwLock;
use std::time::SystemTime;

#[derive(Debug, Default)]
pub struct HealthBoard {
    table: RwLock<HealthTable>,
}

fn ts(t: SystemTime) -> Value {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    Value::String(dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl HealthBoard {
    pub fn new(policy: HealthPolicy) -> Self {
        Self { table: RwLock::new(HealthTable::new(policy)) }
    }

    pub fn record(&self, key: HealthKey<'_>, outcome: Outcome) -> CredentialHealth {
        self.table.write().unwrap_or_else(|p| p.into_inner()).record(key, outcome, SystemTime::now())
    }

    /// As [`HealthBoard::record`], keeping the upstream's HTTP status of a failure.
    pub fn record_status(&self, key: HealthKey<'_>, outcome: Outcome, status: Option<u16>) -> CredentialHealth {
        self.table.write().unwrap_or_else(|p| p.into_inner()).record_status(key, outcome, status, SystemTime::now())
    }

    pub fn reset(&self, id: &str) {
        self.table.write().unwrap_or_else(|p| p.into_inner()).reset(HealthKey::Byok(id));
    }

    pub fn get(&self, key: HealthKey<'_>) -> Option<CredentialHealth> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).get(key)
    }

    /// `health` as `GET /api/v1/byok` shows it for each credential.
    pub fn snapshot(&self, id: &str) -> Value {
        snapshot_of(&self.get(HealthKey::Byok(id)).unwrap_or_default(), SystemTime::now())
    }
}

/// `status` (`ok`, `cooling_down`, `unhealthy`, `quota_exhausted`) is what the router does with
/// the key; `state` (`ok`, `cooling`, `quota_exhausted`, `failing`) adds whether its last attempt
/// failed, and `until` when the state ends (a cooldown, or a parked key's recheck).
pub fn snapshot_of(h: &CredentialHealth, now: SystemTime) -> Value {
    let parked = h.is_parked(now);
    let cooling = h.is_cooling(now);
    let status = if parked {
        "quota_exhausted"
    } else if h.unhealthy {
        "unhealthy"
    } else if cooling {
        "cooling_down"
    } else {
        "ok"
    };
    let last_failed = match (h.last_failure, h.last_success) {
        (Some((failed, _)), Some(succeeded)) => failed > succeeded,
        (Some(_), None) => true,
        _ => false,
    };
    let (state, until) = if parked {
        ("quota_exhausted", h.quota_exhausted_until)
    } else if h.unhealthy {
        ("failing", None)
    } else if cooling {
        ("cooling", h.cooldown_until)
    } else if last_failed {
        ("failing", None)
    } else {
        ("ok", None)
    };
    json!({
        "status": status,
        "state": state,
        "until": until.map(ts),
        "last_used_at": h.last_used.map(ts),
        "last_success_at": h.last_success.map(ts),
        "last_error": h.last_failure.map(|(at, kind)| json!({"at": ts(at), "kind": kind.as_str(), "status": h.last_failure_status})),
        "cooldown_until": h.cooldown_until.filter(|t| *t > now).map(ts),
        "quota_exhausted_until": h.quota_exhausted_until.filter(|t| *t > now).map(ts),
        "consecutive_auth_failures": h.consecutive_auth_failures,
    })
}

impl HealthSource for HealthBoard {
    fn health(&self, key: HealthKey<'_>) -> Option<CredentialHealth> {
        self.get(key)
    }
}
