//! Explain: every rule that leaves a credential or a provider out of a plan names itself, with a
//! stable code. Each case is `fixture, model => [exclusions as "code provider credential"]`
//! (`-` for a whole provider), and the plan still comes out as without explaining.

use super::fixture::*;
use crate::credential::BedrockScope;
use crate::route::ExclusionReason;
use serde_json::json;

macro_rules! excludes {
    ($name:ident: $fx:expr, $model:expr => [$($want:literal),* $(,)?]) => {
        #[test]
        fn $name() {
            let f = $fx;
            let want: Vec<&str> = vec![$($want),*];
            let (excluded, planned) = f.exclusions($model);
            assert_eq!(excluded, want);
            // Explaining changes nothing about the plan itself.
            let plain = f.run($model, |r| r.map(|p| p.explain_compact()).unwrap_or_default());
            assert_eq!(planned, plain);
        }
    };
}

excludes!(nothing_excluded_is_an_empty_list: fx().key("k1", OpenAi).system(Azure), GPT4O => []);

excludes!(disabled_key: fx().key_with("k1", OpenAi, |m| m.disabled = true).system(OpenAi), GPT4O
    => ["disabled openai byok:k1"]);

excludes!(key_assigned_to_other_api_keys:
    fx().key_with("k1", OpenAi, |m| m.allowed_api_key_hashes = vec!["h-other".into()]).system(OpenAi).api_key("h-me"), GPT4O
    => ["not_assigned_to_key openai byok:k1"]);

excludes!(key_limited_to_other_users:
    fx().key_with("k1", OpenAi, |m| m.allowed_user_ids = vec!["alice".into()]).system(OpenAi).user("bob"), GPT4O
    => ["not_assigned_to_user openai byok:k1"]);

excludes!(key_limited_to_other_models:
    fx().key_with("k1", OpenAi, |m| m.allowed_models = vec![MINI.into()]).system(OpenAi), GPT4O
    => ["model_not_allowed openai byok:k1"]);

excludes!(key_not_zdr_under_zdr:
    fx().key("k1", OpenAi).key_with("k2", OpenAi, |m| m.declared_zdr = true).opts(json!({"provider": {"zdr": true}})), GPT4O
    => ["not_zdr openai byok:k1"]);

excludes!(system_not_zdr_under_data_collection_deny:
    fx().key("k1", OpenAi).system(OpenAi).opts(json!({"provider": {"data_collection": "deny"}})), MINI
    => ["system_not_zdr openai system#0"]);

excludes!(key_without_a_set_for_the_region:
    fx().key_with("k1", AmazonBedrock, |m| m.bedrock = Some(BedrockScope::Sets(vec!["eu-west-1".into()])))
        .key_with("k2", AmazonBedrock, |m| m.bedrock = Some(BedrockScope::Sets(vec!["us-west-2".into()])))
        .opts(json!({"providerOptions": {"bedrock": {"region": "us-west-2"}}})), NOVA
    => ["no_region amazon-bedrock byok:k1"]);

excludes!(quota_exhausted_key_is_left_out:
    fx().key("k1", OpenAi).key("k2", OpenAi).quota_exhausted("k1"), GPT4O
    => ["quota_exhausted openai byok:k1"]);

excludes!(quota_exhausted_system_credential_is_left_out:
    fx().system(OpenAi).system(Azure).quota_exhausted_system(0), GPT4O
    => ["quota_exhausted openai system#0"]);

excludes!(always_use_key_pins_out_the_system_credential:
    fx().always_use("k1", OpenAi).system(OpenAi), GPT4O
    => ["pinned_by_byok openai system#0"]);

excludes!(no_system_after_request_keys:
    fx().scoped(OpenAi).system(OpenAi).no_system_after_scoped(), GPT4O
    => ["no_system_after_request_keys openai system#0"]);

excludes!(request_keys_replace_stored_ones:
    fx().key("k1", OpenAi).scoped(OpenAi), GPT4O
    => ["replaced_by_request_keys openai byok:k1"]);

excludes!(provider_not_in_only:
    fx().system(OpenAi).system(Azure).opts(json!({"provider": {"only": ["azure"]}})), GPT4O
    => ["not_in_only openai -"]);

excludes!(provider_ignored:
    fx().system(OpenAi).system(Azure).opts(json!({"provider": {"ignore": ["openai"]}})), GPT4O
    => ["ignored openai -"]);

excludes!(provider_over_max_price:
    fx().system(Groq).system(Fireworks).opts(json!({"provider": {"max_price": {"prompt": 0.6}}})), LLAMA
    => ["over_max_price together -", "over_max_price fireworks -"]);

excludes!(provider_after_allow_fallbacks_false:
    fx().system(OpenAi).system(Azure).opts(json!({"provider": {"allow_fallbacks": false}})), GPT4O
    => ["no_fallbacks azure -"]);

#[test]
fn several_exclusions_for_one_request_in_planning_order() {
    let f = fx()
        .key_with("k-off", OpenAi, |m| m.disabled = true)
        .key_with("k-team-b", OpenAi, |m| m.allowed_api_key_hashes = vec!["h-b".into()])
        .key("k-broke", OpenAi)
        .key("k-ok", OpenAi)
        .system(OpenAi)
        .system(Azure)
        .api_key("h-a")
        .quota_exhausted("k-broke")
        .opts(json!({"provider": {"ignore": ["azure"]}}));
    let (excluded, planned) = f.exclusions(GPT4O);
    assert_eq!(
        excluded,
        [
            "ignored azure -",
            "disabled openai byok:k-off",
            "not_assigned_to_key openai byok:k-team-b",
            "quota_exhausted openai byok:k-broke",
        ]
    );
    assert_eq!(planned, ["openai:byok:k-ok", "openai:system#0"]);
}

#[test]
fn a_failed_plan_still_lists_why() {
    let f = fx().key_with("k1", OpenAi, |m| m.disabled = true).quota_exhausted("k1").key("k2", OpenAi).quota_exhausted("k2");
    let (excluded, planned) = f.exclusions(GPT4O);
    assert_eq!(excluded, ["disabled openai byok:k1", "quota_exhausted openai byok:k2"]);
    assert!(planned.is_empty());
    let msg = f.err(GPT4O).to_string();
    assert!(msg.contains("1 disabled") && msg.contains("1 out of quota"), "{msg}");
}

#[test]
fn quota_exhausted_key_is_tried_again_after_its_recheck_time() {
    let f = fx().key("k1", OpenAi).key("k2", OpenAi).quota_exhausted_long_ago("k1");
    assert_eq!(f.plan(GPT4O), ["openai:byok:k1", "openai:byok:k2"]);
    assert_eq!(f.exclusions(GPT4O).0, Vec::<String>::new());
}

#[test]
fn codes_are_stable_and_messages_say_what_happened() {
    let until = now();
    let all = [
        (ExclusionReason::NotInOnly, "not_in_only"),
        (ExclusionReason::Ignored, "ignored"),
        (ExclusionReason::OverMaxPrice { prompt_micros: 900_000, completion_micros: 0, request_micros: 0 }, "over_max_price"),
        (ExclusionReason::NoFallbacks, "no_fallbacks"),
        (ExclusionReason::Disabled, "disabled"),
        (ExclusionReason::QuotaExhausted { until }, "quota_exhausted"),
        (ExclusionReason::NotAssignedToKey, "not_assigned_to_key"),
        (ExclusionReason::NotAssignedToUser, "not_assigned_to_user"),
        (ExclusionReason::ModelNotAllowed, "model_not_allowed"),
        (ExclusionReason::NoRegion, "no_region"),
        (ExclusionReason::NotZdr, "not_zdr"),
        (ExclusionReason::SystemNotZdr, "system_not_zdr"),
        (ExclusionReason::PinnedByByok, "pinned_by_byok"),
        (ExclusionReason::NoSystemAfterRequestKeys, "no_system_after_request_keys"),
        (ExclusionReason::ReplacedByRequestKeys, "replaced_by_request_keys"),
    ];
    for (reason, code) in all {
        assert_eq!(reason.code(), code);
        assert!(!reason.message().is_empty(), "{code}");
    }
    let price = ExclusionReason::OverMaxPrice { prompt_micros: 900_000, completion_micros: 0, request_micros: 0 }.message();
    assert!(price.contains("prompt $0.90/M"), "{price}");
}
