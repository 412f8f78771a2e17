//! Reading a credential from a request body: shared by storing it (`byok.rs`) and testing it
//! (`byok_test.rs`), which import this and not each other's parsing.

use crate::error::ApiError;
use crate::security::check_credential_urls;
use crate::state::SharedState;
use keyway_core::{Credential, ProviderSlug};
use serde_json::Value;

/// A provider by slug, display name or alias, in any case (`xAI`, `AWS Bedrock`, `Google Vertex`);
/// the slug is what gets stored.
pub fn parse_provider(v: Option<&Value>) -> Result<ProviderSlug, ApiError> {
    match v {
        Some(Value::String(s)) => ProviderSlug::parse_name(s).ok_or_else(|| {
            ApiError::BadRequest(format!("unknown provider `{s}`; accepted: {}", ProviderSlug::accepted_names()))
        }),
        Some(_) => Err(ApiError::BadRequest("`provider` must be a string".into())),
        None => Err(ApiError::BadRequest("`provider` is required".into())),
    }
}

/// Validates `key` for `provider` (422 when the shape is wrong) and its URLs against the allow-list.
pub fn parse_credential(state: &SharedState, provider: ProviderSlug, key: &Value) -> Result<Credential, ApiError> {
    let cred = Credential::parse(provider, key).map_err(|e| ApiError::InvalidCredential(e.to_string()))?;
    check_credential_urls(&cred, &state.config.security.allowed_upstream_hosts).map_err(ApiError::InvalidCredential)?;
    Ok(cred)
}
