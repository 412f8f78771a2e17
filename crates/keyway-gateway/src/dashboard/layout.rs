//! The page shell (header, navigation, sign-out) and small formatting helpers shared by pages.

use super::assets::VERSION;
use super::session::Session;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    ProviderKeys,
    ApiKeys,
    Usage,
    Requests,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::ProviderKeys, "/", "Provider keys"),
    (Nav::ApiKeys, "/api-keys", "API keys"),
    (Nav::Usage, "/usage", "Usage"),
    (Nav::Requests, "/requests", "Requests"),
];

fn head(title: &str, extra_css: &[&str]) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Keyway" }
            link rel="stylesheet" href={ "/assets/app.css?v=" (VERSION) };
            @for css in extra_css {
                link rel="stylesheet" href={ "/assets/" (css) "?v=" (VERSION) };
            }
        }
    }
}

/// A signed-in page: header with navigation and sign-out, then `body`.
pub fn page(title: &str, active: Nav, s: &Session, body: Markup, scripts: &[&str], css: &[&str]) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, css))
            body data-csrf=(s.csrf) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.wrap.top-inner {
                        a.brand href="/" { span.logo aria-hidden="true" { "⟠" } " Keyway" }
                        nav aria-label="Main" {
                            ul {
                                @for (n, href, label) in NAV {
                                    li { a href=(href) aria-current=[(n == active).then_some("page")] { (label) } }
                                }
                            }
                        }
                        div.who {
                            span.who-name title="Signed in with this management key" {
                                (s.key.name) " "
                                code { (s.key.label) }
                                @if s.key.admin { " " span.badge.admin { "admin" } }
                            }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button.btn.ghost.small type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main .wrap tabindex="-1" { (body) }
                div #toast role="status" aria-live="polite" {}
                script src={ "/assets/app.js?v=" (VERSION) } defer {}
                @for js in scripts {
                    script src={ "/assets/" (js) "?v=" (VERSION) } defer {}
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page outside the session (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, &[]))
            body.bare {
                main #main .narrow { (body) }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let body = bare(
        "Error",
        html! {
            div.card {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                p { (message) }
                p { a href="/" { "Back to the dashboard" } }
            }
        },
    );
    Html(body.into_string())
}

/// Unix milliseconds as `2026-01-31 14:05 UTC`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()
}

/// Unix milliseconds as a date: `2026-01-31`.
pub fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// An RFC 3339 string (as the JSON shapes carry) shown like [`time`].
pub fn time_str(s: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| time(t.timestamp_millis())).unwrap_or_else(|_| s.to_owned())
}

/// Micro-units as dollars: `$0.000123`, `$12.50`.
pub fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let whole = m / 1_000_000;
    let frac = m % 1_000_000;
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("{sign}${whole}.{f}")
}

/// A whole number with thin grouping: `12 345`.
pub fn count(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// JSON for a `<script type="application/json">` block: `<` escaped so no `</script>` can close it.
pub fn json_script(id: &str, v: &serde_json::Value) -> Markup {
    let text = v.to_string().replace('<', "\\u003c");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(money(0), "$0.00");
        assert_eq!(money(123), "$0.000123");
        assert_eq!(money(12_500_000), "$12.50");
        assert_eq!(money(-1_000_000), "-$1.00");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
        let m = json_script("x", &serde_json::json!({"a": "</script><b>"}));
        assert!(!m.into_string().contains("</script><b>"));
    }
}
