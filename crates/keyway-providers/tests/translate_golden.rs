//! Golden tables for the OpenAI <-> Anthropic translations, both directions, in
//! `tests/testdata/anthropic/*.json`: each case names its input and the exact expected output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_core::Usage;
use keyway_providers::translate::anthropic::{
    anthropic_error_body, anthropic_request_to_openai, anthropic_response_to_openai, openai_request_to_anthropic,
    openai_response_to_anthropic, AnthropicStreamToOpenAi, OpenAiStreamToAnthropic,
};
use keyway_providers::{ProviderError, StreamEvent};
use serde_json::{json, Value};

const CREATED: i64 = 1_700_000_000;

fn cases(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/testdata/anthropic/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match serde_json::from_str(&text) {
        Ok(Value::Array(a)) => a,
        other => panic!("{path}: not a JSON array: {other:?}"),
    }
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap_or("?")
}

fn usage(v: &Value) -> Usage {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn openai_requests_to_anthropic() {
    let cases = cases("requests.json");
    assert!(cases.len() >= 8);
    for case in cases {
        let body = case["openai"].as_object().unwrap();
        let got = openai_request_to_anthropic(body, case["model"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", name(&case)));
        assert_eq!(Value::Object(got), case["anthropic"], "case: {}", name(&case));
    }
}

#[test]
fn untranslatable_openai_requests_are_bad_requests() {
    for case in cases("request_errors.json") {
        let err = openai_request_to_anthropic(case["openai"].as_object().unwrap(), "m").err();
        let err = err.unwrap_or_else(|| panic!("{}: translated but should not", name(&case)));
        let pe = ProviderError::from(err);
        assert!(matches!(pe, ProviderError::BadRequest { status: 400, .. }), "{}: {pe:?}", name(&case));
        assert!(!pe.is_retryable());
    }
}

#[test]
fn anthropic_responses_to_openai() {
    for case in cases("responses.json") {
        let (body, u) = anthropic_response_to_openai(&case["anthropic"], CREATED).unwrap_or_else(|e| panic!("{}: {e}", name(&case)));
        assert_eq!(body, case["openai"], "case: {}", name(&case));
        assert_eq!(u, usage(&case["usage"]), "case: {}", name(&case));
    }
    let not_a_message = anthropic_response_to_openai(&json!({"type": "message"}), CREATED).err().map(ProviderError::from);
    assert!(matches!(not_a_message, Some(ProviderError::Protocol(_))));
}

fn item_json(item: &Result<StreamEvent, ProviderError>) -> Value {
    match item {
        Ok(StreamEvent::Chunk { json, content, .. }) => {
            json!({"content": content, "chunk": serde_json::from_slice::<Value>(json).unwrap()})
        }
        Ok(StreamEvent::Usage(u)) => json!({"usage": serde_json::to_value(u).unwrap()}),
        Err(e) => json!({"error": e.class()}),
    }
}

#[test]
fn anthropic_stream_events_to_openai_chunks() {
    for case in cases("stream.json") {
        let mut tr = AnthropicStreamToOpenAi::new(CREATED);
        let mut items = Vec::new();
        for ev in case["events"].as_array().unwrap() {
            items.extend(tr.push(ev[0].as_str().unwrap(), &ev[1].to_string()));
            if items.iter().any(Result::is_err) {
                break;
            }
        }
        if !items.iter().any(Result::is_err) {
            items.extend(tr.finish().map(Err));
        }
        let got: Vec<Value> = items.iter().map(item_json).collect();
        assert_eq!(Value::Array(got), case["items"], "case: {}", name(&case));
    }
}

#[test]
fn stream_error_events_classify_like_the_real_api() {
    let classify = |t: &str| {
        let mut tr = AnthropicStreamToOpenAi::new(CREATED);
        let data = json!({"type": "error", "error": {"type": t, "message": "m"}}).to_string();
        tr.push("error", &data).pop().and_then(Result::err)
    };
    assert!(matches!(classify("overloaded_error"), Some(ProviderError::Upstream5xx { status: 529, .. })));
    assert!(matches!(classify("api_error"), Some(ProviderError::Upstream5xx { status: 500, .. })));
    assert!(matches!(classify("rate_limit_error"), Some(ProviderError::RateLimited { status: 429, .. })));
    assert!(matches!(classify("invalid_request_error"), Some(ProviderError::BadRequest { status: 400, .. })));
    let mut tr = AnthropicStreamToOpenAi::new(CREATED);
    assert!(matches!(tr.push("ping", "{not json").pop(), Some(Err(ProviderError::Protocol(_)))));
}

#[test]
fn anthropic_requests_to_openai() {
    for case in cases("inbound_requests.json") {
        let got = anthropic_request_to_openai(case["anthropic"].as_object().unwrap()).unwrap_or_else(|e| panic!("{}: {e}", name(&case)));
        assert_eq!(Value::Object(got), case["openai"], "case: {}", name(&case));
    }
    let server_tool = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                             "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    assert!(anthropic_request_to_openai(server_tool.as_object().unwrap()).is_err());
    let bad_role = json!({"model": "m", "messages": [{"role": "system", "content": "x"}]});
    assert!(anthropic_request_to_openai(bad_role.as_object().unwrap()).is_err());
}

#[test]
fn openai_responses_to_anthropic() {
    for case in cases("inbound_responses.json") {
        let got = openai_response_to_anthropic(&case["openai"]).unwrap_or_else(|e| panic!("{}: {e}", name(&case)));
        assert_eq!(got, case["anthropic"], "case: {}", name(&case));
    }
    assert!(openai_response_to_anthropic(&json!({"choices": []})).is_err());
}

#[test]
fn openai_chunks_to_anthropic_events() {
    for case in cases("inbound_stream.json") {
        let mut tr = OpenAiStreamToAnthropic::new(case["model"].as_str().unwrap());
        let mut events = Vec::new();
        for c in case["chunks"].as_array().unwrap() {
            events.extend(tr.push_chunk(c));
        }
        events.extend(tr.finish());
        assert!(tr.finish().is_empty(), "finish is idempotent");
        let got: Vec<Value> = events.into_iter().map(|(n, d)| json!([n, d])).collect();
        assert_eq!(Value::Array(got), case["events"], "case: {}", name(&case));
    }
}

#[test]
fn separate_usage_wins_over_chunk_usage() {
    let mut tr = OpenAiStreamToAnthropic::new("m");
    tr.push_chunk(&json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]}));
    tr.push_usage(Usage { prompt_tokens: 10, completion_tokens: 2, cached_tokens: 3, cache_write_tokens: 1 });
    let end = tr.finish();
    let delta = end.iter().find(|(n, _)| *n == "message_delta").map(|(_, d)| d.clone()).unwrap();
    assert_eq!(delta["usage"], json!({"input_tokens": 6, "output_tokens": 2, "cache_creation_input_tokens": 1, "cache_read_input_tokens": 3}));
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
}

#[test]
fn round_trip_reaches_a_fixpoint_and_keeps_the_turns() {
    // Anthropic -> OpenAI -> Anthropic may normalise once (a one-block tool result becomes a
    // string), but keeps every turn, and a second trip changes nothing.
    let trip = |a: &serde_json::Map<String, Value>| openai_request_to_anthropic(&anthropic_request_to_openai(a).unwrap(), "m").unwrap();
    for case in cases("requests.json") {
        let a1 = openai_request_to_anthropic(case["openai"].as_object().unwrap(), "m").unwrap();
        let a2 = trip(&a1);
        let roles = |a: &serde_json::Map<String, Value>| a["messages"].as_array().unwrap().iter().map(|m| m["role"].clone()).collect::<Vec<_>>();
        assert_eq!(roles(&a1), roles(&a2), "case: {}", name(&case));
        for k in ["system", "tools", "tool_choice", "max_tokens", "stop_sequences", "metadata", "stream"] {
            assert_eq!(a1.get(k), a2.get(k), "case: {}: {k}", name(&case));
        }
        assert_eq!(trip(&a2), a2, "case: {}", name(&case));
    }
}

#[test]
fn error_bodies_in_anthropic_shape() {
    let e = ProviderError::RateLimited { status: 429, retry_after: None, message: "m".into(), body: None };
    assert_eq!(anthropic_error_body(&e, "slow down"), json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}));
    let e = ProviderError::Upstream5xx { status: 529, message: "m".into() };
    assert_eq!(anthropic_error_body(&e, "x")["error"]["type"], "overloaded_error");
    let e = ProviderError::Auth { status: 401, message: "m".into(), body: None };
    assert_eq!(anthropic_error_body(&e, "x")["error"]["type"], "authentication_error");
}
