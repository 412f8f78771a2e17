//! Claude on Vertex: the Anthropic Messages body of [`crate::translate::anthropic`] without
//! `model` (the path names it) and with `anthropic_version: "vertex-2023-10-16"`, POSTed to
//! `:rawPredict` / `:streamRawPredict`; answers are Anthropic's, read by the Anthropic adapter's own answer path
//! (`crate::anthropic::answer`).
//! A `POST /v1/messages` request goes as the client wrote it ([`native_request`]), its answer
//! untranslated.

use crate::error::ProviderError;
use crate::translate::anthropic::openai_request_to_anthropic;
use crate::types::AnthropicNative;
use serde_json::{json, Map, Value};

pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// An OpenAI chat body -> the rawPredict body.
pub fn request(body: &Map<String, Value>) -> Result<Value, ProviderError> {
    // The model id is only a placeholder here: Vertex takes it from the path.
    let mut a = openai_request_to_anthropic(body, "")?;
    a.remove("model");
    a.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
    Ok(Value::Object(a))
}

/// The client's own Anthropic body -> the rawPredict body.
pub fn native_request(native: &AnthropicNative) -> Value {
    let mut a = native.body.clone();
    a.remove("model");
    a.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
    Value::Object(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_vertex_version_and_no_model() {
        let b = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "stream": true});
        let r = request(b.as_object().unwrap()).unwrap();
        assert_eq!(r["anthropic_version"], ANTHROPIC_VERSION);
        assert!(r.get("model").is_none());
        assert_eq!(r["stream"], true);
        assert_eq!(r["max_tokens"], 10);
    }
}
