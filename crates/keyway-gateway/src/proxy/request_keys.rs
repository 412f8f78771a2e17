//! Request-scoped BYOK: credentials sent with one request (Vercel's
//! `providerOptions.gateway.byok`, or the `x-keyway-byok` header as base64 JSON of the same
//! object). They are validated like stored ones, taken literally (no `env:`/`file:` lookups),
//! checked against the URL allow-list, used for this request only, and never stored or logged.

use crate::error::ApiError;
use crate::security::check_credential_urls;
use crate::state::SharedState;
use axum::http::HeaderMap;
use base64::Engine;
use keyway_core::route::{RequestByok, RoutingOptions};
use keyway_core::{Credential, Protocol, ProviderSlug};
use serde_json::Value;

pub fn request_scoped_credentials(state: &SharedState, options: &RoutingOptions, headers: &HeaderMap) -> Result<Vec<(ProviderSlug, Credential)>, ApiError> {
    let header = match headers.get("x-keyway-byok") {
        None => None,
        Some(v) => {
            let raw = v.to_str().map_err(|_| ApiError::BadRequest("`x-keyway-byok` must be ASCII base64".into()))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim()))
                .map_err(|_| ApiError::BadRequest("`x-keyway-byok` is not base64".into()))?;
            let json: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::BadRequest("`x-keyway-byok` is not base64 of a JSON object".into()))?;
            Some(RequestByok::from_json(&json)?)
        }
    };
    let mut out = Vec::new();
    for byok in std::iter::once(&options.byok).chain(header.as_ref()) {
        for (provider, value) in byok.iter() {
            let cred = parse_one(provider, value)?;
            check_credential_urls(&cred, &state.config.security.allowed_upstream_hosts)
                .map_err(|m| ApiError::InvalidCredential(format!("request-scoped {provider} credential: {m}")))?;
            out.push((provider, cred));
        }
    }
    Ok(out)
}

/// Vercel's `{apiKey}` objects become the bare key that API-key providers take.
fn parse_one(provider: ProviderSlug, value: &Value) -> Result<Credential, ApiError> {
    let simple = matches!(provider.protocol(), Protocol::OpenAiCompat | Protocol::Anthropic | Protocol::Gemini);
    let value = match value {
        Value::Object(m) if simple => m.get("apiKey").or_else(|| m.get("api_key")).unwrap_or(value),
        v => v,
    };
    Credential::parse(provider, value).map_err(|e| ApiError::InvalidCredential(format!("request-scoped credential: {e}")))
}
