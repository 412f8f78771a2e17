//! Sign in (a management key for a session cookie) and sign out.
//!
//! The sign-in form is itself CSRF-protected (double submit: a random token in an HttpOnly,
//! SameSite=Strict cookie and in the form), so another site can't sign a browser in as itself.

use super::layout::bare;
use super::session::{self, clear_cookie, cookie, csrf_matches, is_https, random_token, set_cookie, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::auth::{key_for, require_management};
use crate::state::SharedState;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

const LOGIN_PATH: &str = "/login";

fn form_page(status: StatusCode, error: Option<&str>, secure: bool) -> Response {
    let token = random_token();
    let body = bare(
        "Sign in",
        html! {
            div.card.signin {
                h1 { span.logo aria-hidden="true" { "⟠" } " Keyway" }
                p.muted { "Sign in with a management key (" code { "kw-mgmt-…" } "). " "It was printed once when the server first started." }
                @if let Some(e) = error {
                    p.alert.error role="alert" #signin-error { (e) }
                }
                form method="post" action=(LOGIN_PATH) {
                    input type="hidden" name="csrf" value=(token);
                    div.field {
                        label for="key" { "Management key" }
                        input #key type="password" name="key" required autocomplete="current-password" autofocus
                            aria-describedby=[error.map(|_| "signin-error")];
                    }
                    button.btn.primary.wide type="submit" { "Sign in" }
                }
            }
        },
    );
    let mut resp = (status, Html(body.into_string())).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(LOGIN_CSRF_COOKIE, &token, LOGIN_PATH, Some(3600), secure)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn form(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if session::current(&state, &headers).await.is_some() {
        return Redirect::to("/").into_response();
    }
    form_page(StatusCode::OK, None, is_https(&headers))
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

pub async fn submit(State(state): State<SharedState>, peer: crate::audit::Peer, headers: HeaderMap, form: Result<Form<SignIn>, FormRejection>) -> Response {
    let secure = is_https(&headers);
    // Wrong keys count against the address as on the API: a guessing loop gets 429s.
    let ip = peer.0.as_deref().and_then(|p| p.parse::<std::net::IpAddr>().ok());
    if ip.and_then(|ip| state.keys.blocked(ip)).is_some() {
        return form_page(StatusCode::TOO_MANY_REQUESTS, Some("Too many wrong keys from this address; wait a minute and try again."), secure);
    }
    let Ok(Form(f)) = form else {
        return form_page(StatusCode::BAD_REQUEST, Some("The sign-in form could not be read; try again."), secure);
    };
    let key = Zeroizing::new(f.key);
    if !csrf_matches(cookie(&headers, LOGIN_CSRF_COOKIE), &f.csrf) {
        return form_page(StatusCode::FORBIDDEN, Some("The sign-in form expired; enter the key again."), secure);
    }
    let raw = key.trim();
    if raw.is_empty() {
        return form_page(StatusCode::BAD_REQUEST, Some("Enter a management key."), secure);
    }
    let rec = match key_for(&state, raw).await {
        Ok(rec) => rec,
        Err(crate::error::ApiError::Internal(e)) => {
            tracing::error!(error = %e, "dashboard sign-in failed");
            return form_page(StatusCode::INTERNAL_SERVER_ERROR, Some("Sign-in failed on the server; see its log."), secure);
        }
        Err(_) => {
            if let Some(ip) = ip {
                state.keys.note_failure(ip);
            }
            tracing::info!("dashboard sign-in refused: unknown or disabled key");
            return form_page(StatusCode::UNAUTHORIZED, Some("That key was not accepted: it is unknown, disabled or mistyped."), secure);
        }
    };
    if require_management(&rec).is_err() {
        return form_page(
            StatusCode::FORBIDDEN,
            Some("That is an API key for apps (kw-…); the dashboard needs a management key (kw-mgmt-…)."),
            secure,
        );
    }
    let (id, _csrf) = state.sessions.create(&rec.hash);
    tracing::info!(key_id = %rec.id, "dashboard sign-in");
    let mut resp = Redirect::to("/").into_response();
    let ttl = state.sessions.ttl().as_secs();
    for c in [set_cookie(SESSION_COOKIE, &id, "/", Some(ttl), secure), clear_cookie(LOGIN_CSRF_COOKIE, LOGIN_PATH, secure)] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(State(state): State<SharedState>, headers: HeaderMap, form: Result<Form<SignOut>, FormRejection>) -> Response {
    let secure = is_https(&headers);
    if let Some(s) = session::current(&state, &headers).await {
        let presented = form.as_ref().ok().map(|Form(f)| f.csrf.as_str());
        if !csrf_matches(presented, &s.csrf) {
            return (StatusCode::FORBIDDEN, super::layout::error_page(StatusCode::FORBIDDEN, "Missing or wrong CSRF token; reload the page and sign out again.")).into_response();
        }
        state.sessions.remove(&s.id);
    }
    let mut resp = Redirect::to(LOGIN_PATH).into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(SESSION_COOKIE, "/", secure)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
