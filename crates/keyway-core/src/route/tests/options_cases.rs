//! Reading routing options from a request body.

use crate::route::{requested_parameters, DataCollection, MaxPrice, RouteError, RoutingOptions, SortBy};
use crate::ProviderSlug::*;
use serde_json::{json, Map, Value};

fn extract(v: Value) -> (Result<RoutingOptions, RouteError>, Map<String, Value>) {
    let mut body = match v {
        Value::Object(m) => m,
        _ => panic!("body must be an object"),
    };
    let r = RoutingOptions::extract(&mut body);
    (r, body)
}

fn ok(v: Value) -> RoutingOptions {
    extract(v).0.expect("options parse")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn routing_fields_are_removed_from_body() {
    let (r, body) = extract(json!({
        "model": "openai/gpt-4o", "messages": [], "temperature": 0.2, "user": "u1",
        "provider": {"order": ["openai"]}, "models": ["openai/gpt-4o-mini"], "route": "fallback",
        "providerOptions": {"gateway": {"only": ["azure"]}, "bedrock": {"region": "eu-west-1"},
                            "anthropic": {"cacheControl": true}},
    }));
    r.expect("options parse");
    assert_eq!(
        Value::Object(body),
        json!({"model": "openai/gpt-4o", "messages": [], "temperature": 0.2, "user": "u1",
               "providerOptions": {"anthropic": {"cacheControl": true}}})
    );
}

#[test]
fn provider_options_removed_when_emptied() {
    let (_, body) = extract(json!({"model": "m", "providerOptions": {"gateway": {"order": []}, "bedrock": {"region": "us-west-2"}}}));
    assert_eq!(Value::Object(body), json!({"model": "m"}));
    let (_, body) = extract(json!({"providerOptions": {"bedrock": {"region": "us-west-2", "guardrail": "g"}}}));
    assert_eq!(Value::Object(body), json!({"providerOptions": {"bedrock": {"guardrail": "g"}}}));
}

#[test]
fn everything_parses() {
    let o = ok(json!({
        "models": ["a/b", "c/d"],
        "provider": {"order": ["OpenAI", "azure"], "only": ["openai", "azure", "anthropic"], "ignore": ["groq"],
                     "allow_fallbacks": false, "sort": "throughput", "max_price": {"prompt": 1, "completion": "2.5"},
                     "zdr": true, "data_collection": "deny", "require_parameters": true},
        "providerOptions": {"bedrock": {"region": "eu-central-1"}},
    }));
    assert_eq!(o.models, ["a/b", "c/d"]);
    assert_eq!(o.order, [OpenAi, Azure]);
    assert_eq!(o.only, Some(vec![OpenAi, Azure, Anthropic]));
    assert_eq!(o.ignore, [Groq]);
    assert!(!o.allow_fallbacks && o.zdr && o.require_parameters);
    assert_eq!(o.sort, Some(SortBy::Throughput));
    assert_eq!(o.data_collection, DataCollection::Deny);
    assert_eq!(o.max_price, Some(MaxPrice { prompt_micros: Some(1_000_000), completion_micros: Some(2_500_000), request_micros: None }));
    assert_eq!(o.bedrock_region.as_deref(), Some("eu-central-1"));
    assert!(o.ignored.is_empty());
}

#[test]
fn defaults_when_absent() {
    let o = ok(json!({"model": "m", "messages": []}));
    assert_eq!(o, RoutingOptions::default());
    assert!(o.allow_fallbacks);
    assert_eq!(ok(json!({"provider": null, "models": null, "route": null})), RoutingOptions::default());
    assert_eq!(ok(json!({"provider": {"order": null, "zdr": null}})), RoutingOptions::default());
}

#[test]
fn unknown_provider_keys_reported() {
    let o = ok(json!({"provider": {"quantizations": ["fp8"], "experimental": {}, "order": ["openai"],
                                   "sort": {"by": "price", "partition": "none"}, "max_price": {"prompt": 1, "image": 2}}}));
    assert_eq!(
        sorted(o.ignored),
        ["provider.experimental", "provider.max_price.image", "provider.quantizations", "provider.sort.partition"]
    );
    assert_eq!(o.sort, Some(SortBy::Price));
}

#[test]
fn unknown_gateway_keys_reported() {
    let o = ok(json!({"providerOptions": {"gateway": {"order": ["azure"], "tags": ["x"], "user": "u"}}}));
    assert_eq!(sorted(o.ignored), ["providerOptions.gateway.tags", "providerOptions.gateway.user"]);
    assert_eq!(o.order, [Azure]);
}

#[test]
fn route_fallback_accepted_other_values_reported() {
    assert!(ok(json!({"route": "fallback"})).ignored.is_empty());
    assert_eq!(ok(json!({"route": "sort"})).ignored, ["route"]);
}

#[test]
fn provider_names_accept_slugs_display_names_and_aliases() {
    let o = ok(json!({"provider": {"order": [
        "OpenAI", "Amazon Bedrock", "google-vertex", "Google AI Studio", "Z.AI", "xai", "MOONSHOT AI",
        "together.ai", "Azure OpenAI", "deepinfra", "Fireworks"]}}));
    assert_eq!(o.order, [OpenAi, AmazonBedrock, GoogleVertex, GoogleAiStudio, ZAi, XAi, MoonshotAi, Together, Azure, DeepInfra, Fireworks]);
    let o = ok(json!({"provider": {"only": ["bedrock", "vertex", "gemini", "amazon-bedrock"]}}));
    // Duplicates collapse: "bedrock" and "amazon-bedrock" are one provider.
    assert_eq!(o.only, Some(vec![AmazonBedrock, GoogleVertex, GoogleAiStudio]));
}

#[test]
fn unknown_provider_names_are_reported_not_fatal() {
    let o = ok(json!({"provider": {"order": ["cerebras", "openai"], "only": ["sambanova"]}}));
    assert_eq!(o.order, [OpenAi]);
    // An allow-list of only unknown providers allows nothing (the planner says so).
    assert_eq!(o.only, Some(vec![]));
    assert_eq!(sorted(o.ignored), ["provider.only:sambanova", "provider.order:cerebras"]);
}

#[test]
fn order_from_provider_and_gateway_merge() {
    let o = ok(json!({"provider": {"order": ["azure"]}, "providerOptions": {"gateway": {"order": ["openai", "azure"]}}}));
    assert_eq!(o.order, [Azure, OpenAi]);
}

#[test]
fn only_from_both_intersects() {
    let o = ok(json!({"provider": {"only": ["azure", "openai"]}, "providerOptions": {"gateway": {"only": ["openai", "anthropic"]}}}));
    assert_eq!(o.only, Some(vec![OpenAi]));
}

#[test]
fn models_from_both_lists_dedupe_in_order() {
    let o = ok(json!({"models": ["a/b", "a/b", "c/d"], "providerOptions": {"gateway": {"models": ["c/d", "e/f"]}}}));
    assert_eq!(o.models, ["a/b", "c/d", "e/f"]);
}

#[test]
fn models_limit_enforced() {
    let many: Vec<String> = (0..17).map(|i| format!("openai/m{i}")).collect();
    let (r, _) = extract(json!({"models": many}));
    assert!(matches!(r, Err(RouteError::InvalidOption { .. })));
}

#[test]
fn max_price_converts_usd_per_million_to_micros() {
    let o = ok(json!({"provider": {"max_price": {"prompt": 0.15, "completion": "0.6", "request": 0.005}}}));
    assert_eq!(o.max_price, Some(MaxPrice { prompt_micros: Some(150_000), completion_micros: Some(600_000), request_micros: Some(5_000) }));
    let o = ok(json!({"provider": {"max_price": {"prompt": null}}}));
    assert_eq!(o.max_price, Some(MaxPrice::default()));
}

#[test]
fn bad_types_rejected() {
    let cases: &[(Value, &str, &str)] = &[
        (json!({"provider": "openai"}), "provider", "must be an object"),
        (json!({"provider": {"order": "openai"}}), "provider.order", "list of provider names"),
        (json!({"provider": {"order": [1]}}), "provider.order", "(strings)"),
        (json!({"provider": {"only": {}}}), "provider.only", "list of provider names"),
        (json!({"provider": {"ignore": true}}), "provider.ignore", "list of provider names"),
        (json!({"provider": {"allow_fallbacks": "no"}}), "provider.allow_fallbacks", "true or false"),
        (json!({"provider": {"zdr": 1}}), "provider.zdr", "true or false"),
        (json!({"provider": {"require_parameters": "yes"}}), "provider.require_parameters", "true or false"),
        (json!({"provider": {"sort": "cheapest"}}), "provider.sort", "\"price\", \"latency\" or \"throughput\""),
        (json!({"provider": {"sort": {"partition": "model"}}}), "provider.sort", "\"price\""),
        (json!({"provider": {"sort": 3}}), "provider.sort", "\"price\""),
        (json!({"provider": {"max_price": 5}}), "provider.max_price", "USD per million tokens"),
        (json!({"provider": {"max_price": {"prompt": -1}}}), "provider.max_price.prompt", "non-negative"),
        (json!({"provider": {"max_price": {"completion": "cheap"}}}), "provider.max_price.completion", "non-negative"),
        (json!({"provider": {"data_collection": "maybe"}}), "provider.data_collection", "\"allow\" or \"deny\""),
        (json!({"models": "openai/gpt-4o"}), "models", "list of model slugs"),
        (json!({"models": ["ok/x", 2]}), "models", "non-empty model slugs"),
        (json!({"models": [""]}), "models", "non-empty model slugs"),
        (json!({"providerOptions": {"gateway": []}}), "providerOptions.gateway", "must be an object"),
        (json!({"providerOptions": {"gateway": {"models": {}}}}), "providerOptions.gateway.models", "list of model slugs"),
        (json!({"providerOptions": {"gateway": {"byok": []}}}), "providerOptions.gateway.byok", "provider name -> list"),
        (json!({"providerOptions": {"gateway": {"byok": {"anthropic": {"apiKey": "k"}}}}}), "providerOptions.gateway.byok.anthropic", "list of credentials"),
        (json!({"providerOptions": {"gateway": {"byok": {"nobody": []}}}}), "providerOptions.gateway.byok.nobody", "unknown provider"),
        (json!({"providerOptions": {"bedrock": {"region": 5}}}), "providerOptions.bedrock.region", "region name"),
    ];
    for (body, want_path, want_msg) in cases {
        let (r, _) = extract(body.clone());
        match r {
            Err(e @ RouteError::InvalidOption { .. }) => {
                let RouteError::InvalidOption { path, message } = &e else { unreachable!() };
                assert_eq!(path, want_path, "for {body}");
                assert!(message.contains(want_msg), "for {body}: {message}");
                assert_eq!(e.http_status(), 400);
                assert_eq!(e.code(), "invalid_routing_option");
            }
            other => panic!("for {body}: expected InvalidOption, got {other:?}"),
        }
    }
}

#[test]
fn request_byok_parsed_and_debug_redacts() {
    let o = ok(json!({"providerOptions": {"gateway": {"byok": {
        "anthropic": [{"apiKey": "sk-ant-secret-1"}, {"apiKey": "sk-ant-secret-2"}],
        "bedrock": [{"accessKeyId": "AKIAXXXXXXXXXXXXXXXX", "secretAccessKey": "shh", "region": "us-east-1"}],
    }}}}));
    // Within a provider, request order; across providers the order doesn't matter to planning.
    let anthropic: Vec<Option<&str>> =
        o.byok.iter().filter(|(p, _)| *p == Anthropic).map(|(_, v)| v.get("apiKey").and_then(Value::as_str)).collect();
    assert_eq!(anthropic, [Some("sk-ant-secret-1"), Some("sk-ant-secret-2")]);
    assert_eq!(o.byok.iter().filter(|(p, _)| *p == AmazonBedrock).count(), 1);
    assert_eq!(o.byok.len(), 3);
    let debug = format!("{o:?}");
    assert!(!debug.contains("secret") && !debug.contains("shh"), "{debug}");
}

#[test]
fn requested_parameters_maps_body_fields() {
    let body = json!({"messages": [], "tools": [], "max_completion_tokens": 5, "reasoning_effort": "low",
                      "temperature": null, "thinking": {"type": "enabled"}, "frequency_penalty": 0.1});
    let Value::Object(m) = body else { unreachable!() };
    assert_eq!(requested_parameters(&m), ["tools", "max_tokens", "reasoning"]);
}
