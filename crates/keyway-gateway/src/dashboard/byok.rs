//! The home page: provider keys (BYOK), per provider in routing order, split into prioritized and
//! fallback sections, with the add/edit dialog and Test key. Rows come from `byok_json`, the
//! management API's own object; every change is a fetch to `/ui/api/v1/byok...` (`assets/app.js`).

use super::layout::{self, json_script, Nav};
use super::session::Session;
use super::{can_edit, can_manage_global, scope, signed_in, PageError};
use crate::render::byok_json;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keyway_core::provider::Protocol;
use keyway_core::ProviderSlug;
use keyway_store::{ApiKeyRecord, ByokRecord, KeyKind, Page};
use maud::{html, Markup};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Every credential in scope, in routing order (the list API's pages, walked to the end).
pub async fn all_byok(state: &SharedState, scope: Option<&str>) -> Result<Vec<ByokRecord>, PageError> {
    let mut out = Vec::new();
    loop {
        let (rows, total) = state.store.list_byok(scope, None, Page { offset: out.len() as i64, limit: 100 }).await?;
        let done = rows.is_empty();
        out.extend(rows);
        if done || out.len() as i64 >= total {
            return Ok(out);
        }
    }
}

/// Every API key in scope, oldest first.
pub async fn all_keys(state: &SharedState, scope: Option<&str>) -> Result<Vec<ApiKeyRecord>, PageError> {
    let mut out = Vec::new();
    loop {
        let (rows, total) = state.store.list_keys(scope, Page { offset: out.len() as i64, limit: 100 }).await?;
        let done = rows.is_empty();
        out.extend(rows);
        if done || out.len() as i64 >= total {
            return Ok(out);
        }
    }
}

/// Which form the add dialog shows for a provider.
pub fn form_kind(p: ProviderSlug) -> &'static str {
    match p.protocol() {
        Protocol::Azure => "azure",
        Protocol::Bedrock => "bedrock",
        Protocol::Vertex => "vertex",
        _ => "api_key",
    }
}

fn health_view(h: &Value) -> Markup {
    let status = h["status"].as_str().unwrap_or("ok");
    let (class, text) = match status {
        "unhealthy" => ("bad", "Unhealthy"),
        "cooling_down" => ("warn", "Cooling down"),
        _ => ("ok", "Healthy"),
    };
    html! {
        span.badge.(class) { (text) }
        ul.health-lines {
            li { "Last success: " @match h["last_success_at"].as_str() { Some(t) => { time datetime=(t) { (layout::time_str(t)) } }, None => span.muted { "never" } } }
            li { "Last error: " @match h["last_error"]["at"].as_str() {
                Some(t) => { time datetime=(t) { (layout::time_str(t)) } " (" (h["last_error"]["kind"].as_str().unwrap_or("error")) ")" },
                None => span.muted { "none" },
            } }
            @if let Some(t) = h["cooldown_until"].as_str() {
                li { "Cooling until: " time datetime=(t) { (layout::time_str(t)) } }
            }
        }
    }
}

fn assignment_badges(r: &ByokRecord, names: &HashMap<&str, &str>) -> Markup {
    html! {
        @if r.allowed_api_key_hashes.is_empty() {
            span.badge.org { "Organization (all API keys)" }
        } @else {
            @for h in &r.allowed_api_key_hashes {
                span.badge.key title=(h) { (names.get(h.as_str()).copied().map_or_else(|| format!("key {}…", h.get(..8).unwrap_or(h)), str::to_owned)) }
            }
        }
    }
}

fn key_row(state: &SharedState, s: &Session, r: &ByokRecord, names: &HashMap<&str, &str>, first: bool, last: bool) -> Markup {
    let v = byok_json(r, state);
    let editable = can_edit(&s.key) && (!r.is_global() || can_manage_global(&s.key));
    let name = &r.name;
    html! {
        li.key-row data-id=(r.id) data-name=(name) data-sort=(r.sort_order) {
            div.key-main {
                div.key-title {
                    strong.key-name { (name) }
                    code.key-label aria-label="Masked key" { (r.label) }
                    @if r.is_global() { span.badge.global title="Shared by every workspace; only an admin can change it" { "Global" } }
                    @if r.disabled { span.badge.muted { "Disabled" } }
                    @if r.always_use { span.badge.pin { "Always used" } }
                }
                @if editable {
                    div.key-controls {
                        label.switch {
                            input type="checkbox" data-action="toggle-enabled" checked[!r.disabled];
                            span { "Enabled" }
                        }
                        label.check {
                            input type="checkbox" data-action="toggle-always" checked[r.always_use];
                            span { "Always use this key" }
                        }
                    }
                }
            }
            dl.key-meta {
                div { dt { "Assigned to" } dd.assignment { (assignment_badges(r, names)) } }
                div { dt { "Models" } dd {
                    @if r.allowed_models.is_empty() { span.muted { "All models" } }
                    @else { @for m in &r.allowed_models { code.chip { (m) } } }
                } }
                div { dt { "Health" } dd.health { (health_view(&v["health"])) } }
            }
            div.key-actions {
                span.test-slot {
                    button.btn.small type="button" data-action="test-stored" aria-label={ "Test key " (name) } { "Test key" }
                    span.test-result {}
                }
                @if editable {
                    button.btn.small type="button" data-action="edit" aria-label={ "Edit " (name) } { "Edit" }
                    button.btn.small.icon type="button" data-action="move-up" disabled[first] aria-label={ "Move " (name) " up" } { "↑" }
                    button.btn.small.icon type="button" data-action="move-down" disabled[last] aria-label={ "Move " (name) " down" } { "↓" }
                    button.btn.small.danger type="button" data-action="delete" aria-label={ "Delete " (name) } { "Delete" }
                }
            }
            (json_script(&format!("byok-{}", r.id), &v))
        }
    }
}

fn section(state: &SharedState, s: &Session, title: &str, hint: &str, rows: &[&ByokRecord], names: &HashMap<&str, &str>, id: &str) -> Markup {
    html! {
        div.key-section {
            h3 id=(id) { (title) " " span.count { (rows.len()) } }
            @if rows.is_empty() {
                p.empty-line { "None. " (hint) }
            } @else {
                p.hint { (hint) }
                ul.key-list aria-labelledby=(id) {
                    @for (i, r) in rows.iter().enumerate() {
                        (key_row(state, s, r, names, i == 0, i + 1 == rows.len()))
                    }
                }
            }
        }
    }
}

pub async fn page(State(state): State<SharedState>, headers: HeaderMap) -> Result<Response, PageError> {
    let s = signed_in(&state, &headers).await?;
    let creds = all_byok(&state, scope(&s)).await?;
    let keys = all_keys(&state, scope(&s)).await?;
    let names: HashMap<&str, &str> = keys.iter().map(|k| (k.hash.as_str(), k.name.as_str())).collect();
    let edit = can_edit(&s.key);
    let assignable: Vec<Value> =
        keys.iter().filter(|k| k.kind == KeyKind::Inference).map(|k| json!({"hash": k.hash, "name": k.name, "label": k.label, "disabled": k.disabled})).collect();
    let providers: Vec<Value> = ProviderSlug::ALL.iter().map(|p| json!({"slug": p.as_str(), "name": p.display_name(), "form": form_kind(*p)})).collect();
    let body = html! {
        div.page-head {
            div {
                h1 { "Provider keys" }
                p.lead { "Your own provider keys (BYOK). For each provider Keyway tries prioritized keys first, in the order shown, then fallback keys, then the server's system keys." }
            }
            @if edit {
                div.toolbar {
                    label for="add-provider" { "Provider" }
                    select #add-provider {
                        @for p in ProviderSlug::ALL { option value=(p.as_str()) { (p.display_name()) } }
                    }
                    button.btn.primary type="button" data-action="add" { "Add key" }
                }
            }
        }
        @if creds.is_empty() {
            (empty_state(keys.iter().any(|k| k.kind == KeyKind::Inference), edit))
        }
        @for p in ProviderSlug::ALL {
            @let mine: Vec<&ByokRecord> = creds.iter().filter(|r| r.provider == p).collect();
            @if !mine.is_empty() {
                @let hid = format!("prov-{}", p.as_str());
                section.card.provider data-provider=(p.as_str()) aria-labelledby=(hid) {
                    div.provider-head {
                        h2 id=(hid) { (p.display_name()) }
                        @if edit { button.btn.small type="button" data-action="add" data-provider=(p.as_str()) { "Add " (p.display_name()) " key" } }
                    }
                    @let prio: Vec<&ByokRecord> = mine.iter().copied().filter(|r| !r.is_fallback).collect();
                    @let fall: Vec<&ByokRecord> = mine.iter().copied().filter(|r| r.is_fallback).collect();
                    (section(&state, &s, "Prioritized", "Prioritized keys are tried first, top to bottom.", &prio, &names, &format!("{}-prio", p.as_str())))
                    (section(&state, &s, "Fallback", "Fallback keys are tried only when every prioritized key failed or was skipped.", &fall, &names, &format!("{}-fall", p.as_str())))
                }
            }
        }
        @if edit { (super::byok_dialog::dialog(can_manage_global(&s.key))) }
        (super::byok_dialog::test_modal())
        (json_script("api-keys-data", &Value::Array(assignable)))
        (json_script("providers-data", &Value::Array(providers)))
    };
    Ok(layout::page("Provider keys", Nav::ProviderKeys, &s, body, &[], &[]))
}

/// What a new operator does first.
fn empty_state(has_api_key: bool, edit: bool) -> Markup {
    html! {
        section.card.empty aria-labelledby="welcome" {
            h2 #welcome { "Welcome to Keyway" }
            p { "Three steps to your first request:" }
            ol.steps {
                li { strong { "Add a provider key." } " Pick a provider above and paste your key (OpenAI, Anthropic, Azure, Bedrock, Vertex, …). Use " em { "Test key" } " to check it before saving." }
                li class=[has_api_key.then_some("done")] { strong { "Create an API key" } " for your app on the " a href="/api-keys" { "API keys" } " page." }
                li { strong { "Send a request" } " to " code { "/v1/chat/completions" } " with that key and a model such as " code { "openai/gpt-4o-mini" } ". It shows up under " a href="/requests" { "Requests" } "." }
            }
            @if edit { button.btn.primary type="button" data-action="add" data-provider="openai" { "Add an OpenAI key" } }
        }
    }
}
