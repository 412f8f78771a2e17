//! Every adapter's usage reading lands on the same [`Usage`] for equivalent answers: 100 input
//! tokens of which 30 were read from the prompt cache and 10 written to it, 20 output tokens.
//! Each provider reports that its own way; a disagreement here is a billing difference.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use keyway_core::Usage;
use keyway_providers::translate::anthropic::anthropic_response_to_openai;
use keyway_providers::usage::{openai_usage, openai_usage_json};
use keyway_providers::{openai_compat, translate, StreamEvent};
use serde_json::{json, Value};

const WANT: Usage = Usage { prompt_tokens: 100, completion_tokens: 20, cached_tokens: 30, cache_write_tokens: 10 };
/// Gemini reports cache reads (`cachedContentTokenCount`) but never writes: its caches are
/// created by a separate API call, not by the answer that fills them.
const WANT_NO_WRITES: Usage = Usage { cache_write_tokens: 0, ..WANT };

fn openai_answer(usage: Value) -> Bytes {
    let v = json!({"id": "c", "object": "chat.completion", "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                   "usage": usage});
    Bytes::from(v.to_string())
}

fn openai_usage_object() -> Value {
    json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
           "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 10}})
}

#[test]
fn openai_compatible_answers_whole_and_streamed() {
    let u = openai_usage_object();
    assert_eq!(openai_usage(&u), Some(WANT));
    assert_eq!(translate::usage_from_openai_json(&u), Some(WANT));
    let bytes = openai_answer(u.clone());
    assert_eq!(openai_compat::read_answer(&bytes).unwrap().1, Some(WANT));
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [], "usage": u}).to_string();
    // (The slow readers agree with these on every input: the oracle properties in openai_compat.rs.)
    let (items, _) = openai_compat::chunk_items(chunk);
    let usage: Vec<Usage> = items
        .into_iter()
        .filter_map(|i| match i.unwrap() {
            StreamEvent::Usage(u) => Some(u),
            StreamEvent::Chunk { .. } => None,
        })
        .collect();
    assert_eq!(usage, vec![WANT]);
}

#[test]
fn anthropic_answers() {
    let u = json!({"input_tokens": 60, "output_tokens": 20, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 10});
    assert_eq!(translate::anthropic::anthropic_usage(&u), WANT);
    let msg = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                     "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": u});
    let (body, usage) = anthropic_response_to_openai(&msg, 0).unwrap();
    assert_eq!(usage, WANT);
    // The translated answer's usage object reads back the same through the one OpenAI reader.
    assert_eq!(openai_usage(&body["usage"]), Some(WANT));
}

#[test]
fn bedrock_answers() {
    let u = json!({"inputTokens": 60, "outputTokens": 20, "totalTokens": 120, "cacheReadInputTokens": 30, "cacheWriteInputTokens": 10});
    assert_eq!(translate::bedrock::usage(&u), Some(WANT));
    let v = json!({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, "stopReason": "end_turn", "usage": u});
    let (body, usage) = translate::bedrock::response(&v, "m").unwrap();
    assert_eq!(usage, Some(WANT));
    assert_eq!(openai_usage(&body["usage"]), Some(WANT));
}

#[test]
fn gemini_and_vertex_answers() {
    // `promptTokenCount` includes the cached content, as OpenAI's `prompt_tokens` does.
    let v = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120, "cachedContentTokenCount": 30}});
    assert_eq!(translate::gemini::usage(&v), Some(WANT_NO_WRITES));
    let (body, usage) = translate::gemini::response(&v, "m").unwrap();
    assert_eq!(usage, Some(WANT_NO_WRITES));
    assert_eq!(openai_usage(&body["usage"]), Some(WANT_NO_WRITES));
}

#[test]
fn the_writer_and_the_reader_are_inverse() {
    for u in [WANT, WANT_NO_WRITES, Usage::default()] {
        assert_eq!(openai_usage(&openai_usage_json(&u)), Some(u));
    }
    // No cache writes: OpenAI's own shape, without the extra key.
    assert!(openai_usage_json(&WANT_NO_WRITES)["prompt_tokens_details"].get("cache_write_tokens").is_none());
}
