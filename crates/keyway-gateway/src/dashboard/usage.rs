//! Usage: requests, tokens, cost, BYOK share and fees per day as charts (uPlot), and tables by
//! model, provider, provider key and API key: the activity store query `GET /api/v1/activity`
//! runs. Credits balance (`credits_json`) and, for admins, top-ups through `POST /api/v1/credits`.

use super::byok::{all_byok, all_keys};
use super::layout::{self, json_script, Nav};
use super::{can_top_up, scope, signed_in, PageError};
use crate::render::credits_json;
use crate::state::SharedState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use keyway_core::pricing::{day_of, day_start_ms};
use keyway_store::{ActivityGroup, ActivityRow};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

const RANGES: [i64; 3] = [7, 30, 90];

#[derive(Debug, Deserialize, Default)]
pub struct UsageQuery {
    days: Option<i64>,
}

fn table(title: &str, id: &str, label: &str, rows: &[ActivityRow], name: impl Fn(&ActivityRow) -> String) -> Markup {
    let mut rows: Vec<&ActivityRow> = rows.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.requests));
    html! {
        section.card.half aria-labelledby=(id) {
            h2 id=(id) { (title) }
            @if rows.is_empty() { p.empty-line { "No requests in this period." } }
            @else {
                div.table-wrap { table.data {
                    thead { tr {
                        th scope="col" { (label) } th scope="col" .num { "Requests" } th scope="col" .num { "BYOK" }
                        th scope="col" .num { "Tokens" } th scope="col" .num { "Cost" } th scope="col" .num { "Fees" }
                    } }
                    tbody { @for r in rows { tr {
                        td.nowrap { (name(r)) }
                        td.num { (layout::count(r.requests)) }
                        td.num { (layout::count(r.byok_requests)) }
                        td.num { (layout::count(r.prompt_tokens + r.completion_tokens)) }
                        td.num { (layout::money(r.cost_micros)) }
                        td.num { (layout::money(r.fee_micros)) }
                    } } }
                } }
            }
        }
    }
}

pub async fn page(State(state): State<SharedState>, headers: HeaderMap, Query(q): Query<UsageQuery>) -> Result<Response, PageError> {
    let s = signed_in(&state, &headers).await?;
    let days = q.days.filter(|d| RANGES.contains(d)).unwrap_or(30);
    let ws = scope(&s);
    let now = chrono::Utc::now().timestamp_millis();
    let today = day_of(now);
    let from = day_start_ms(today - days + 1);
    let to = now + 1;
    let by_day = state.store.activity(ws, from, to, ActivityGroup::Day).await?;
    let by_model = state.store.activity(ws, from, to, ActivityGroup::Model).await?;
    let by_provider = state.store.activity(ws, from, to, ActivityGroup::Provider).await?;
    let by_cred = state.store.activity(ws, from, to, ActivityGroup::Credential).await?;
    let by_key = state.store.activity(ws, from, to, ActivityGroup::Key).await?;
    let cred_names: HashMap<String, String> = all_byok(&state, ws).await?.into_iter().map(|c| (c.id, c.name)).collect();
    let key_names: HashMap<String, String> = all_keys(&state, ws).await?.into_iter().map(|k| (k.hash, k.name)).collect();

    // Every day of the range, zero where nothing ran (the chart's x axis in Unix seconds).
    let per_day: HashMap<i64, &ActivityRow> = by_day.iter().map(|r| (r.day, r)).collect();
    let mut series = json!({"x": [], "requests": [], "tokens": [], "cost": [], "fees": [], "byok_share": []});
    for d in (today - days + 1)..=today {
        let r = per_day.get(&d);
        let get = |f: fn(&ActivityRow) -> i64| r.map_or(0, |r| f(r));
        let push = |series: &mut serde_json::Value, k: &str, v: serde_json::Value| {
            if let Some(a) = series[k].as_array_mut() {
                a.push(v);
            }
        };
        push(&mut series, "x", json!(day_start_ms(d) / 1000));
        push(&mut series, "requests", json!(get(|r| r.requests)));
        push(&mut series, "tokens", json!(get(|r| r.prompt_tokens + r.completion_tokens)));
        push(&mut series, "cost", json!(get(|r| r.cost_micros) as f64 / 1e6));
        push(&mut series, "fees", json!(get(|r| r.fee_micros) as f64 / 1e6));
        let (req, byok) = (get(|r| r.requests), get(|r| r.byok_requests));
        push(&mut series, "byok_share", if req > 0 { json!((byok as f64) * 100.0 / req as f64) } else { serde_json::Value::Null });
    }
    let total = by_day.iter().fold(ActivityRow::default(), |mut t, r| {
        t.requests += r.requests;
        t.byok_requests += r.byok_requests;
        t.prompt_tokens += r.prompt_tokens;
        t.completion_tokens += r.completion_tokens;
        t.cost_micros += r.cost_micros;
        t.fee_micros += r.fee_micros;
        t
    });
    let share = if total.requests > 0 { format!("{:.0}%", total.byok_requests as f64 * 100.0 / total.requests as f64) } else { "—".into() };
    let credits = credits_json(&state, &s.key.workspace_id);
    let top_up = can_top_up(&s.key);
    let body = html! {
        div.page-head {
            div {
                h1 { "Usage" }
                p.lead { "What your requests used and cost over the last " (days) " days (UTC). Cost is the catalog price; BYOK traffic is paid to the provider with your key, plus Keyway's fee when one is set." }
            }
            nav.toolbar aria-label="Period" {
                @for d in RANGES {
                    a.btn.small.active[d == days] href={ "/usage?days=" (d) } aria-current=[(d == days).then_some("page")] { (d) " days" }
                }
            }
        }
        div.tiles {
            div.tile { span.tile-label { "Requests" } span.tile-value { (layout::count(total.requests)) } }
            div.tile { span.tile-label { "Tokens" } span.tile-value { (layout::count(total.prompt_tokens + total.completion_tokens)) } }
            div.tile { span.tile-label { "Cost" } span.tile-value { (layout::money(total.cost_micros)) } }
            div.tile { span.tile-label { "BYOK share" } span.tile-value { (share) } }
            div.tile { span.tile-label { "BYOK fees" } span.tile-value { (layout::money(total.fee_micros)) } }
        }
        div.charts {
            figure.card.chart { figcaption #c-req-t { "Requests per day" } div.plot #chart-requests role="img" aria-labelledby="c-req-t" {} }
            figure.card.chart { figcaption #c-tok-t { "Tokens per day" } div.plot #chart-tokens role="img" aria-labelledby="c-tok-t" {} }
            figure.card.chart { figcaption #c-cost-t { "Cost and fees per day (USD)" } div.plot #chart-cost role="img" aria-labelledby="c-cost-t" {} }
            figure.card.chart { figcaption #c-byok-t { "BYOK share of requests (%)" } div.plot #chart-byok role="img" aria-labelledby="c-byok-t" {} }
        }
        div.halves {
            (table("By model", "t-model", "Model", &by_model, |r| r.model.clone()))
            (table("By provider", "t-provider", "Provider", &by_provider, |r| keyway_core::ProviderSlug::parse_alias(&r.provider).map_or_else(|| if r.provider.is_empty() { "none (refused)".to_owned() } else { r.provider.clone() }, |p| p.display_name().to_owned())))
            (table("By provider key", "t-cred", "Provider key", &by_cred, |r| match r.credential_id.as_str() {
                "" => "none (refused)".to_owned(),
                "system" => "system key".to_owned(),
                id => cred_names.get(id).cloned().unwrap_or_else(|| format!("{id} (deleted)")),
            }))
            (table("By API key", "t-key", "API key", &by_key, |r| key_names.get(&r.api_key_hash).cloned().unwrap_or_else(|| format!("key {}…", r.api_key_hash.get(..8).unwrap_or(&r.api_key_hash)))))
        }
        section.card aria-labelledby="credits-title" {
            h2 #credits-title { "Credits" }
            @if credits["credits_enabled"] == true {
                p { "Balance: " strong #credit-balance { (layout::money(credits["balance_micros"].as_i64().unwrap_or(0))) }
                    " · used this month: " (layout::money(credits["used_this_month_micros"].as_i64().unwrap_or(0))) }
            } @else {
                p.muted { "Credits are off on this server (" code { "[billing] credits_enabled = false" } "): requests are not charged against a balance. Balance: " (layout::money(credits["balance_micros"].as_i64().unwrap_or(0))) "." }
            }
            p.hint { "BYOK requests this month: " (layout::count(credits["byok_requests_this_month"].as_i64().unwrap_or(0))) " of " (layout::count(credits["byok_free_requests_per_month"].as_i64().unwrap_or(0))) " free; then a fee of " (credits["byok_fee_percent"]) "% of the catalog price." }
            @if top_up {
                form #topup-form.inline-form novalidate {
                    div.field {
                        label for="topup-amount" { "Top up (USD)" }
                        input #topup-amount name="amount" type="number" min="0.01" step="0.01" required inputmode="decimal";
                    }
                    div.field {
                        label for="topup-note" { "Note" }
                        input #topup-note name="note" type="text" maxlength="500" autocomplete="off" placeholder="optional";
                    }
                    button.btn.primary type="submit" { "Add credits" }
                    div.alert.error #topup-error role="alert" hidden {}
                }
            }
        }
        (json_script("usage-data", &series))
    };
    Ok(layout::page("Usage", Nav::Usage, &s, body, &["uPlot.iife.min.js", "usage.js"], &["uPlot.min.css"]))
}
