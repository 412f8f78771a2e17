//! A workspace's credits object (`/api/v1/credits` and the dashboard's usage page).

use crate::billing::usd;
use crate::state::SharedState;
use serde_json::{json, Value};

pub fn credits_json(state: &SharedState, ws: &str) -> Value {
    let b = state.billing.balance(ws, chrono::Utc::now().timestamp_millis());
    json!({
        // OpenRouter's SDK reads these two (USD); the remaining balance is their difference.
        "total_credits": usd(b.credits_micros),
        "total_usage": usd(b.usage_micros),
        "balance_micros": b.balance_micros,
        "used_this_month_micros": b.used_this_month_micros,
        "total_credits_micros": b.credits_micros,
        "total_usage_micros": b.usage_micros,
        "byok_requests_this_month": b.byok_requests_this_month,
        "byok_free_requests_per_month": state.billing.rules().byok_free_requests_per_month,
        "byok_fee_percent": state.billing.rules().byok_fee_percent,
        "credits_enabled": state.billing.credits_enabled(),
        "workspace_id": ws,
    })
}
