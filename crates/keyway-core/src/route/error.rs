//! Why a request can't be routed. Each message says what to change.

use super::price::MaxPrice;
use crate::provider::ProviderSlug;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A routing option has the wrong type or value (a 400).
    #[error("invalid routing option `{path}`: {message}")]
    InvalidOption { path: String, message: String },

    /// Neither a catalog slug nor `provider/upstream-id` with a known provider.
    #[error("model `{model}` is not in the catalog; use a slug listed by GET /v1/models, or `provider/model-id` (e.g. `openai/gpt-4o`) to reach a model the catalog does not list")]
    UnknownModel { model: String },

    /// The routing options (or required parameters) filtered out every provider of the model.
    #[error("no provider can serve `{model}`: {reason}")]
    NoEndpoints { model: String, reason: String },

    /// `provider.max_price` filtered out every provider; names the cheapest one found.
    #[error("{}", max_price_message(model, *provider, *prompt_micros, *completion_micros, *request_micros, max))]
    MaxPriceExceeded {
        model: String,
        /// The cheapest provider that was over the limit, and its prices (micro-USD per million tokens).
        provider: ProviderSlug,
        prompt_micros: u64,
        completion_micros: u64,
        request_micros: u64,
        max: MaxPrice,
    },

    /// Providers are eligible but no credential may serve them for this request.
    #[error("no usable credential for `{model}` on {}: {detail}", join_providers(providers))]
    NoCredentials { model: String, providers: Vec<ProviderSlug>, detail: String },
}

impl RouteError {
    /// The HTTP status the gateway should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            RouteError::InvalidOption { .. } | RouteError::UnknownModel { .. } => 400,
            RouteError::MaxPriceExceeded { .. } => 402,
            // OpenRouter answers "No endpoints found ..." with 404; clients already handle it.
            RouteError::NoEndpoints { .. } | RouteError::NoCredentials { .. } => 404,
        }
    }

    /// A short machine-readable code for the error body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::InvalidOption { .. } => "invalid_routing_option",
            RouteError::UnknownModel { .. } => "model_not_found",
            RouteError::NoEndpoints { .. } => "no_endpoints",
            RouteError::MaxPriceExceeded { .. } => "max_price_exceeded",
            RouteError::NoCredentials { .. } => "no_credentials",
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        RouteError::InvalidOption { path: path.into(), message: message.into() }
    }
}

pub(crate) fn join_providers(ps: &[ProviderSlug]) -> String {
    ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

/// `2500000` -> `$2.50`, `35000` -> `$0.035`: micro-USD as dollars, at least two decimals.
pub(crate) fn usd(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = format!("{:06}", micros % 1_000_000);
    let trimmed = frac.trim_end_matches('0');
    let shown = if trimmed.len() < 2 { &frac[..2] } else { trimmed };
    format!("${whole}.{shown}")
}

fn max_price_message(
    model: &str,
    provider: ProviderSlug,
    prompt: u64,
    completion: u64,
    request: u64,
    max: &MaxPrice,
) -> String {
    let mut limits = Vec::new();
    let mut found = Vec::new();
    if let Some(m) = max.prompt_micros {
        limits.push(format!("prompt {}/M", usd(m)));
        found.push(format!("prompt {}/M", usd(prompt)));
    }
    if let Some(m) = max.completion_micros {
        limits.push(format!("completion {}/M", usd(m)));
        found.push(format!("completion {}/M", usd(completion)));
    }
    if let Some(m) = max.request_micros {
        limits.push(format!("request {}", usd(m)));
        found.push(format!("request {}", usd(request)));
    }
    format!(
        "no provider for `{model}` is within provider.max_price ({}); the cheapest, {provider}, costs {}. Raise max_price or choose a cheaper model",
        limits.join(", "),
        found.join(", "),
    )
}
