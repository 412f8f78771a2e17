//! Planner table tests, grouped by the rule of `docs/routing.md` they back (numbered as issue 5's
//! rules; rule 4, what moves to the next attempt, is the gateway's and tested end to end).

use super::fixture::*;
use crate::credential::{AzureCredential, AzureDeployment};
use crate::route::{RouteError, Section};
use crate::Credential;
use serde_json::json;

/// `name: fixture, model => [expected attempts as provider:credential]`.
macro_rules! case {
    ($name:ident: $fx:expr, $model:expr => [$($want:literal),* $(,)?]) => {
        #[test]
        fn $name() {
            let want: Vec<&str> = vec![$($want),*];
            assert_eq!($fx.plan($model), want);
        }
    };
}

/// Two system credentials per OpenAI model provider, one per Llama provider.
fn systems() -> Fx {
    fx().system(OpenAi).system(Azure)
}

fn llama_systems() -> Fx {
    fx().system(Groq).system(DeepInfra).system(Together).system(Fireworks)
}

// ---- Rule 1: endpoints, narrowed and ordered by the request's options -------------------------

case!(system_only_follows_catalog_order: systems(), GPT4O => ["openai:system#0", "azure:system#1"]);

case!(order_puts_listed_providers_first:
    systems().opts(json!({"provider": {"order": ["azure"]}})), GPT4O
    => ["azure:system#1", "openai:system#0"]);

case!(order_lists_several_in_given_order_rest_in_catalog_order:
    llama_systems().opts(json!({"provider": {"order": ["fireworks", "groq"]}})), LLAMA
    => ["fireworks:system#3", "groq:system#0", "deepinfra:system#1", "together:system#2"]);

case!(vercel_gateway_order_is_honoured:
    systems().opts(json!({"providerOptions": {"gateway": {"order": ["azure", "openai"]}}})), GPT4O
    => ["azure:system#1", "openai:system#0"]);

case!(only_keeps_listed_providers:
    systems().opts(json!({"provider": {"only": ["Azure"]}})), GPT4O => ["azure:system#1"]);

case!(ignore_drops_provider:
    systems().opts(json!({"provider": {"ignore": ["openai"]}})), GPT4O => ["azure:system#1"]);

case!(only_and_ignore_combine:
    llama_systems().opts(json!({"provider": {"only": ["groq", "together", "fireworks"], "ignore": ["together"]}})), LLAMA
    => ["groq:system#0", "fireworks:system#3"]);

#[test]
fn only_without_serving_provider_is_no_endpoints() {
    let e = systems().opts(json!({"provider": {"only": ["anthropic"]}})).err(GPT4O);
    assert!(matches!(e, RouteError::NoEndpoints { .. }), "{e:?}");
    assert_eq!(e.to_string(), "no provider can serve `openai/gpt-4o`: provider.only allows anthropic, but it is served by openai, azure");
    assert_eq!(e.http_status(), 404);
}

#[test]
fn ignore_everything_is_no_endpoints() {
    let e = systems().opts(json!({"provider": {"ignore": ["openai", "azure"]}})).err(GPT4O);
    assert!(e.to_string().contains("provider.ignore excludes every provider"), "{e}");
}

case!(allow_fallbacks_false_keeps_first_eligible_provider:
    systems().key("k1", OpenAi).key("k2", Azure).opts(json!({"provider": {"allow_fallbacks": false}})), GPT4O
    => ["openai:byok:k1", "openai:system#0"]);

case!(allow_fallbacks_false_first_provider_is_the_sorted_first:
    llama_systems().opts(json!({"provider": {"sort": "price", "allow_fallbacks": false}})), LLAMA
    => ["deepinfra:system#1"]);

case!(allow_fallbacks_false_skips_providers_without_credentials:
    fx().system(GoogleVertex).system(AmazonBedrock).opts(json!({"provider": {"allow_fallbacks": false}})), SONNET
    => ["amazon-bedrock:system#1"]);

case!(allow_fallbacks_false_with_order_uses_only_listed_providers:
    llama_systems().opts(json!({"provider": {"order": ["together", "groq"], "allow_fallbacks": false}})), LLAMA
    => ["together:system#2", "groq:system#0"]);

#[test]
fn allow_fallbacks_false_listed_provider_without_credentials_is_no_credentials() {
    let f = fx().system(Anthropic).opts(json!({"provider": {"order": ["google-vertex"], "allow_fallbacks": false}}));
    assert!(matches!(f.err(SONNET), RouteError::NoCredentials { .. }));
}

case!(allow_fallbacks_false_keeps_all_keys_of_that_provider:
    systems().key("k1", OpenAi).key("k2", OpenAi).fallback("f1", OpenAi)
        .opts(json!({"provider": {"order": ["openai"], "allow_fallbacks": false}})), GPT4O
    => ["openai:byok:k1", "openai:byok:k2", "openai:system#0", "openai:byok:f1"]);

case!(sort_price_orders_by_input_plus_output:
    llama_systems().opts(json!({"provider": {"sort": "price"}})), LLAMA
    => ["deepinfra:system#1", "groq:system#0", "together:system#2", "fireworks:system#3"]);

case!(sort_object_form_is_accepted:
    llama_systems().opts(json!({"provider": {"sort": {"by": "price"}}})), LLAMA
    => ["deepinfra:system#1", "groq:system#0", "together:system#2", "fireworks:system#3"]);

case!(order_applies_on_top_of_sort:
    llama_systems().opts(json!({"provider": {"sort": "price", "order": ["fireworks"]}})), LLAMA
    => ["fireworks:system#3", "deepinfra:system#1", "groq:system#0", "together:system#2"]);

case!(sort_latency_uses_observed_stats_unknown_last:
    llama_systems()
        .observed(LLAMA, Together, Some(300.0), None)
        .observed(LLAMA, Fireworks, Some(120.0), None)
        .opts(json!({"provider": {"sort": "latency"}})), LLAMA
    => ["fireworks:system#3", "together:system#2", "groq:system#0", "deepinfra:system#1"]);

case!(sort_throughput_highest_first_unknown_last:
    llama_systems()
        .observed(LLAMA, DeepInfra, None, Some(40.0))
        .observed(LLAMA, Together, None, Some(90.0))
        .opts(json!({"provider": {"sort": "throughput"}})), LLAMA
    => ["together:system#2", "deepinfra:system#1", "groq:system#0", "fireworks:system#3"]);

case!(max_price_drops_expensive_endpoints:
    llama_systems().opts(json!({"provider": {"max_price": {"prompt": 0.6, "completion": 0.8}}})), LLAMA
    => ["groq:system#0", "deepinfra:system#1"]);

case!(max_price_request_limit_uses_per_request_price:
    systems().opts(json!({"provider": {"max_price": {"request": 0}}})), GPT4O
    => ["openai:system#0", "azure:system#1"]);

#[test]
fn max_price_none_left_names_price() {
    let e = systems().opts(json!({"provider": {"max_price": {"prompt": 1, "completion": 2}}})).err(GPT4O);
    assert!(matches!(e, RouteError::MaxPriceExceeded { .. }), "{e:?}");
    assert_eq!(e.http_status(), 402);
    assert_eq!(
        e.to_string(),
        "no provider for `openai/gpt-4o` is within provider.max_price (prompt $1.00/M, completion $2.00/M); \
         the cheapest, openai, costs prompt $2.50/M, completion $10.00/M. Raise max_price or choose a cheaper model"
    );
}

#[test]
fn max_price_names_cheapest_provider() {
    let e = llama_systems().opts(json!({"provider": {"max_price": {"completion": 0.1}}})).err(LLAMA);
    assert!(e.to_string().contains("the cheapest, deepinfra, costs completion $0.40/M"), "{e}");
}

#[test]
fn require_parameters_drops_model_lacking_parameter() {
    let f = fx().system(Anthropic).params(&["tools", "response_format"]);
    let e = f.opts(json!({"provider": {"require_parameters": true}})).err(SONNET);
    assert!(matches!(e, RouteError::NoEndpoints { .. }), "{e:?}");
    assert!(e.to_string().contains("does not support response_format"), "{e}");
}

case!(require_parameters_off_ignores_parameters:
    fx().system(Anthropic).params(&["response_format"]), SONNET => ["anthropic:system#0"]);

case!(require_parameters_passes_when_supported:
    systems().params(&["tools", "response_format"]).opts(json!({"provider": {"require_parameters": true}})), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(unlisted_model_not_filtered_by_require_parameters:
    systems().params(&["tools"]).opts(json!({"provider": {"require_parameters": true}})), "openai/gpt-9"
    => ["openai:system#0"]);

case!(zdr_keeps_only_declared_zdr_keys:
    fx().key("k1", OpenAi).key_with("k2", OpenAi, |m| m.declared_zdr = true)
        .opts(json!({"provider": {"zdr": true}})), GPT4O
    => ["openai:byok:k2"]);

case!(zdr_keeps_only_operator_zdr_system_credentials:
    fx().system(OpenAi).system_with(Azure, |s| s.zdr = true).opts(json!({"provider": {"zdr": true}})), GPT4O
    => ["azure:system#1"]);

#[test]
fn zdr_with_nothing_declared_is_no_credentials() {
    let e = systems().key("k1", OpenAi).opts(json!({"provider": {"zdr": true}})).err(GPT4O);
    assert!(matches!(e, RouteError::NoCredentials { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("1 not declared zero-data-retention"), "{msg}");
    assert!(msg.contains("2 system credential(s) not marked zero-data-retention"), "{msg}");
}

case!(data_collection_deny_keeps_byok_and_zdr_system:
    fx().key("k1", Azure).system(OpenAi).system_with(Azure, |s| s.zdr = true)
        .opts(json!({"provider": {"data_collection": "deny"}})), GPT4O
    => ["azure:byok:k1", "azure:system#1"]);

// ---- Rule 2: prioritized BYOK, then system, then fallback BYOK --------------------------------

case!(prioritized_byok_before_system_regardless_of_order:
    systems().key("k1", OpenAi).opts(json!({"provider": {"order": ["azure"]}})), GPT4O
    => ["openai:byok:k1", "azure:system#1", "openai:system#0"]);

case!(prioritized_across_providers_in_provider_order:
    systems().key("oa", OpenAi).key("az", Azure).opts(json!({"provider": {"order": ["azure"]}})), GPT4O
    => ["azure:byok:az", "openai:byok:oa", "azure:system#1", "openai:system#0"]);

case!(prioritized_keys_follow_sort_order:
    fx().key_with("k1", OpenAi, |m| m.sort_order = 2).key_with("k2", OpenAi, |m| m.sort_order = 1), GPT4O
    => ["openai:byok:k2", "openai:byok:k1"]);

case!(equal_sort_order_keeps_input_order:
    fx().key("k1", OpenAi).key("k2", OpenAi).key("k3", OpenAi), GPT4O
    => ["openai:byok:k1", "openai:byok:k2", "openai:byok:k3"]);

case!(fallback_keys_come_after_system:
    systems().fallback("f1", OpenAi).key("k1", Azure), GPT4O
    => ["azure:byok:k1", "openai:system#0", "azure:system#1", "openai:byok:f1"]);

case!(fallback_section_by_provider_order_then_sort_order:
    systems()
        .key_with("f-oa", OpenAi, |m| { m.is_fallback = true; m.sort_order = 5 })
        .key_with("f-az2", Azure, |m| { m.is_fallback = true; m.sort_order = 2 })
        .key_with("f-az1", Azure, |m| { m.is_fallback = true; m.sort_order = 1 })
        .opts(json!({"provider": {"order": ["azure"]}})), GPT4O
    => ["azure:system#1", "openai:system#0", "azure:byok:f-az1", "azure:byok:f-az2", "openai:byok:f-oa"]);

#[test]
fn sections_are_reported_on_attempts() {
    systems().key("k1", OpenAi).fallback("f1", Azure).run(GPT4O, |r| {
        let p = r.expect("plan");
        let s: Vec<Section> = p.attempts.iter().map(|a| a.section).collect();
        assert_eq!(s, [Section::Primary, Section::System, Section::System, Section::Fallback]);
        assert!(p.attempts[0].credential.is_byok() && !p.attempts[1].credential.is_byok());
    });
}

// ---- Rule 3: always-use (is_required) and byok-only pin a provider -----------------------------

case!(pinned_key_drops_system_for_its_provider_only:
    systems().always_use("k1", OpenAi), GPT4O => ["openai:byok:k1", "azure:system#1"]);

#[test]
fn pinned_key_marks_attempts_pinned() {
    systems().always_use("k1", OpenAi).fallback("f1", OpenAi).key("k2", Azure).run(GPT4O, |r| {
        let p = r.expect("plan");
        let pinned: Vec<(String, bool)> = p.attempts.iter().map(|a| (a.credential.to_string(), a.pinned)).collect();
        let want = [("byok:k1", true), ("byok:k2", false), ("system#1", false), ("byok:f1", true)];
        assert_eq!(pinned, want.map(|(c, b)| (c.to_owned(), b)));
    });
}

case!(pinned_key_pins_other_keys_of_provider_too:
    systems().always_use("k1", OpenAi).key("k2", OpenAi), GPT4O
    => ["openai:byok:k1", "openai:byok:k2", "azure:system#1"]);

case!(pinned_key_scoped_to_other_model_does_not_pin:
    systems().key_with("k1", OpenAi, |m| { m.always_use = true; m.allowed_models = vec![MINI.into()] }), GPT4O
    => ["openai:system#0", "azure:system#1"]);

// A pin is its owner's "never the system key" for the traffic the key serves: a key limited to
// other Keyway keys or users serves none of this request, so it does not pin it either.
case!(pinned_key_scoped_to_other_api_key_does_not_pin:
    systems().key_with("k1", OpenAi, |m| { m.always_use = true; m.allowed_api_key_hashes = vec!["h-other".into()] }).api_key("h-me"), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(pinned_key_scoped_to_calling_api_key_pins:
    systems().key_with("k1", OpenAi, |m| { m.always_use = true; m.allowed_api_key_hashes = vec!["h-me".into()] }).api_key("h-me"), GPT4O
    => ["openai:byok:k1", "azure:system#1"]);

case!(pinned_key_scoped_to_other_user_does_not_pin:
    systems().key_with("k1", OpenAi, |m| { m.always_use = true; m.allowed_user_ids = vec!["alice".into()] }).user("bob"), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(pinned_key_scoped_to_calling_user_pins:
    systems().key_with("k1", OpenAi, |m| { m.always_use = true; m.allowed_user_ids = vec!["alice".into()] }).user("alice"), GPT4O
    => ["openai:byok:k1", "azure:system#1"]);

case!(byok_only_key_scoped_to_other_api_key_does_not_pin:
    systems().key_with("k1", OpenAi, |m| { m.is_byok_only = true; m.allowed_api_key_hashes = vec!["h-other".into()] }).api_key("h-me"), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(always_use_on_fallback_key_does_not_pin:
    systems().key_with("f1", OpenAi, |m| { m.always_use = true; m.is_fallback = true }), GPT4O
    => ["openai:system#0", "azure:system#1", "openai:byok:f1"]);

case!(disabled_pinned_key_does_not_pin:
    systems().key_with("k1", OpenAi, |m| { m.always_use = true; m.disabled = true }), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(pinned_key_in_cooldown_still_pins:
    systems().always_use("k1", OpenAi).cooled("k1"), GPT4O => ["openai:byok:k1", "azure:system#1"]);

case!(pinned_key_not_zdr_still_pins_under_zdr:
    fx().always_use("k1", OpenAi).system_with(OpenAi, |s| s.zdr = true).system_with(Azure, |s| s.zdr = true)
        .opts(json!({"provider": {"zdr": true}})), GPT4O
    => ["azure:system#1"]);

case!(byok_only_drops_system_for_provider_even_for_other_models:
    systems().key_with("k1", OpenAi, |m| { m.is_byok_only = true; m.allowed_models = vec![MINI.into()] }), GPT4O
    => ["azure:system#1"]);

case!(byok_only_with_fallback_is_treated_as_byok_only:
    systems().key_with("f1", OpenAi, |m| { m.is_byok_only = true; m.is_fallback = true }), GPT4O
    => ["azure:system#1", "openai:byok:f1"]);

#[test]
fn byok_only_without_usable_key_names_the_pin() {
    let f = fx().system(OpenAi).key_with("k1", OpenAi, |m| { m.is_byok_only = true; m.allowed_models = vec![MINI.into()] });
    let msg = f.err(GPT4O).to_string();
    assert!(msg.contains("1 limited to other models"), "{msg}");
    assert!(msg.contains("1 system credential(s) not used: an always-use or byok-only key pins the provider"), "{msg}");
}

// ---- Rule 6: scoping --------------------------------------------------------------------------

case!(disabled_key_never_used:
    systems().key_with("k1", OpenAi, |m| m.disabled = true), GPT4O => ["openai:system#0", "azure:system#1"]);

case!(key_limited_to_other_api_key_is_skipped:
    systems().key_with("k1", OpenAi, |m| m.allowed_api_key_hashes = vec!["h-other".into()]).api_key("h-me"), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(key_limited_to_calling_api_key_is_used:
    fx().key_with("k1", OpenAi, |m| m.allowed_api_key_hashes = vec!["h-other".into(), "h-me".into()]).api_key("h-me"), GPT4O
    => ["openai:byok:k1"]);

case!(key_limited_to_users_skipped_without_user:
    systems().key_with("k1", OpenAi, |m| m.allowed_user_ids = vec!["alice".into()]), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(key_limited_to_users_used_for_that_user:
    systems().key_with("k1", OpenAi, |m| m.allowed_user_ids = vec!["alice".into()]).user("alice"), GPT4O
    => ["openai:byok:k1", "openai:system#0", "azure:system#1"]);

case!(key_limited_to_models_serves_only_those:
    systems().key_with("k1", OpenAi, |m| m.allowed_models = vec![MINI.into()]), GPT4O
    => ["openai:system#0", "azure:system#1"]);

case!(key_limited_to_models_serves_listed_model:
    fx().key_with("k1", OpenAi, |m| m.allowed_models = vec![MINI.into()]), MINI => ["openai:byok:k1"]);

#[test]
fn no_credentials_error_counts_skipped_keys() {
    let f = fx()
        .key_with("k1", OpenAi, |m| m.disabled = true)
        .key_with("k2", Azure, |m| m.allowed_api_key_hashes = vec!["h".into()]);
    let e = f.err(GPT4O);
    assert_eq!(e.http_status(), 404);
    assert_eq!(
        e.to_string(),
        "no usable credential for `openai/gpt-4o` on openai, azure: keys skipped: 1 disabled, \
         1 limited to other Keyway keys or users; add a BYOK key for one of these providers \
         (POST /api/v1/byok) or ask the operator for a system credential"
    );
}

// ---- Rule 5: health -------------------------------------------------------------------------

case!(cooled_key_moves_to_end_of_section:
    systems().key("k1", OpenAi).key("k2", OpenAi).cooled("k1"), GPT4O
    => ["openai:byok:k2", "openai:byok:k1", "openai:system#0", "azure:system#1"]);

case!(unhealthy_key_moves_to_end_of_section:
    fx().key("k1", OpenAi).key("k2", OpenAi).key("k3", OpenAi).unhealthy("k1"), GPT4O
    => ["openai:byok:k2", "openai:byok:k3", "openai:byok:k1"]);

case!(degraded_keys_keep_sort_order_among_themselves:
    fx().key_with("k1", OpenAi, |m| m.sort_order = 1).key_with("k2", OpenAi, |m| m.sort_order = 2).key("k0", OpenAi)
        .cooled("k2").unhealthy("k1"), GPT4O
    => ["openai:byok:k0", "openai:byok:k1", "openai:byok:k2"]);

#[test]
fn cooled_only_key_still_planned() {
    fx().key("k1", OpenAi).cooled("k1").run(GPT4O, |r| {
        let p = r.expect("plan");
        assert_eq!(p.explain_compact(), ["openai:byok:k1"]);
        assert!(p.attempts[0].degraded);
    });
}

case!(expired_cooldown_restores_position:
    fx().key("k1", OpenAi).key("k2", OpenAi).cooled_long_ago("k1"), GPT4O
    => ["openai:byok:k1", "openai:byok:k2"]);

case!(cooled_fallback_key_stays_in_fallback_section:
    fx().system(OpenAi).fallback("f1", OpenAi).fallback("f2", OpenAi).cooled("f1"), GPT4O
    => ["openai:system#0", "openai:byok:f2", "openai:byok:f1"]);

case!(cooled_key_stays_within_its_providers_section:
    fx().key("k1", OpenAi).key("k2", Azure).cooled("k1"), GPT4O
    => ["openai:byok:k1", "azure:byok:k2"]);

case!(cooled_system_credential_moves_after_other_system_credentials:
    fx().system(OpenAi).system(OpenAi).cooled_system(0), GPT4O => ["openai:system#1", "openai:system#0"]);

// ---- Rule 7: request-scoped BYOK --------------------------------------------------------------

case!(request_scoped_overrides_stored:
    fx().key("k1", OpenAi).always_use("k2", Azure).scoped(OpenAi), GPT4O => ["openai:request:openai#0"]);

case!(request_scoped_several_per_provider_in_order:
    fx().scoped(Anthropic).scoped(AmazonBedrock).scoped(Anthropic), SONNET
    => ["anthropic:request:anthropic#0", "anthropic:request:anthropic#2", "amazon-bedrock:request:amazon-bedrock#1"]);

case!(request_scoped_then_system_by_default:
    systems().scoped(Azure), GPT4O => ["azure:request:azure#0", "openai:system#0", "azure:system#1"]);

case!(request_scoped_without_system_when_operator_disables:
    systems().scoped(Azure).no_system_after_scoped(), GPT4O => ["azure:request:azure#0"]);

case!(request_scoped_ignores_stored_pins:
    systems().always_use("k1", OpenAi).key_with("k2", Azure, |m| m.is_byok_only = true).scoped(Azure), GPT4O
    => ["azure:request:azure#0", "openai:system#0", "azure:system#1"]);

#[test]
fn request_scoped_for_other_provider_without_system_is_no_credentials() {
    let e = systems().key("k1", OpenAi).scoped(Anthropic).no_system_after_scoped().err(GPT4O);
    let msg = e.to_string();
    assert!(msg.contains("request-scoped credentials (providerOptions.gateway.byok) are for anthropic"), "{msg}");
    assert!(msg.contains("the operator does not add system credentials after request-scoped ones"), "{msg}");
}

// ---- Rule 8: model mappings -------------------------------------------------------------------

#[test]
fn model_mapping_sends_mapped_id() {
    let f = fx().key_with("k1", Azure, |m| m.model_mappings = vec![mapping(GPT4O, "my-gpt4o-deployment")]);
    assert_eq!(f.plan_detailed(GPT4O), ["openai/gpt-4o azure:byok:k1 my-gpt4o-deployment"]);
}

#[test]
fn model_mapping_requires_exact_slug() {
    let f = fx().key_with("k1", Azure, |m| m.model_mappings = vec![mapping("openai/gpt-4o-2024", "x")]);
    assert_eq!(f.plan_detailed(GPT4O), ["openai/gpt-4o azure:byok:k1 gpt-4o"]);
}

#[test]
fn mapping_is_per_credential() {
    let f = fx().key_with("k1", Azure, |m| m.model_mappings = vec![mapping(GPT4O, "dep-a")]).key("k2", Azure);
    assert_eq!(f.plan_detailed(GPT4O), ["openai/gpt-4o azure:byok:k1 dep-a", "openai/gpt-4o azure:byok:k2 gpt-4o"]);
}

#[test]
fn azure_deployment_list_serves_only_listed_slugs() {
    let f = systems().key_with("k1", Azure, |m| m.azure_deployments = Some(vec![mapping(MINI, "mini-dep")]));
    assert_eq!(f.plan(GPT4O), ["openai:system#0", "azure:system#1"]);
    assert_eq!(f.plan_detailed(MINI)[0], "openai/gpt-4o-mini azure:byok:k1 mini-dep");
}

#[test]
fn azure_deployment_list_from_credential_shape() {
    let dep = AzureDeployment {
        model_slug: MINI.into(),
        endpoint_url: "https://r.openai.azure.com".into(),
        api_key: "k".to_owned().into(),
        model_id: "mini-prod".into(),
    };
    let cred = Credential::Azure(AzureCredential::Deployments(vec![dep]));
    let meta = crate::route::CredentialMeta::new("k1", Azure).with_credential(&cred);
    assert_eq!(meta.azure_deployments, Some(vec![mapping(MINI, "mini-prod")]));
    // The same shape sent per request.
    let f = fx().scoped_cred(Azure, cred);
    assert_eq!(f.plan_detailed(MINI), ["openai/gpt-4o-mini azure:request:azure#0 mini-prod"]);
    assert!(matches!(f.err(GPT4O), RouteError::NoCredentials { .. }));
}

#[test]
fn request_scoped_azure_model_mappings_apply() {
    let cred = Credential::Azure(AzureCredential::Resource {
        api_key: "k".to_owned().into(),
        resource_name: "res".into(),
        model_mappings: vec![mapping(GPT4O, "gpt4o-eu")],
    });
    let f = fx().scoped_cred(Azure, cred);
    assert_eq!(f.plan_detailed(GPT4O), ["openai/gpt-4o azure:request:azure#0 gpt4o-eu"]);
}

#[test]
fn system_credential_model_mapping_applies() {
    let f = fx().system_with(Azure, |s| s.model_mappings = vec![mapping(GPT4O, "ops-gpt4o")]);
    assert_eq!(f.plan_detailed(GPT4O), ["openai/gpt-4o azure:system#0 ops-gpt4o"]);
}

// ---- Rule 10: `models` fallback ---------------------------------------------------------------

#[test]
fn models_fallback_concatenates_plans_in_order() {
    let f = fx().key("k1", OpenAi).system(Anthropic).opts(json!({"models": [SONNET, MINI]}));
    assert_eq!(
        f.plan_detailed(GPT4O),
        [
            "openai/gpt-4o openai:byok:k1 gpt-4o",
            "anthropic/claude-sonnet-4.5 anthropic:system#0 claude-sonnet-4-5",
            "openai/gpt-4o-mini openai:byok:k1 gpt-4o-mini",
        ]
    );
}

case!(models_fallback_skips_primary_duplicate:
    fx().key("k1", OpenAi).opts(json!({"models": [GPT4O, MINI, GPT4O]})), GPT4O
    => ["openai:byok:k1", "openai:byok:k1"]);

#[test]
fn models_fallback_skips_unplannable_model_and_reports_it() {
    fx().key("k1", OpenAi).opts(json!({"models": ["nobody/model", SONNET, MINI]})).run(GPT4O, |r| {
        let p = r.expect("plan");
        let models: Vec<&str> = p.attempts.iter().map(|a| a.model).collect();
        assert_eq!(models, [GPT4O, MINI]);
        let skipped: Vec<&str> = p.skipped.iter().map(|s| s.model).collect();
        assert_eq!(skipped, ["nobody/model", SONNET]);
        assert!(matches!(p.skipped[0].error, RouteError::UnknownModel { .. }));
        assert!(p.explain().contains("skipped nobody/model: model `nobody/model` is not in the catalog"));
    });
}

#[test]
fn models_fallback_all_fail_returns_first_models_error() {
    let e = fx().system(Anthropic).opts(json!({"models": ["nobody/x"]})).err(GPT4O);
    assert!(matches!(&e, RouteError::NoCredentials { model, .. } if model == GPT4O), "{e:?}");
}

case!(models_fallback_each_model_applies_its_own_scoping:
    fx().key_with("k1", OpenAi, |m| m.allowed_models = vec![MINI.into()]).system(Azure).opts(json!({"models": [MINI]})), GPT4O
    => ["azure:system#0", "openai:byok:k1", "azure:system#0"]);

case!(vercel_gateway_models_are_fallbacks_too:
    fx().system(OpenAi).opts(json!({"providerOptions": {"gateway": {"models": [MINI]}}})), GPT4O
    => ["openai:system#0", "openai:system#0"]);

// ---- Rule 9: Bedrock region -------------------------------------------------------------------

fn regions(f: &Fx) -> Vec<Option<String>> {
    f.run(SONNET, |r| r.expect("plan").attempts.iter().map(|a| a.region.map(str::to_owned)).collect())
}

#[test]
fn bedrock_region_from_request() {
    let f = fx().system(AmazonBedrock).opts(json!({"providerOptions": {"bedrock": {"region": "eu-west-1"}}}));
    assert_eq!(regions(&f), [Some("eu-west-1".to_owned())]);
}

#[test]
fn bedrock_region_defaults_to_catalog() {
    assert_eq!(regions(&fx().key("k1", AmazonBedrock)), [Some("us-east-1".to_owned())]);
}

#[test]
fn region_is_none_for_other_providers() {
    let f = fx().system(Anthropic).system(GoogleVertex).opts(json!({"providerOptions": {"bedrock": {"region": "eu-west-1"}}}));
    assert_eq!(regions(&f), [None, None]);
}

#[test]
fn unlisted_bedrock_model_has_request_region_or_none() {
    let f = fx().system(AmazonBedrock);
    let got = f.run("bedrock/amazon.nova-pro-v1:0", |r| {
        let a = r.expect("plan").attempts[0];
        (a.provider, a.upstream_model.to_owned(), a.region.map(str::to_owned), a.endpoint.is_none())
    });
    assert_eq!(got, (AmazonBedrock, "amazon.nova-pro-v1:0".to_owned(), None, true));
    let f = f.opts(json!({"providerOptions": {"bedrock": {"region": "ap-south-1"}}}));
    let region = f.run("bedrock/amazon.nova-pro-v1:0", |r| r.expect("plan").attempts[0].region.map(str::to_owned));
    assert_eq!(region.as_deref(), Some("ap-south-1"));
}

// ---- Models the catalog doesn't list, and errors ----------------------------------------------

#[test]
fn unknown_model_is_error() {
    let e = fx().system(OpenAi).err("gpt-4o");
    assert!(matches!(e, RouteError::UnknownModel { .. }));
    assert_eq!(e.http_status(), 400);
    assert!(e.to_string().contains("GET /v1/models"));
    assert!(matches!(fx().system(OpenAi).err("openai/"), RouteError::UnknownModel { .. }));
}

#[test]
fn unlisted_model_routes_by_provider_prefix() {
    let f = fx().key("k1", OpenAi).system(OpenAi);
    assert_eq!(f.plan_detailed("openai/gpt-9"), ["openai/gpt-9 openai:byok:k1 gpt-9", "openai/gpt-9 openai:system#0 gpt-9"]);
}

#[test]
fn catalog_model_without_endpoints_is_no_endpoints() {
    let e = fx().system(OpenAi).err("empty/model");
    assert!(e.to_string().contains("the catalog lists no provider for it"), "{e}");
}

#[test]
fn no_credentials_at_all_names_providers() {
    let e = fx().err(SONNET);
    assert_eq!(e.code(), "no_credentials");
    assert!(e.to_string().starts_with("no usable credential for `anthropic/claude-sonnet-4.5` on anthropic, amazon-bedrock, google-vertex: add a BYOK key"), "{e}");
}

// ---- Output helpers ----------------------------------------------------------------------------

#[test]
fn explain_lists_one_line_per_attempt() {
    let f = fx().always_use("k1", AmazonBedrock).system(Anthropic).cooled("k1");
    let text = f.run(SONNET, |r| r.expect("plan").explain());
    assert_eq!(
        text,
        "1. anthropic/claude-sonnet-4.5 -> amazon-bedrock (anthropic.claude-sonnet-4-5-v1:0) with byok:k1 in us-east-1 [primary, pinned, degraded]\n\
         2. anthropic/claude-sonnet-4.5 -> anthropic (claude-sonnet-4-5) with system#0 [system]"
    );
}

#[test]
fn ignored_options_carried_into_plan() {
    let f = fx().system(OpenAi).opts(json!({"provider": {"quantizations": ["fp8"], "order": ["cerebras"]}}));
    let mut ignored = f.run(GPT4O, |r| r.expect("plan").ignored.to_vec());
    ignored.sort();
    assert_eq!(ignored, ["provider.order:cerebras", "provider.quantizations"]);
}

#[test]
fn credential_source_header_values() {
    fx().key("k1", OpenAi).scoped(OpenAi).system(OpenAi).run(GPT4O, |r| {
        let p = r.expect("plan");
        let h: Vec<&str> = p.attempts.iter().map(|a| a.credential.header_value()).collect();
        assert_eq!(h, ["request", "system"]);
        assert!(p.attempts[0].credential.health_key().is_none());
    });
    fx().key("k1", OpenAi).run(GPT4O, |r| {
        let a = r.expect("plan").attempts[0];
        assert_eq!(a.credential.header_value(), "k1");
        assert_eq!(a.credential.health_key(), Some(crate::route::HealthKey::Byok("k1")));
        assert_eq!(a.endpoint.map(|e| e.input_per_mtok_micros), Some(2_500_000));
    });
}

/// The gateway's flow, end to end: the health lock is released before the plan is walked, and
/// outcomes are recorded afterwards.
#[test]
fn gateway_flow_compiles_and_records_health() {
    use crate::catalog::Catalog;
    use crate::route::{
        plan, requested_parameters, CredentialMeta, HealthTable, Outcome, PlanInput, RequestScopedCredential,
        RoutingOptions, SystemCredential,
    };
    use std::sync::Mutex;

    let catalog = Catalog::builtin().expect("catalog");
    let stored = vec![CredentialMeta::new("k1", OpenAi)];
    let system = vec![SystemCredential::new(OpenAi)];
    let health = Mutex::new(HealthTable::default());

    let mut body = json!({"model": "openai/gpt-4o-mini", "messages": [], "tools": [], "user": "u1",
                          "provider": {"sort": "price", "foo": 1}})
        .as_object()
        .cloned()
        .expect("object");
    let options = RoutingOptions::extract(&mut body).expect("options");
    let creds: Vec<(crate::ProviderSlug, Credential)> =
        options.byok.iter().map(|(p, v)| Credential::parse(p, v).map(|c| (p, c))).collect::<Result<_, _>>().expect("byok");
    let scoped: Vec<RequestScopedCredential<'_>> = creds.iter().map(|(p, c)| RequestScopedCredential::new(*p, c)).collect();
    let model = body.get("model").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let params = requested_parameters(&body);

    let route = {
        let guard = health.lock().expect("lock");
        let input = PlanInput {
            stored: &stored,
            request_scoped: &scoped,
            system: &system,
            api_key_hash: Some("hash-of-kw-key"),
            user: body.get("user").and_then(|v| v.as_str()),
            requested_parameters: &params,
            health: &*guard,
            ..PlanInput::new(&model, &options, &catalog, now())
        };
        plan(&input).expect("plan")
    }; // guard dropped here; `route` lives on
    body.insert("model".into(), json!("mutable again"));

    assert_eq!(route.ignored, ["provider.foo"]);
    for attempt in &route.attempts {
        if let Some(key) = attempt.credential.health_key() {
            health.lock().expect("lock").record(key, Outcome::RateLimited { retry_after: None }, now());
        }
    }
    assert!(health.lock().expect("lock").get(crate::route::HealthKey::Byok("k1")).is_some_and(|h| h.is_cooling(now())));
}
