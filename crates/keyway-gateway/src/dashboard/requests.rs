//! Requests: the newest generations, filterable; one request's page with its attempts in order
//! (provider, credential, status, latency, why it moved on). Read through `generation_json`, the
//! object `GET /api/v1/generation` returns.

use super::byok::{all_byok, all_keys};
use super::layout::{self, Nav};
use super::{scope, signed_in, PageError};
use crate::render::generation_json;
use crate::state::SharedState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use keyway_core::ProviderSlug;
use keyway_store::{GenerationFilter, GenerationRow};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

const LIST_LIMIT: i64 = 200;

#[derive(Debug, Deserialize, Default)]
pub struct Filters {
    model: Option<String>,
    provider: Option<String>,
    key: Option<String>,
    credential: Option<String>,
    status: Option<String>,
    fallback: Option<String>,
}

/// Names for ids on these pages: provider keys by id, API keys by hash.
struct Names {
    creds: HashMap<String, String>,
    keys: HashMap<String, String>,
}

impl Names {
    async fn load(state: &SharedState, scope: Option<&str>) -> Result<Self, PageError> {
        let creds = all_byok(state, scope).await?.into_iter().map(|c| (c.id, c.name)).collect();
        let keys = all_keys(state, scope).await?.into_iter().map(|k| (k.hash, k.name)).collect();
        Ok(Self { creds, keys })
    }

    fn credential(&self, id: &str) -> String {
        match id {
            "" => "—".into(),
            "system" => "system key".into(),
            other => self.creds.get(other).cloned().unwrap_or_else(|| format!("{other} (deleted)")),
        }
    }

    fn key(&self, hash: &str) -> String {
        self.keys.get(hash).cloned().unwrap_or_else(|| format!("key {}…", hash.get(..8).unwrap_or(hash)))
    }
}

fn status_badge(status: i64) -> Markup {
    html! {
        @if status == 200 { span.badge.ok { "200" } }
        @else if status == 0 { span.badge.muted { "—" } }
        @else { span.badge.bad { (status) } }
    }
}

fn attempts_of(g: &GenerationRow) -> Vec<Value> {
    serde_json::from_str(&g.attempts).unwrap_or_default()
}

fn provider_name(slug: &str) -> String {
    ProviderSlug::parse_alias(slug).map_or_else(|| slug.to_owned(), |p| p.display_name().to_owned())
}

pub async fn list(State(state): State<SharedState>, headers: HeaderMap, Query(f): Query<Filters>) -> Result<Response, PageError> {
    let s = signed_in(&state, &headers).await?;
    let names = Names::load(&state, scope(&s)).await?;
    let nonempty = |o: &Option<String>| o.clone().filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_owned());
    let filter = GenerationFilter {
        model: nonempty(&f.model),
        provider: nonempty(&f.provider),
        api_key_hash: nonempty(&f.key),
        credential_id: nonempty(&f.credential),
        succeeded: match f.status.as_deref() {
            Some("ok") => Some(true),
            Some("failed") => Some(false),
            _ => None,
        },
        fell_back: f.fallback.as_deref() == Some("1"),
    };
    let rows = state.store.recent_generations(scope(&s), &filter, LIST_LIMIT).await?;
    let mut key_opts: Vec<(&String, &String)> = names.keys.iter().collect();
    key_opts.sort_by(|a, b| a.1.cmp(b.1));
    let body = html! {
        div.page-head { div {
            h1 { "Requests" }
            p.lead { "The newest " (LIST_LIMIT) " requests (recorded a moment after each ends). Open one to see every attempt and why Keyway moved on." }
        } }
        form.card.filters method="get" action="/requests" aria-label="Filter requests" {
            div.field { label for="q-model" { "Model" } input #q-model name="model" type="text" value=[filter.model.as_deref()] placeholder="any"; }
            div.field { label for="q-provider" { "Provider" }
                select #q-provider name="provider" {
                    option value="" { "any" }
                    @for p in ProviderSlug::ALL { option value=(p.as_str()) selected[filter.provider.as_deref() == Some(p.as_str())] { (p.display_name()) } }
                }
            }
            div.field { label for="q-key" { "API key" }
                select #q-key name="key" {
                    option value="" { "any" }
                    @for (hash, name) in &key_opts { option value=(hash) selected[filter.api_key_hash.as_deref() == Some(hash.as_str())] { (name) } }
                }
            }
            div.field { label for="q-status" { "Result" }
                select #q-status name="status" {
                    option value="" { "any" }
                    option value="ok" selected[filter.succeeded == Some(true)] { "answered" }
                    option value="failed" selected[filter.succeeded == Some(false)] { "failed" }
                }
            }
            label.check { input type="checkbox" name="fallback" value="1" checked[filter.fell_back]; span { "Fell back" } }
            @if let Some(c) = &filter.credential_id { input type="hidden" name="credential" value=(c); }
            div.filter-actions {
                button.btn.primary type="submit" { "Filter" }
                a.btn.ghost href="/requests" { "Clear" }
            }
        }
        section.card aria-labelledby="req-title" {
            h2 #req-title { "Recent requests " span.count { (rows.len()) } }
            @if rows.is_empty() {
                p.empty-line { "No requests match. Send one to " code { "/v1/chat/completions" } " with an API key and it appears here." }
            } @else {
                div.table-wrap { table.data {
                    thead { tr {
                        th scope="col" { "Time" } th scope="col" { "Model" } th scope="col" { "Provider" } th scope="col" { "Key used" }
                        th scope="col" { "API key" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" .num { "Tokens" }
                        th scope="col" .num { "Cost" } th scope="col" .num { "Latency" }
                    } }
                    tbody {
                        @for g in &rows {
                            @let n = attempts_of(g).len();
                            tr {
                                td { a href={ "/requests/" (g.id) } { (layout::time(g.created_at)) } }
                                td { code { (g.model.as_deref().unwrap_or(&g.requested_model)) } }
                                td { (g.provider.as_deref().map(provider_name).unwrap_or_else(|| "—".into())) }
                                td { (names.credential(g.credential_id.as_deref().unwrap_or(""))) }
                                td { (names.key(&g.api_key_hash)) }
                                td { (status_badge(g.status)) }
                                td { (n) @if n > 1 { " " span.badge.warn { "fell back" } } }
                                td.num { (layout::count(g.prompt_tokens + g.completion_tokens)) }
                                td.num { (layout::money(g.cost_micros + g.fee_micros)) }
                                td.num { (g.latency_ms) " ms" }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(layout::page("Requests", Nav::Requests, &s, body, &[], &[]))
}

/// Why an attempt didn't serve the request, in words.
fn why(a: &Value) -> String {
    let class = a["error"].as_str().unwrap_or("");
    let reason = match class {
        "" => return String::new(),
        "rate_limited" => "rate-limited by the provider (429): moved on to the next key",
        "auth" => "the provider refused the key (401/403): moved on",
        "upstream_5xx" => "the provider failed (5xx): moved on",
        "timeout" => "timed out: moved on",
        "connect" => "could not connect: moved on",
        "bad_request" => "the provider refused the request (4xx): not retried elsewhere",
        other => other,
    };
    match a["message"].as_str() {
        Some(m) if !m.is_empty() => format!("{reason} — {m}"),
        _ => reason.to_owned(),
    }
}

pub async fn detail(State(state): State<SharedState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, PageError> {
    let s = signed_in(&state, &headers).await?;
    let g = match state.store.get_generation(scope(&s), &id).await {
        Ok(g) => g,
        Err(keyway_store::StoreError::NotFound) => return Err(super::not_found("request")),
        Err(e) => return Err(e.into()),
    };
    let names = Names::load(&state, scope(&s)).await?;
    let v = generation_json(&g);
    let attempts = attempts_of(&g);
    let body = html! {
        p.crumbs { a href="/requests" { "← Requests" } }
        div.page-head { div {
            h1 { "Request " code { (g.id) } }
            p.lead { (layout::time(g.created_at)) " · " (names.key(&g.api_key_hash)) }
        } }
        section.card aria-labelledby="sum-title" {
            h2 #sum-title { "Summary" }
            dl.summary {
                div { dt { "Requested model" } dd { code { (g.requested_model) } } }
                div { dt { "Served by" } dd { @match &g.provider { Some(p) => { (provider_name(p)) " · " code { (g.model.as_deref().unwrap_or("")) } }, None => span.muted { "nothing served it" } } } }
                div { dt { "Key used" } dd { (names.credential(g.credential_id.as_deref().unwrap_or(""))) @if g.is_byok { " " span.badge.org { "BYOK" } } } }
                div { dt { "Status" } dd { (status_badge(g.status)) } }
                div { dt { "Latency" } dd { (g.latency_ms) " ms" @if let Some(t) = g.ttft_ms { " (first token " (t) " ms)" } } }
                div { dt { "Tokens" } dd { (layout::count(g.prompt_tokens)) " in · " (layout::count(g.completion_tokens)) " out" @if g.cached_tokens > 0 { " · " (layout::count(g.cached_tokens)) " cached" } } }
                div { dt { "Cost" } dd { (layout::money(g.cost_micros)) @if g.fee_micros > 0 { " + " (layout::money(g.fee_micros)) " fee" } } }
                div { dt { "Streamed" } dd { @if g.streamed { "yes" } @else { "no" } } }
                @if let Some(r) = v["finish_reason"].as_str() { div { dt { "Finish reason" } dd { (r) } } }
            }
        }
        section.card aria-labelledby="att-title" {
            h2 #att-title { "Attempts, in order " span.count { (attempts.len()) } }
            @if attempts.is_empty() {
                p.empty-line { "No attempt was made (the request was refused before routing: its status says why)." }
            } @else {
                ol.attempts {
                    @for (i, a) in attempts.iter().enumerate() {
                        @let ok = a["status"].as_u64() == Some(200);
                        li.attempt.ok[ok].failed[!ok] {
                            div.attempt-head {
                                span.attempt-n { "Attempt " (i + 1) }
                                strong { (provider_name(a["provider"].as_str().unwrap_or(""))) }
                                code { (a["model"].as_str().unwrap_or("")) }
                                span { "with " (names.credential(a["credential_id"].as_str().unwrap_or(""))) }
                                (status_badge(a["status"].as_i64().unwrap_or(0)))
                                span.muted { (a["latency_ms"].as_u64().unwrap_or(0)) " ms" }
                            }
                            @if !ok { p.why { (why(a)) } }
                            @else { p.why { "Served the request." } }
                        }
                    }
                }
            }
            p.hint { "The attempts are the route plan as it was walked: Keyway records each attempt it made, in order; keys it planned but never needed to try are not recorded." }
        }
    };
    Ok(layout::page("Request", Nav::Requests, &s, body, &[], &[]))
}
