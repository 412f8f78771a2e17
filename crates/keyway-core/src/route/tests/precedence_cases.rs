//! Precedence: `byok_first` (every provider's BYOK keys before any system key, the default) or
//! `provider_order` (provider by provider; within each, the team's keys before the system key),
//! per workspace, and per request with `provider.byok_first`.

use super::fixture::*;
use crate::route::Precedence;
use serde_json::json;

fn team_and_system() -> Fx {
    fx().key("k-az", Azure).key("k-oa", OpenAi).fallback("f-oa", OpenAi).system(OpenAi).system(Azure)
}

#[test]
fn byok_first_is_the_default() {
    assert_eq!(
        team_and_system().opts(json!({"provider": {"order": ["openai"]}})).plan(GPT4O),
        ["openai:byok:k-oa", "azure:byok:k-az", "openai:system#0", "azure:system#1", "openai:byok:f-oa"]
    );
}

#[test]
fn provider_order_walks_providers_first_team_keys_before_system() {
    let f = team_and_system().precedence(Precedence::ProviderOrder).opts(json!({"provider": {"order": ["openai"]}}));
    assert_eq!(
        f.plan(GPT4O),
        ["openai:byok:k-oa", "openai:system#0", "openai:byok:f-oa", "azure:byok:k-az", "azure:system#1"]
    );
}

#[test]
fn request_byok_first_false_overrides_the_workspace() {
    let f = team_and_system().opts(json!({"provider": {"order": ["azure"], "byok_first": false}}));
    assert_eq!(
        f.plan(GPT4O),
        ["azure:byok:k-az", "azure:system#1", "openai:byok:k-oa", "openai:system#0", "openai:byok:f-oa"]
    );
}

#[test]
fn request_byok_first_true_overrides_a_provider_order_workspace() {
    let f = team_and_system().precedence(Precedence::ProviderOrder).opts(json!({"provider": {"byok_first": true}}));
    assert_eq!(
        f.plan(GPT4O),
        ["openai:byok:k-oa", "azure:byok:k-az", "openai:system#0", "azure:system#1", "openai:byok:f-oa"]
    );
}

#[test]
fn byok_first_must_be_a_boolean() {
    let mut body = json!({"provider": {"byok_first": "no"}});
    let e = crate::route::RoutingOptions::extract(body.as_object_mut().unwrap()).unwrap_err();
    assert!(e.to_string().contains("provider.byok_first"), "{e}");
}

#[test]
fn precedence_names_parse() {
    assert_eq!(Precedence::parse("byok_first"), Some(Precedence::ByokFirst));
    assert_eq!(Precedence::parse("provider_order"), Some(Precedence::ProviderOrder));
    assert_eq!(Precedence::parse("system_first"), None);
    assert_eq!(Precedence::ProviderOrder.as_str(), "provider_order");
}
