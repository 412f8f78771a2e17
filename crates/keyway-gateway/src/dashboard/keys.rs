//! API keys: create (the raw key shown once), disable, delete, limits and budgets, and which
//! provider keys each may use (a provider key assigned to the organization serves every API key).

use super::byok::{all_byok, all_keys};
use super::layout::{self, json_script, Nav};
use super::{can_edit, scope, signed_in, PageError};
use crate::render::key_json;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keyway_store::{ApiKeyRecord, ByokRecord, KeyKind, Limits};
use maud::{html, Markup};

fn limits_view(l: &Limits) -> Markup {
    let parts: Vec<String> = [
        l.requests_per_minute.map(|n| format!("{} req/min", layout::count(n as i64))),
        l.tokens_per_minute.map(|n| format!("{} tokens/min", layout::count(n as i64))),
        l.max_concurrent.map(|n| format!("{n} at once")),
        l.budget_daily_micros.map(|m| format!("{}/day", layout::money(m as i64))),
        l.budget_monthly_micros.map(|m| format!("{}/month", layout::money(m as i64))),
    ]
    .into_iter()
    .flatten()
    .collect();
    html! {
        @if parts.is_empty() { span.muted { "No limits" } }
        @else { ul.plain { @for p in parts { li { (p) } } } }
    }
}

fn usable(k: &ApiKeyRecord, creds: &[ByokRecord]) -> Markup {
    let mine: Vec<&ByokRecord> = creds.iter().filter(|c| !c.disabled && (c.allowed_api_key_hashes.is_empty() || c.allowed_api_key_hashes.contains(&k.hash))).collect();
    html! {
        @if mine.is_empty() { span.muted { "None (system keys only)" } }
        @else {
            @for c in mine {
                span.badge.key title=(c.label) { (c.provider.display_name()) ": " (c.name) }
            }
        }
    }
}

fn limit_inputs(prefix: &str) -> Markup {
    let f = |name: &str, label: &str, step: &str| {
        let id = format!("{prefix}-{name}");
        html! { div.field { label for=(id) { (label) } input id=(id) name=(name) type="number" min="0" step=(step) inputmode="decimal" placeholder="no limit"; } }
    };
    html! {
        div.grid5 {
            (f("requests_per_minute", "Requests / minute", "1"))
            (f("tokens_per_minute", "Tokens / minute", "1"))
            (f("max_concurrent", "Concurrent requests", "1"))
            (f("budget_daily_usd", "Daily budget (USD)", "0.01"))
            (f("budget_monthly_usd", "Monthly budget (USD)", "0.01"))
        }
    }
}

pub async fn page(State(state): State<SharedState>, headers: HeaderMap) -> Result<Response, PageError> {
    let s = signed_in(&state, &headers).await?;
    let keys = all_keys(&state, scope(&s)).await?;
    let creds = all_byok(&state, scope(&s)).await?;
    let edit = can_edit(&s.key);
    let body = html! {
        div.page-head {
            div {
                h1 { "API keys" }
                p.lead { "Keys your apps send as " code { "Authorization: Bearer kw-…" } ". Limits and budgets apply per key; which provider keys a key may use is set on each provider key (" a href="/" { "Provider keys" } ")." }
            }
        }
        @if edit {
            section.card aria-labelledby="create-title" {
                h2 #create-title { "Create an API key" }
                form #create-key-form novalidate {
                    div.field {
                        label for="ck-name" { "Name" }
                        input #ck-name name="name" type="text" required maxlength="200" placeholder="e.g. Support bot" autocomplete="off";
                    }
                    details {
                        summary { "Limits and budgets (optional)" }
                        (limit_inputs("ck"))
                    }
                    @if s.key.admin {
                        label.check { input type="checkbox" name="management"; span { "Management key (can sign in here and manage keys)" } }
                    }
                    div.alert.error #create-error role="alert" hidden {}
                    button.btn.primary type="submit" { "Create key" }
                }
                div.new-key #new-key hidden {
                    p.alert.success role="status" { strong { "Copy this key now." } " It is shown only once; Keyway keeps only its hash." }
                    div.copy-row {
                        label.sr-only for="new-key-value" { "New API key" }
                        input #new-key-value type="text" readonly spellcheck="false";
                        button.btn type="button" data-action="copy-key" { "Copy" }
                        button.btn.primary type="button" data-action="reload" { "Done" }
                    }
                }
            }
        }
        section.card aria-labelledby="keys-title" {
            h2 #keys-title { "Keys" " " span.count { (keys.len()) } }
            @if keys.is_empty() {
                p.empty-line { "No API keys yet." }
            } @else {
                div.table-wrap {
                    table.data {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Status" }
                            th scope="col" { "Limits and budgets" } th scope="col" { "May use provider keys" } th scope="col" { "Created" }
                            @if edit { th scope="col" { span.sr-only { "Actions" } } }
                        } }
                        tbody {
                            @for k in &keys {
                                @let own = k.id == s.key.id;
                                tr data-hash=(k.hash) data-name=(k.name) {
                                    td { strong { (k.name) }
                                        @if k.kind == KeyKind::Management { " " span.badge.admin { @if k.admin { "admin" } @else { "management" } } }
                                        @if own { " " span.badge.muted { "this session" } } }
                                    td { code { (k.label) } }
                                    td { @if k.disabled { span.badge.muted { "Disabled" } } @else { span.badge.ok { "Active" } } }
                                    td { (limits_view(&k.limits)) }
                                    td.badges { (usable(k, &creds)) }
                                    td.nowrap { time datetime=(crate::render::iso(k.created_at)) { (layout::day(k.created_at)) } }
                                    @if edit {
                                        td.actions {
                                            @if !own {
                                                button.btn.small type="button" data-action="key-toggle" data-disabled=(k.disabled)
                                                    aria-label={ @if k.disabled { "Enable " } @else { "Disable " } (k.name) } {
                                                    @if k.disabled { "Enable" } @else { "Disable" }
                                                }
                                            }
                                            button.btn.small type="button" data-action="key-limits" aria-label={ "Edit limits of " (k.name) } { "Limits" }
                                            @if !own {
                                                button.btn.small.danger type="button" data-action="key-delete" aria-label={ "Delete " (k.name) } { "Delete" }
                                            }
                                            (json_script(&format!("key-{}", k.hash), &key_json(k)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if edit {
            dialog #limits-dialog aria-labelledby="limits-title" {
                form #limits-form method="dialog" novalidate {
                    div.dialog-head {
                        h2 #limits-title { "Limits and budgets" }
                        button.btn.ghost.icon type="button" data-action="close" aria-label="Close" { "✕" }
                    }
                    div.dialog-body {
                        input type="hidden" name="hash";
                        p.hint { "Empty means no limit. Budgets count what the key's requests cost at catalog prices." }
                        (limit_inputs("lim"))
                        div.alert.error #limits-error role="alert" hidden {}
                    }
                    div.dialog-foot {
                        button.btn.ghost type="button" data-action="close" { "Cancel" }
                        button.btn.primary type="submit" { "Save limits" }
                    }
                }
            }
        }
    };
    Ok(layout::page("API keys", Nav::ApiKeys, &s, body, &[], &[]))
}
