//! Properties over arbitrary input (the cheap stand-in for a fuzzer in the test command): the
//! request-body splitter agrees with a full parse and never panics, routing fields come out of
//! a raw body leaving the rest as the client wrote it, and every translator (OpenAI <->
//! Anthropic, Bedrock, Gemini) and stream translator answers any chat-shaped JSON with a value
//! or an error, never a panic.

#![allow(clippy::unwrap_used, clippy::panic)]

use keyway_providers::translate::anthropic as ant;
use keyway_providers::{RawObject, RequestBody};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON, with the keys and values chat translators look for mixed in.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("role".to_owned()), Just("content".to_owned()), Just("type".to_owned()), Just("text".to_owned()),
        Just("tool_calls".to_owned()), Just("function".to_owned()), Just("arguments".to_owned()), Just("name".to_owned()),
        Just("id".to_owned()), Just("image_url".to_owned()), Just("url".to_owned()), Just("tools".to_owned()),
        Just("tool_choice".to_owned()), Just("messages".to_owned()), Just("system".to_owned()), Just("max_tokens".to_owned()),
        Just("stop".to_owned()), Just("choices".to_owned()), Just("delta".to_owned()), Just("usage".to_owned()),
        Just("candidates".to_owned()), Just("parts".to_owned()), Just("output".to_owned()), Just("message".to_owned()),
        Just("stop_reason".to_owned()), Just("finish_reason".to_owned()), Just("tool_use".to_owned()), Just("input".to_owned()),
        Just("source".to_owned()), Just("response_format".to_owned()), Just("thinking".to_owned()), "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop_oneof![Just("user"), Just("assistant"), Just("system"), Just("tool"), Just("developer"), Just("text"),
            Just("image_url"), Just("tool_use"), Just("tool_result"), Just("function"), Just("data:image/png;base64,AAAA"),
            Just("json_schema"), Just("auto"), Just("required"), Just("none"), Just("end_turn")].prop_map(|s| json!(s)),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A chat request whose messages (and a few options) are arbitrary.
fn chat_request() -> impl Strategy<Value = Map<String, Value>> {
    (proptest::collection::vec(any_json(), 0..4), any_json(), any_json()).prop_map(|(messages, tools, extra)| {
        let mut m = Map::new();
        m.insert("model".into(), json!("m"));
        m.insert("messages".into(), Value::Array(messages));
        m.insert("tools".into(), tools);
        m.insert("x_extra".into(), extra);
        m
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::vec(("[a-zA-Z_]{1,6}", any_json()), 0..8).prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_raw_split_agrees_with_a_parse(obj in object()) {
        let text = serde_json::to_vec(&obj).unwrap();
        let raw = RawObject::parse(&text).unwrap();
        // Against a parse of the same text (serde_json reads floats to within an ulp).
        let parsed: Map<String, Value> = serde_json::from_slice(&text).unwrap();
        prop_assert_eq!(raw.try_to_map().unwrap(), parsed);
    }

    #[test]
    fn splitting_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), json_ish in "[{}\\[\\]\":,a-z0-9 \\\\]{0,64}") {
        let _ = RawObject::parse(&bytes);
        let _ = RawObject::parse(json_ish.as_bytes());
    }

    #[test]
    fn routing_fields_leave_a_raw_body_and_the_rest_stays_as_written(obj in object(), provider in any_json(), models in any_json()) {
        let mut with = obj.clone();
        with.insert("provider".into(), provider.clone());
        with.insert("models".into(), models.clone());
        // Written by hand, with spacing a re-serialisation would lose.
        let text = format!("{{ {} }}", with.iter().map(|(k, v)| format!("{} :  {}", json!(k), v)).collect::<Vec<_>>().join(" ,\n "));
        let mut body = RequestBody::from(RawObject::parse(text.as_bytes()).unwrap());
        // Compared with a parse of the same text (serde_json reads floats to within an ulp).
        let parsed: Map<String, Value> = serde_json::from_str(&text).unwrap();
        let (p, m) = (body.remove("provider").unwrap(), body.remove("models").unwrap());
        prop_assert_eq!(p.as_ref(), parsed.get("provider"));
        prop_assert_eq!(m.as_ref(), parsed.get("models"));
        let mut rest = parsed.clone();
        rest.remove("provider");
        rest.remove("models");
        prop_assert_eq!(body.map().unwrap(), &rest);
        prop_assert!(body.keys_set().all(|(k, _)| k != "provider" && k != "models"));
    }

    #[test]
    fn request_translators_never_panic(req in chat_request()) {
        let _ = ant::openai_request_to_anthropic(&req, "claude");
        let _ = ant::anthropic_request_to_openai(&req);
        let _ = ant::anthropic_request_to_openai_lossy(&req);
        let _ = keyway_providers::translate::gemini::request(&req);
        let _ = keyway_providers::translate::bedrock::request(&req);
    }

    #[test]
    fn response_translators_never_panic(v in any_json()) {
        let _ = ant::anthropic_response_to_openai(&v, 0);
        let _ = ant::openai_response_to_anthropic(&v);
        let _ = keyway_providers::translate::gemini::response(&v, "m");
        let _ = keyway_providers::translate::bedrock::response(&v, "m");
        let _ = keyway_providers::translate::gemini::stream_error(&v);
    }

    #[test]
    fn stream_translators_never_panic(events in proptest::collection::vec((prop_oneof![Just("message_start"), Just("content_block_start"),
        Just("content_block_delta"), Just("content_block_stop"), Just("message_delta"), Just("message_stop"), Just("error"), Just("ping")], any_json()), 0..8)) {
        let mut to_openai = ant::AnthropicStreamToOpenAi::new(0);
        let mut to_anthropic = ant::OpenAiStreamToAnthropic::new("m");
        for (name, v) in &events {
            let _ = to_openai.push_value(name, v);
            let _ = to_openai.push(name, &v.to_string());
            let _ = to_anthropic.push_chunk(v);
        }
        let _ = to_openai.finish();
        let _ = to_anthropic.finish();
    }
}
