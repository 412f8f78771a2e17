//! The dashboard's session and CSRF rules against the real router: sign-in, cookie flags, wrong
//! and wrong-kind keys, expiry, sign-out, and that the session-backed API refuses a write without
//! the CSRF token (and writes nothing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, MGMT};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};
use std::time::Duration;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn cookie_value(h: &HeaderMap, name: &str) -> Option<String> {
    set_cookies(h).iter().find_map(|c| c.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_owned()))
}

/// The value of `attr="..."` after `marker` in `html`.
fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("{marker} not in page"));
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
    rest[start..start + rest[start..].find('"').unwrap()].to_owned()
}

struct SignIn {
    status: u16,
    headers: HeaderMap,
}

async fn sign_in(g: &Gateway, key: &str, extra: &[(&str, &str)]) -> SignIn {
    let c = client();
    let form = c.get(g.url("/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let login_csrf = cookie_value(form.headers(), "kw_login_csrf").expect("login CSRF cookie");
    let html = form.text().await.unwrap();
    let token = attr_after(&html, "name=\"csrf\"", "value");
    assert_eq!(token, login_csrf);
    let mut req = c.post(g.url("/login")).header(COOKIE, format!("kw_login_csrf={login_csrf}")).form(&[("key", key), ("csrf", token.as_str())]);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    SignIn { status: r.status().as_u16(), headers: r.headers().clone() }
}

/// A signed-in session: (cookie header value, CSRF token from the page).
async fn session(g: &Gateway, key: &str) -> (String, String) {
    let s = sign_in(g, key, &[]).await;
    assert_eq!(s.status, 303);
    let id = cookie_value(&s.headers, "kw_session").expect("session cookie");
    let cookie = format!("kw_session={id}");
    let page = client().get(g.url("/")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    (cookie, attr_after(&html, "<body", "data-csrf"))
}

#[tokio::test]
async fn sign_in_sets_a_strict_httponly_session_cookie() {
    let g = Gateway::start(|_| {}).await;
    let s = sign_in(&g, MGMT, &[]).await;
    assert_eq!(s.status, 303);
    assert_eq!(s.headers[LOCATION], "/");
    let c = set_cookies(&s.headers).into_iter().find(|c| c.starts_with("kw_session=")).unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(c.contains(flag), "{c} lacks {flag}");
    }
    assert!(!c.contains("Secure"), "plain HTTP: no Secure flag ({c})");
    assert!(!c.contains(MGMT), "the cookie carries a random id, not the key");
    // The session id is random and long.
    let id = cookie_value(&s.headers, "kw_session").unwrap();
    assert_eq!(id.len(), 64);

    // Behind a TLS-terminating proxy the cookie is Secure.
    let s = sign_in(&g, MGMT, &[("x-forwarded-proto", "https")]).await;
    let c = set_cookies(&s.headers).into_iter().find(|c| c.starts_with("kw_session=")).unwrap();
    assert!(c.contains("; Secure"), "{c}");
}

#[tokio::test]
async fn a_wrong_key_gets_a_clear_message_and_no_session() {
    let g = Gateway::start(|_| {}).await;
    let s = sign_in(&g, "kw-mgmt-not-a-key-0000000000000000", &[]).await;
    assert_eq!(s.status, 401);
    assert!(cookie_value(&s.headers, "kw_session").is_none());
    // An inference key is a real key but not for the dashboard.
    let (inference, _) = g.inference_key().await;
    let c = client();
    let form = c.get(g.url("/login")).send().await.unwrap();
    let login_csrf = cookie_value(form.headers(), "kw_login_csrf").unwrap();
    let r = c
        .post(g.url("/login"))
        .header(COOKIE, format!("kw_login_csrf={login_csrf}"))
        .form(&[("key", inference.as_str()), ("csrf", login_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(cookie_value(r.headers(), "kw_session").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("needs a management key"), "{html}");
    assert!(!html.contains(&inference), "the key is not echoed");
}

#[tokio::test]
async fn sign_in_without_the_form_token_is_refused() {
    let g = Gateway::start(|_| {}).await;
    let r = client().post(g.url("/login")).form(&[("key", MGMT), ("csrf", "forged")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(cookie_value(r.headers(), "kw_session").is_none());
}

#[tokio::test]
async fn pages_need_a_session() {
    let g = Gateway::start(|_| {}).await;
    for path in ["/", "/api-keys", "/usage", "/requests", "/requests/gen-x"] {
        let r = client().get(g.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()[LOCATION], "/login", "{path}");
    }
    let r = client().get(g.url("/ui/api/v1/byok")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client().get(g.url("/ui/api/v1/byok")).header(COOKIE, "kw_session=00ff").send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_write_without_the_csrf_token_is_refused_and_writes_nothing() {
    let g = Gateway::start(|_| {}).await;
    let (cookie, csrf) = session(&g, MGMT).await;
    let body = json!({"provider": "openai", "name": "from the dashboard", "key": "sk-dashboard-secret-0001"});
    let c = client();
    let none = c.post(g.url("/ui/api/v1/byok")).header(COOKIE, &cookie).json(&body).send().await.unwrap();
    assert_eq!(none.status(), 403);
    let err: Value = none.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("CSRF"), "{err}");
    let wrong = c.post(g.url("/ui/api/v1/byok")).header(COOKIE, &cookie).header("x-csrf-token", "0".repeat(64)).json(&body).send().await.unwrap();
    assert_eq!(wrong.status(), 403);
    let (_, list) = g.mgmt("GET", "/api/v1/byok", None).await;
    assert_eq!(list["total_count"], 0, "nothing was written: {list}");

    // With the token, the same handler as /api/v1/byok answers in its shape.
    let ok = c.post(g.url("/ui/api/v1/byok")).header(COOKIE, &cookie).header("x-csrf-token", &csrf).json(&body).send().await.unwrap();
    assert_eq!(ok.status(), 201);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["data"]["label"], "sk-...0001");
    // Reads need the session but no token; the page never shows the secret.
    let page = c.get(g.url("/")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("from the dashboard"));
    assert!(!page.contains("sk-dashboard-secret-0001"));
    // The cookie is not a credential for the public API.
    let r = c.get(g.url("/api/v1/byok")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn sessions_expire() {
    let g = Gateway::start(|c| c.dashboard.session_ttl_secs = 1).await;
    let (cookie, _) = session(&g, MGMT).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = client().get(g.url("/")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/login");
    let r = client().get(g.url("/ui/api/v1/byok")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn sign_out_needs_the_token_and_ends_the_session() {
    let g = Gateway::start(|_| {}).await;
    let (cookie, csrf) = session(&g, MGMT).await;
    let c = client();
    let r = c.post(g.url("/logout")).header(COOKIE, &cookie).form(&[("csrf", "nope")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(c.get(g.url("/")).header(COOKIE, &cookie).send().await.unwrap().status(), 200, "still signed in");
    let r = c.post(g.url("/logout")).header(COOKIE, &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/login");
    assert!(set_cookies(r.headers()).iter().any(|c| c.starts_with("kw_session=;") && c.contains("Max-Age=0")));
    assert_eq!(c.get(g.url("/")).header(COOKIE, &cookie).send().await.unwrap().status(), 303);
}

#[tokio::test]
async fn disabling_the_key_ends_its_sessions() {
    let g = Gateway::start(|_| {}).await;
    let (s, v) = g.mgmt("POST", "/api/v1/keys", Some(json!({"name": "second admin", "management": true}))).await;
    assert_eq!(s, 201, "{v}");
    let raw = v["key"].as_str().unwrap().to_owned();
    let hash = v["data"]["hash"].as_str().unwrap().to_owned();
    let (cookie, _) = session(&g, &raw).await;
    let (s, _) = g.mgmt("PATCH", &format!("/api/v1/keys/{hash}"), Some(json!({"disabled": true}))).await;
    assert_eq!(s, 200);
    let r = client().get(g.url("/")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn pages_carry_security_headers_and_assets_are_embedded() {
    let g = Gateway::start(|_| {}).await;
    let r = client().get(g.url("/login")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    for (file, mime) in [("app.css", "text/css"), ("app.js", "text/javascript"), ("uPlot.iife.min.js", "text/javascript")] {
        let r = client().get(g.url(&format!("/assets/{file}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(mime));
    }
    assert_eq!(client().get(g.url("/assets/nope.js")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_successful_key_test_shows_as_the_last_success() {
    let (_fake, g, _key) = common::openai_gateway(keyway_fakes::server::FakeOptions::default(), "sk-system-0001").await;
    let id = g.add_byok(json!({"provider": "openai", "key": "sk-byok-health-0001"})).await;
    let (_, v) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert!(v["data"]["health"]["last_success_at"].is_null(), "{v}");
    let (s, t) = g.mgmt("POST", &format!("/api/v1/byok/{id}/test"), None).await;
    assert_eq!((s, &t["ok"]), (200, &json!(true)), "{t}");
    let (_, v) = g.mgmt("GET", &format!("/api/v1/byok/{id}"), None).await;
    assert!(v["data"]["health"]["last_success_at"].is_string(), "{v}");
    assert_eq!(v["data"]["health"]["status"], "ok");
    let (cookie, _) = session(&g, MGMT).await;
    let page = client().get(g.url("/")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Last success: <span class=\"muted\">never"), "the page shows the success");
}
