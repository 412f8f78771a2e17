//! The web dashboard served at `/`: server-rendered HTML (maud, compiled with the crate), a little
//! vanilla JavaScript, CSS and uPlot, all embedded in the binary.
//!
//! Pages read through the same store calls and JSON shapes as the management API (`byok_json`,
//! `key_json`, `generation_json`, `credits_json`). Every change the pages make is a fetch to
//! `/ui/api/v1/...`: the management API's own handlers, mounted behind the session and its CSRF
//! token (`session::require_api_session`), so there is no second copy of any rule.
//!
//! Who may do what is decided by the functions below ([`can_edit`] and friends); the templates
//! render edit controls only when they say so.

pub mod assets;
pub mod byok;
pub mod byok_dialog;
pub mod keys;
pub mod layout;
pub mod login;
pub mod requests;
pub mod session;
pub mod usage;

use crate::auth::Manager;
use crate::error::ApiError;
use crate::state::SharedState;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyway_store::ApiKeyRecord;
use session::Session;

/// May this key change provider keys, API keys and settings? Today every management key may;
/// a read-only role plugs in here.
pub fn can_edit(key: &ApiKeyRecord) -> bool {
    key.role >= keyway_store::Role::Owner
}

/// May this key write credentials shared by every workspace (global keys)? Admins only, as the API rules.
pub fn can_manage_global(key: &ApiKeyRecord) -> bool {
    key.role == keyway_store::Role::Admin
}

/// May this key add credits? Admins only, as `POST /api/v1/credits` rules.
pub fn can_top_up(key: &ApiKeyRecord) -> bool {
    key.role == keyway_store::Role::Admin
}

/// The workspace filter for store reads: the management API's own rule.
pub fn scope(s: &Session) -> Option<&str> {
    (!s.key.admin).then_some(s.key.workspace_id.as_str())
}

pub fn manager(s: &Session) -> Manager {
    Manager(s.key.clone())
}

/// The pages and their assets (the session-guarded API is mounted in `app::router`).
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/", get(byok::page))
        .route("/api-keys", get(keys::page))
        .route("/usage", get(usage::page))
        .route("/requests", get(requests::list))
        .route("/requests/{id}", get(requests::detail))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/dashboard", get(|| async { Redirect::to("/") }))
        .route("/settings", get(|| async { Redirect::to("/") }))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
}

/// What a page handler can fail with: no session (to the sign-in page) or an error to show.
pub enum PageError {
    SignIn,
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::Api(e)
    }
}

impl From<keyway_store::StoreError> for PageError {
    fn from(e: keyway_store::StoreError) -> Self {
        PageError::Api(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/login").into_response(),
            PageError::Api(e) => {
                if let ApiError::Internal(detail) = &e {
                    tracing::error!(error = %detail, "dashboard page failed");
                }
                let info = e.info();
                let body = layout::error_page(info.status, &info.message);
                (info.status, body).into_response()
            }
        }
    }
}

/// The signed-in session, or a redirect to the sign-in page.
pub async fn signed_in(state: &SharedState, headers: &HeaderMap) -> Result<Session, PageError> {
    session::current(state, headers).await.ok_or(PageError::SignIn)
}

/// Pages are private and never cached; scripts only from this origin; no framing.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    resp
}

/// 404 for an unknown id on a page, in the page's own shape.
pub fn not_found(what: &str) -> PageError {
    PageError::Api(ApiError::NotFound(format!("{what} not found")))
}
