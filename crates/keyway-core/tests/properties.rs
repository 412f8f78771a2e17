//! Properties over arbitrary input (the cheap stand-in for a fuzzer in the test command):
//! credential JSON of any shape and routing options of any shape never panic; a credential
//! error never repeats the secret it was given; extracting routing options removes exactly the
//! routing fields and leaves every other field as it was.

#![allow(clippy::unwrap_used, clippy::panic)]

use keyway_core::route::RoutingOptions;
use keyway_core::{Credential, ProviderSlug};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const SECRET: &str = "SECRET-d0n7-1eak-7h15-v4lue";

/// Any JSON value, with the keys and strings credential and routing parsers look for mixed in.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("key".to_owned()), Just("api_key".to_owned()), Just("accessKeyId".to_owned()), Just("secretAccessKey".to_owned()),
        Just("region".to_owned()), Just("endpoint_url".to_owned()), Just("private_key".to_owned()), Just("client_email".to_owned()),
        Just("type".to_owned()), Just("token_uri".to_owned()), Just("deployment".to_owned()), Just("order".to_owned()),
        Just("only".to_owned()), Just("ignore".to_owned()), Just("allow_fallbacks".to_owned()), Just("gateway".to_owned()),
        Just("sort".to_owned()), Just("byok".to_owned()), "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        Just(json!("openai")),
        Just(json!("https://x.openai.azure.com")),
        Just(json!("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn credential_json_of_any_shape_never_panics_or_echoes_the_secret(mut v in any_json(), secret_fields in proptest::collection::vec(any::<bool>(), 6)) {
        // The secret goes only where secrets live (a region or URL may be quoted back).
        if let Value::Object(m) = &mut v {
            for (put, k) in secret_fields.iter().zip(["key", "api_key", "apiKey", "secretAccessKey", "secret_access_key", "private_key"]) {
                if *put {
                    m.insert(k.into(), json!(SECRET));
                }
            }
        }
        for p in ProviderSlug::ALL {
            let as_text = Value::String(v.to_string());
            for value in [&v, &as_text] {
                if let Err(e) = Credential::parse(p, value) {
                    let shown = e.to_string();
                    prop_assert!(!shown.contains(SECRET), "{p:?} error repeats the secret: {shown}");
                }
            }
        }
    }

    #[test]
    fn routing_options_of_any_shape_never_panic_and_take_only_routing_fields(
        provider in any_json(), models in any_json(), gateway in any_json(), other in any_json(), keep in any::<bool>()
    ) {
        let mut body = Map::new();
        body.insert("model".into(), json!("openai/gpt-4o-mini"));
        body.insert("messages".into(), json!([{"role": "user", "content": "hi"}]));
        body.insert("x_unknown".into(), other.clone());
        if keep {
            body.insert("provider".into(), provider);
            body.insert("models".into(), models);
        }
        body.insert("providerOptions".into(), json!({"gateway": gateway, "anthropic": {"thinking": true}}));
        if RoutingOptions::extract(&mut body).is_ok() {
            prop_assert!(!body.contains_key("provider") && !body.contains_key("models") && !body.contains_key("route"));
            prop_assert!(body.get("providerOptions").and_then(|p| p.get("gateway")).is_none());
            // Other providers' options and unknown fields pass through untouched.
            prop_assert_eq!(body.get("providerOptions").and_then(|p| p.get("anthropic")), Some(&json!({"thinking": true})));
            prop_assert_eq!(body.get("x_unknown"), Some(&other));
            prop_assert_eq!(body.get("model"), Some(&json!("openai/gpt-4o-mini")));
        }
    }
}
