//! Every translator (OpenAI <-> Anthropic, Bedrock, Gemini, Vercel) and stream translator on any JSON:
//! a value or an error, never a panic.
#![no_main]

use keyway_providers::translate::anthropic as ant;
use keyway_providers::translate::vercel;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    if let Value::Object(m) = &v {
        let _ = ant::openai_request_to_anthropic(m, "claude");
        let _ = ant::anthropic_request_to_openai(m);
        let _ = ant::anthropic_request_to_openai_lossy(m);
        let _ = keyway_providers::gemini::convert::request(m);
        let _ = keyway_providers::bedrock::convert::request(m);
        let _ = vercel::vercel_request_to_openai(m, "m", true);
        let _ = vercel::vercel_embedding_to_openai(m, "m");
    }
    let served = vercel::ServedBy::default();
    let _ = vercel::openai_response_to_vercel(&v, &served);
    let _ = vercel::openai_embeddings_to_vercel(&v, &served);
    let mut to_vercel = vercel::OpenAiStreamToVercel::new("g", "m");
    let _ = to_vercel.push_chunk(&v);
    let _ = to_vercel.finish(&served);
    let _ = ant::anthropic_response_to_openai(&v, 0);
    let _ = ant::openai_response_to_anthropic(&v);
    let _ = keyway_providers::gemini::convert::response(&v, "m");
    let _ = keyway_providers::bedrock::convert::response(&v, "m");
    let mut to_openai = ant::AnthropicStreamToOpenAi::new(0);
    let mut to_anthropic = ant::OpenAiStreamToAnthropic::new("m");
    for name in ["message_start", "content_block_start", "content_block_delta", "message_delta", "message_stop", "error"] {
        let _ = to_openai.push_value(name, &v);
    }
    let _ = to_openai.finish();
    let _ = to_anthropic.push_chunk(&v);
    let _ = to_anthropic.finish();
});
