//! Admission: whether a request may go upstream, decided in memory before the first attempt,
//! in one fixed order — money first (credits, then spend budgets: a 402 is the more useful
//! answer when both apply), then rates (requests and tokens per minute, concurrency; the key's,
//! then its workspace's). What passes is held in an [`Admission`] until the answer ends.
//!
//! Each check owns its refusal ([`MoneyRefusal`] in billing, [`RateRefusal`] in limits); this
//! module only orders them. With `redis_url`, `cluster.rs` then takes the same checks from
//! counters every node shares, and keeps its hold here ([`Admission::shared`]).

use crate::billing::{has_budget, Estimate, MoneyRefusal, Reservation};
use crate::limits::{RateHeaders, RateHolds, RateRefusal};
use crate::state::AppState;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use keyway_core::pricing::Prices;
use keyway_core::route::RoutePlan;
use keyway_providers::RequestBody;
use keyway_store::ApiKeyRecord;

/// Why a request was refused before any upstream.
#[derive(Debug)]
pub enum Refusal {
    Money(MoneyRefusal),
    Rate(RateRefusal),
    /// 503: the shared counters are unreachable and `[cluster] fail_closed` is set.
    Unavailable(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Money(MoneyRefusal::Payment(_)) => 402,
            Refusal::Money(MoneyRefusal::OverBudget { .. }) | Refusal::Rate(_) => 429,
            Refusal::Unavailable(_) => 503,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Money(r) => r.into_response(),
            Refusal::Rate(r) => r.into_response(),
            Refusal::Unavailable(m) => crate::error::ApiError::Unavailable(m).into_response(),
        }
    }
}

/// What a request holds while it runs: the money reserved against credits and budgets, its
/// concurrency slots and token reservations. Dropping it (when the response, or the stream,
/// ends) frees them; the real charge is settled by then.
#[derive(Debug, Default)]
pub struct Admission {
    rates: RateHolds,
    money: Option<Reservation>,
    /// What the request asked for (the shared counters take the same, `cluster.rs`).
    pub demand: Demand,
    /// Its share of the counters nodes share in Redis, when they do.
    pub shared: Option<keyway_store::shared::Hold>,
}

impl Admission {
    /// Corrects the token reservations with what the upstream reported.
    pub fn settle_tokens(&mut self, actual: u64) {
        self.rates.settle_tokens(actual);
        if let Some(s) = self.shared.as_mut() {
            s.settle_tokens(actual);
        }
    }

    /// Gives back this node's rate cells for a request refused after all (by the shared
    /// counters), so that the node's own counters track what was admitted.
    pub fn give_back(&mut self) {
        self.rates.give_back();
    }

    /// Writes the response's `x-ratelimit-*` headers.
    pub fn write_rate_headers(&self, h: &mut HeaderMap) {
        self.rates.rates.write(h);
    }

    pub fn rate_headers(&self) -> &RateHeaders {
        &self.rates.rates
    }
}

/// What admission needs to know about a request before it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    pub prompt_tokens: u64,
    pub max_output_tokens: u64,
    /// The most the request could charge to credits and count toward budgets
    /// (see [`crate::billing::Ledger::estimate`]).
    pub money: Estimate,
}

/// Checks every limit of `key` and of its workspace, money then rates, and reserves the
/// request's share, or refuses. No database query.
pub fn admit(state: &AppState, key: &ApiKeyRecord, demand: &Demand) -> Result<Admission, Refusal> {
    let ws_limits = state.limiter.workspace_limits(&key.workspace_id);
    let mut adm = Admission { demand: *demand, ..Admission::default() };
    if money_applies(state, key) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        adm.money = Some(
            state
                .billing
                .reserve(key, ws_limits, demand.money, now_ms)
                .map_err(Refusal::Money)?,
        );
    }
    let tokens = demand
        .prompt_tokens
        .saturating_add(demand.max_output_tokens);
    adm.rates = state.limiter.take(key, tokens).map_err(Refusal::Rate)?;
    Ok(adm)
}

/// [`admit`] for an inference request about to walk `route`. The token and money estimates are
/// only computed when a tokens-per-minute limit, a budget or credits need them.
pub fn admit_request(
    state: &AppState,
    key: &ApiKeyRecord,
    body: &RequestBody,
    route: &RoutePlan<'_>,
) -> Result<Admission, Refusal> {
    let money = money_applies(state, key);
    let (prompt_tokens, max_output_tokens) = if money || state.limiter.counts_tokens(key) {
        crate::estimate::demand_of_body(body)
    } else {
        (0, 0)
    };
    let estimate = if money {
        let attempts = route.attempts.iter().map(|a| {
            (
                a.endpoint.map(Prices::from).unwrap_or_default(),
                a.credential.is_byok(),
            )
        });
        state.billing.estimate(
            &key.workspace_id,
            prompt_tokens,
            max_output_tokens,
            attempts,
            chrono::Utc::now().timestamp_millis(),
        )
    } else {
        Estimate::default()
    };
    admit(
        state,
        key,
        &Demand {
            prompt_tokens,
            max_output_tokens,
            money: estimate,
        },
    )
}

/// Credits are on, or the key or its workspace has a spend budget.
fn money_applies(state: &AppState, key: &ApiKeyRecord) -> bool {
    state.billing.credits_enabled()
        || has_budget(&key.limits)
        || state
            .limiter
            .workspace_limits(&key.workspace_id)
            .is_some_and(has_budget)
}
