//! `GET /api/v1/openapi.json`: the management API as OpenAPI 3.1, generated from the handlers'
//! `#[utoipa::path]` annotations. Most handlers build their JSON with `json!`, so the shapes they
//! answer with are described here by schema-only types that mirror those builders field by field;
//! `tests/openapi.rs` checks every documented shape against a real answer of its handler.
//!
//! Served without a key: it describes the API, it holds nothing of anyone's.

use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use crate::api_schema::ErrorBody;
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyway management API",
        description = "Provider credentials (BYOK), API keys, workspaces, credits, usage and the keyring, \
                       in the shapes of OpenRouter's API: one object as `{\"data\": {...}}`, a list as \
                       `{\"data\": [...], \"total_count\"}`, errors as `{\"error\": {\"code\", \"message\", \"metadata\"}}`."
    ),
    paths(
        crate::routes::byok::list,
        crate::routes::byok::create,
        crate::routes::byok::get,
        crate::routes::byok::patch,
        crate::routes::byok::delete,
        crate::routes::byok_test::test_unsaved,
        crate::routes::byok_test::test_stored,
        crate::routes::keys::list,
        crate::routes::keys::create,
        crate::routes::keys::get,
        crate::routes::keys::patch,
        crate::routes::keys::delete,
        crate::routes::keys::current,
        crate::routes::keyring::list,
        crate::routes::keyring::rotate,
        crate::routes::audit::list,
        crate::routes::models::providers,
        crate::routes::models::list,
        crate::routes::workspaces::list,
        crate::routes::workspaces::create,
        crate::routes::credits::get,
        crate::routes::credits::top_up,
        crate::routes::generation::get,
        crate::routes::activity::get,
        document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "byok", description = "Provider credentials (bring your own key)"),
        (name = "keys", description = "Keyway API keys"),
        (name = "workspaces"), (name = "credits"), (name = "usage"), (name = "keyring"), (name = "catalog"),
    )
)]
pub struct ApiDoc;

/// `Authorization: Bearer kw-...` (management keys for everything but the public catalog).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("kw-...").build()));
    }
}

/// The document as served; built once per call (cheap, and never on the inference path).
pub fn document_value() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, operation_id = "openapi_document", path = "/api/v1/openapi.json", tag = "catalog", security(()),
    responses((status = 200, description = "This document", content_type = "application/json", body = crate::api_schema::Object)))]
pub async fn document() -> impl IntoResponse {
    Json(document_value())
}
