//! This node's view of credential health (cooldowns, broken keys, keys parked out of quota), shared
//! by all requests. With `redis_url`, a cooldown, a broken or a parked key learnt here is told to the other nodes
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

/// `b|<credential id>|<cooldown until, unix ms>|<unhealthy 0/1>|<parked until, unix ms>`
/// (`s|<index>|...` for a system credential).
fn encode(key: HealthKey<'_>, h: &CredentialHealth) -> String {
    let ms = |t: Option<SystemTime>| t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis());
    let (until, parked) = (ms(h.cooldown_until), ms(h.quota_exhausted_until));
    let unhealthy = u8::from(h.unhealthy);
    match key {
        HealthKey::Byok(id) => format!("b|{id}|{until}|{unhealthy}|{parked}"),
        HealthKey::System(i) => format!("s|{i}|{until}|{unhealthy}|{parked}"),
    }
}

fn from_ms(ms: u64) -> Option<SystemTime> {
    (ms > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
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
            // Only news: a new or longer cooldown, a key found broken, or a key parked (out of quota).
            if (after.cooldown_until.is_some() && after.cooldown_until != before.cooldown_until)
                || (after.unhealthy && !before.unhealthy)
                || (after.quota_exhausted_until.is_some() && after.quota_exhausted_until != before.quota_exhausted_until)
            {
                let _ = tx.send(encode(key, &after));
            }
        }
        after
    }

    /// Sends cooldowns and broken keys learnt from now on to `tx` (once).
    pub fn share(&self, tx: tokio::sync::mpsc::UnboundedSender<String>) {
        let _ = self.outbox.set(tx);
    }

    /// Applies what another node learnt (from [`encode`]): the later cooldown and the later
    /// parking win; `r|id` is an owner's reset (key replaced, re-enabled or deleted). Malformed
    /// input is ignored.
    pub fn merge_remote(&self, payload: &str) {
        let mut parts = payload.split('|');
        if let (Some("r"), Some(id)) = (parts.clone().next(), parts.clone().nth(1)) {
            self.table.write().unwrap_or_else(|p| p.into_inner()).reset(HealthKey::Byok(id));
            return;
        }
        let (Some(kind), Some(id), Some(until), Some(unhealthy)) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return };
        let Ok(until) = until.parse::<u64>() else { return };
        // Absent from a node that predates parking.
        let parked = parts.next().and_then(|p| p.parse::<u64>().ok()).and_then(from_ms);
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
        let until = from_ms(until);
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        let mut h = table.get(key).unwrap_or_default();
        h.cooldown_until = h.cooldown_until.max(until);
        h.unhealthy |= unhealthy == "1";
        h.quota_exhausted_until = h.quota_exhausted_until.max(parked);
        table.set(key, h);
    }

    /// An owner's fresh start for a key (replaced, re-enabled, deleted), on every node.
    pub fn reset(&self, id: &str) {
        self.table.write().unwrap_or_else(|p| p.into_inner()).reset(HealthKey::Byok(id));
        if let Some(tx) = self.outbox.get() {
            let _ = tx.send(format!("r|{id}"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes' boards wired as `cluster.rs` wires them (A's outbox into B's merge).
    fn relay(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, to: &HealthBoard) -> usize {
        let mut n = 0;
        while let Ok(m) = rx.try_recv() {
            to.merge_remote(&m);
            n += 1;
        }
        n
    }

    #[test]
    fn a_parked_key_and_its_reset_reach_the_other_node() {
        let (a, b) = (HealthBoard::new(HealthPolicy::default()), HealthBoard::new(HealthPolicy::default()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        a.share(tx);
        a.record_status(HealthKey::Byok("k1"), Outcome::QuotaExhausted, Some(429));
        assert_eq!(relay(&mut rx, &b), 1);
        let now = SystemTime::now();
        assert!(b.get(HealthKey::Byok("k1")).is_some_and(|h| h.is_parked(now)), "B skips a key A found out of quota");
        assert_eq!(snapshot_of(&b.get(HealthKey::Byok("k1")).unwrap_or_default(), now)["state"], "quota_exhausted");
        // The same news twice is not sent twice.
        a.record_status(HealthKey::Byok("k1"), Outcome::RateLimited { retry_after: None }, Some(429));
        a.reset("k1");
        relay(&mut rx, &b);
        assert!(!b.get(HealthKey::Byok("k1")).unwrap_or_default().is_parked(SystemTime::now()), "an owner's re-enable on A frees it on B");
    }

    #[test]
    fn a_message_from_an_older_node_still_merges() {
        let b = HealthBoard::new(HealthPolicy::default());
        let until = SystemTime::now() + std::time::Duration::from_secs(60);
        let ms = until.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        b.merge_remote(&format!("b|k2|{ms}|0"));
        assert!(b.get(HealthKey::Byok("k2")).is_some_and(|h| h.cooldown_until.is_some() && !h.is_parked(SystemTime::now())));
        for junk in ["", "r", "x|k|1|0", "b|k|nan|0", "b|k|1|0|nan"] {
            b.merge_remote(junk);
        }
    }
}
