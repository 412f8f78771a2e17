//! This node's view of credential health (cooldowns, broken keys), shared by all requests.
//! With `redis_url`, a cooldown or a broken key learnt here is told to the other nodes
//! ([`HealthBoard::share`], `cluster.rs`) and theirs are merged in ([`HealthBoard::merge_remote`]).

use keyway_core::route::{CredentialHealth, HealthKey, HealthPolicy, HealthSource, HealthTable, Outcome};
use serde_json::{json, Value};
use std::sync::RwLock;
use std::time::SystemTime;

#[derive(Debug, Default)]
pub struct HealthBoard {
    table: RwLock<HealthTable>,
    /// Where cooldowns learnt here go, for the other nodes (encoded by [`encode`]).
    outbox: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// `b|<credential id>|<cooldown until, unix ms>|<unhealthy 0/1>` (`s|<index>|...` for a system credential).
fn encode(key: HealthKey<'_>, h: &CredentialHealth) -> String {
    let until = h.cooldown_until.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis());
    let unhealthy = u8::from(h.unhealthy);
    match key {
        HealthKey::Byok(id) => format!("b|{id}|{until}|{unhealthy}"),
        HealthKey::System(i) => format!("s|{i}|{until}|{unhealthy}"),
    }
}

fn ts(t: SystemTime) -> Value {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    Value::String(dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl HealthBoard {
    pub fn new(policy: HealthPolicy) -> Self {
        Self { table: RwLock::new(HealthTable::new(policy)), outbox: std::sync::OnceLock::new() }
    }

    pub fn record(&self, key: HealthKey<'_>, outcome: Outcome) -> CredentialHealth {
        self.record_status(key, outcome, None)
    }

    /// As [`HealthBoard::record`], keeping the upstream's HTTP status of a failure (for `health`).
    pub fn record_status(&self, key: HealthKey<'_>, outcome: Outcome, status: Option<u16>) -> CredentialHealth {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        let before = table.get(key).unwrap_or_default();
        let after = table.record_status(key, outcome, status, SystemTime::now());
        drop(table);
        if let Some(tx) = self.outbox.get() {
            // Only news: a new or longer cooldown, or a key found broken.
            if (after.cooldown_until.is_some() && after.cooldown_until != before.cooldown_until) || (after.unhealthy && !before.unhealthy) {
                let _ = tx.send(encode(key, &after));
            }
        }
        after
    }

    /// Sends cooldowns and broken keys learnt from now on to `tx` (once).
    pub fn share(&self, tx: tokio::sync::mpsc::UnboundedSender<String>) {
        let _ = self.outbox.set(tx);
    }

    /// Applies what another node learnt (from [`encode`]): the later cooldown wins. Malformed
    /// input is ignored.
    pub fn merge_remote(&self, payload: &str) {
        let mut parts = payload.split('|');
        let (Some(kind), Some(id), Some(until), Some(unhealthy)) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return };
        let Ok(until) = until.parse::<u64>() else { return };
        let index;
        let key = match kind {
            "b" => HealthKey::Byok(id),
            "s" => {
                let Ok(i) = id.parse::<usize>() else { return };
                index = i;
                HealthKey::System(index)
            }
            _ => return,
        };
        let until = (until > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(until));
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        let mut h = table.get(key).unwrap_or_default();
        h.cooldown_until = h.cooldown_until.max(until);
        h.unhealthy |= unhealthy == "1";
        table.set(key, h);
    }

    pub fn reset(&self, id: &str) {
        self.table.write().unwrap_or_else(|p| p.into_inner()).reset(HealthKey::Byok(id));
    }

    pub fn get(&self, key: HealthKey<'_>) -> Option<CredentialHealth> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).get(key)
    }

    /// `health` as `GET /api/v1/byok/{id}` shows it.
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
