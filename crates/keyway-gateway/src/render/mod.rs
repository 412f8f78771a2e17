//! JSON objects the management API and the dashboard both show, in one place each. A leaf:
//! it imports neither `routes` nor `dashboard`.

pub mod byok;
pub mod credits;
pub mod generation;
pub mod keys;

pub use byok::byok_json;
pub use credits::credits_json;
pub use generation::generation_json;
pub use keys::key_json;

/// Unix milliseconds as RFC 3339 (what OpenRouter's objects carry).
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
