//! This node's view of credential health (cooldowns, broken keys), shared by all requests.

use keyway_core::route::{CredentialHealth, HealthKey, HealthSource, HealthTable, Outcome};
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
    pub fn record(&self, key: HealthKey<'_>, outcome: Outcome) -> CredentialHealth {
        self.table.write().unwrap_or_else(|p| p.into_inner()).record(key, outcome, SystemTime::now())
    }

    pub fn reset(&self, id: &str) {
        self.table.write().unwrap_or_else(|p| p.into_inner()).reset(HealthKey::Byok(id));
    }

    pub fn get(&self, key: HealthKey<'_>) -> Option<CredentialHealth> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).get(key)
    }

    /// `health` as `GET /api/v1/byok/{id}` shows it.
    pub fn snapshot(&self, id: &str) -> Value {
        let h = self.get(HealthKey::Byok(id)).unwrap_or_default();
        let now = SystemTime::now();
        json!({
            "status": if h.unhealthy { "unhealthy" } else if h.is_cooling(now) { "cooling_down" } else { "ok" },
            "last_used_at": h.last_used.map(ts),
            "last_success_at": h.last_success.map(ts),
            "last_error": h.last_failure.map(|(at, kind)| json!({"at": ts(at), "kind": kind.as_str()})),
            "cooldown_until": h.cooldown_until.filter(|t| *t > now).map(ts),
            "consecutive_auth_failures": h.consecutive_auth_failures,
        })
    }
}

impl HealthSource for HealthBoard {
    fn health(&self, key: HealthKey<'_>) -> Option<CredentialHealth> {
        self.get(key)
    }
}
