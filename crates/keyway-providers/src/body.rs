//! A whole JSON answer as it crosses the `Provider` trait: parsed ([`Body::Value`]), the
//! upstream's own object split at its top level only ([`Body::Raw`]), or the upstream's text
//! itself with where the fields the gateway sets sit ([`Body::Shaped`]).
//!
//! OpenAI-compatible answers go back to the client as they came, with a few top-level fields
//! set (`id`, `model`, `provider`). Parsing the whole answer into a `Value` tree and writing it
//! out again cost ~30k instructions per request (callgrind, bench/README.md) and, for
//! embeddings, re-printed every float. A raw object keeps each top-level value as the upstream's
//! bytes: `choices` and `data` are checked for valid JSON once and copied, never rebuilt.
//! A shaped answer goes further: one borrowed scan finds `id`, `system_fingerprint`, `provider`
//! and `model`, and the gateway's values are spliced into the upstream's bytes when written —
//! no per-field allocation, no second serialisation (bench/README.md).

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

pub use crate::raw::RawObject;
use crate::raw::{splice, Edit, Span};
use bytes::Bytes;

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Value(Value),
    Raw(RawObject),
    // Boxed: its spans and edits would make every `Body` four times the size.
    Shaped(Box<Shaped>),
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::Value(v)
    }
}

impl Body {
    /// The parsed tree (a raw object is parsed here; only for paths that must edit deeply).
    pub fn into_value(self) -> Value {
        match self {
            Body::Value(v) => v,
            Body::Raw(o) => o.to_value(),
            Body::Shaped(s) => s.to_raw().map(|o| o.to_value()).unwrap_or(Value::Null),
        }
    }

    /// A top-level string field.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self {
            Body::Value(v) => v.get(key).and_then(Value::as_str).map(str::to_owned),
            Body::Raw(o) => o.get(key).and_then(|r| serde_json::from_str::<String>(r.get()).ok()),
            Body::Shaped(s) => s.get_str(key),
        }
    }

    /// Sets a top-level field of an object (nothing when the body isn't an object).
    pub fn set(&mut self, key: &str, value: &impl Serialize) {
        match self {
            Body::Value(Value::Object(o)) => {
                if let Ok(v) = serde_json::to_value(value) {
                    o.insert(key.to_owned(), v);
                }
            }
            Body::Value(_) => {}
            Body::Raw(o) => o.set(key, value),
            Body::Shaped(s) => {
                if !s.set(key, value) {
                    // A field the shape doesn't track: split the text after all (no such edit
                    // is made on the request path).
                    if let Some(mut o) = s.to_raw() {
                        o.set(key, value);
                        *self = Body::Raw(o);
                    }
                }
            }
        }
    }

    /// Sets a top-level field unless the object has it already.
    pub fn set_if_absent(&mut self, key: &str, value: &impl Serialize) {
        let present = match self {
            Body::Value(v) => v.get(key).is_some(),
            Body::Raw(o) => o.get(key).is_some(),
            Body::Shaped(s) => s.has(key),
        };
        if !present {
            self.set(key, value);
        }
    }

    /// `choices[0].finish_reason` of a chat completion.
    pub fn first_finish_reason(&self) -> Option<String> {
        match self {
            Body::Value(v) => v.get("choices")?.get(0)?.get("finish_reason")?.as_str().map(str::to_owned),
            Body::Raw(o) => {
                #[derive(Deserialize)]
                struct Choice {
                    #[serde(default)]
                    finish_reason: Option<String>,
                }
                // Scans `choices` without building it; other fields are skipped.
                let choices: Vec<Choice> = serde_json::from_str(o.get("choices")?.get()).ok()?;
                choices.into_iter().next()?.finish_reason
            }
            Body::Shaped(s) => s.finish_reason.clone(),
        }
    }

    /// The body as JSON bytes, sized up front for a raw object.
    pub fn to_vec(&self) -> Vec<u8> {
        if let Body::Shaped(s) = self {
            return s.to_vec();
        }
        let mut out = Vec::with_capacity(match self {
            Body::Raw(o) => o.len_hint(),
            Body::Value(_) | Body::Shaped(_) => 1024,
        });
        // Serialising a `Value` or raw JSON into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, self);
        out
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Body::Value(v) => v.serialize(s),
            Body::Raw(o) => o.serialize(s),
            Body::Shaped(sh) => {
                let raw = RawValue::from_string(String::from_utf8(sh.to_vec()).map_err(serde::ser::Error::custom)?).map_err(serde::ser::Error::custom)?;
                raw.serialize(s)
            }
        }
    }
}

/// The top-level fields a [`Shaped`] answer tracks, in the order the gateway adds the absent
/// ones (as `Body::set` on a raw object would have appended them).
const TRACKED: [&str; 4] = ["id", "system_fingerprint", "provider", "model"];

/// A JSON object as the upstream wrote it (valid UTF-8 JSON, checked by whoever made it), with
/// where the tracked fields' values sit and the values set since.
#[derive(Debug, Clone)]
pub struct Shaped {
    json: Bytes,
    at: [Option<Span>; 4],
    /// JSON text from `serde_json` (a `String`: a `Box<RawValue>` shrinks its buffer once more).
    set: [Option<String>; 4],
    finish_reason: Option<String>,
}

/// The same text once the edits are made.
impl PartialEq for Shaped {
    fn eq(&self, other: &Self) -> bool {
        self.to_vec() == other.to_vec()
    }
}

impl Shaped {
    /// `json` is one JSON object; `at` where the values of [`TRACKED`]'s keys sit in it, as
    /// found by a borrowed scan of that same text; `finish_reason` its first choice's.
    pub(crate) fn new(json: Bytes, at: [Option<Span>; 4], finish_reason: Option<String>) -> Self {
        Self { json, at, set: Default::default(), finish_reason }
    }

    fn slot(key: &str) -> Option<usize> {
        TRACKED.iter().position(|k| *k == key)
    }

    /// Sets a tracked field; `false` for any other key.
    fn set(&mut self, key: &str, value: &impl Serialize) -> bool {
        let Some(i) = Self::slot(key) else { return false };
        if let (Some(slot), Ok(json)) = (self.set.get_mut(i), serde_json::to_string(value)) {
            *slot = Some(json);
        }
        true
    }

    fn has(&self, key: &str) -> bool {
        match Self::slot(key) {
            Some(i) => self.at.get(i).is_some_and(Option::is_some) || self.set.get(i).is_some_and(Option::is_some),
            None => self.to_raw().is_some_and(|o| o.get(key).is_some()),
        }
    }

    fn get_str(&self, key: &str) -> Option<String> {
        let Some(i) = Self::slot(key) else {
            return self.to_raw()?.get(key).and_then(|r| serde_json::from_str(r.get()).ok());
        };
        match self.set.get(i)? {
            Some(v) => serde_json::from_str(v).ok(),
            None => {
                let s = (*self.at.get(i)?)?;
                serde_json::from_slice(self.json.get(s.start..s.end)?).ok()
            }
        }
    }

    /// The text with the values set since spliced in.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut list = [Edit { key: "", at: None, value: "" }; 4];
        let mut n = 0;
        for ((key, at), v) in TRACKED.iter().zip(&self.at).zip(&self.set) {
            if let (Some(v), Some(slot)) = (v, list.get_mut(n)) {
                *slot = Edit { key, at: *at, value: v };
                n += 1;
            }
        }
        let extra: usize = list.iter().take(n).map(|e| e.key.len() + e.value.len() + 4).sum();
        let mut out = Vec::with_capacity(self.json.len() + extra);
        if splice(&self.json, list.get_mut(..n).unwrap_or_default(), &mut out) {
            return out;
        }
        // Spans that don't fit the text break `new`'s contract; the edits are made the slow way
        // rather than lost.
        match self.to_raw() {
            Some(o) => Body::Raw(o).to_vec(),
            None => self.json.to_vec(),
        }
    }

    /// The text split at the top level with the values set since: for the rare read or edit of
    /// an untracked field, and the fallback of [`Self::to_vec`].
    fn to_raw(&self) -> Option<RawObject> {
        let mut o = RawObject::parse(&self.json).ok()?;
        for (key, v) in TRACKED.iter().zip(&self.set) {
            if let Some(raw) = v.as_deref().and_then(|v| RawValue::from_string(v.to_owned()).ok()) {
                o.set(key, &raw);
            }
        }
        Some(o)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"h\u00e9llo \"x\"","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8},"service_tier":"default","x_unknown":[1.0e-7,1.10,2]}"#;

    #[test]
    fn a_shaped_body_whose_spans_do_not_fit_is_edited_the_slow_way() {
        let json = Bytes::from_static(br#"{"id":"chatcmpl-1","model":"m","choices":[]}"#);
        // Spans of another, longer text: overlapping, and past this one's end.
        let at = [Some(Span { start: 6, end: 30 }), None, None, Some(Span { start: 20, end: 90 })];
        let mut body = Body::Shaped(Box::new(Shaped::new(json, at, None)));
        body.set("id", &"gen-1");
        body.set("model", &"openai/gpt-4o-mini");
        let v: Value = serde_json::from_slice(&body.to_vec()).unwrap();
        assert_eq!(v, json!({"id": "gen-1", "model": "openai/gpt-4o-mini", "choices": []}));
    }

    #[test]
    fn a_raw_object_forwards_values_byte_for_byte_and_edits_the_top_level() {
        let mut b = Body::Raw(RawObject::parse(ANSWER.as_bytes()).unwrap());
        assert_eq!(b.first_finish_reason().as_deref(), Some("stop"));
        assert_eq!(b.get_str("model").as_deref(), Some("gpt-4o-mini-2024-07-18"));
        b.set("id", &"gen-1");
        b.set("model", &"openai/gpt-4o-mini");
        b.set("provider", &"OpenAI");
        b.set_if_absent("system_fingerprint", &Value::Null);
        b.set_if_absent("object", &"nope");
        let out = String::from_utf8(b.to_vec()).unwrap();
        // Untouched values keep the upstream's exact text (escapes, float spelling, order).
        assert!(out.contains(r#""choices":[{"index":0,"message":{"role":"assistant","content":"h\u00e9llo \"x\"","refusal":null},"logprobs":null,"finish_reason":"stop"}]"#), "{out}");
        assert!(out.contains(r#""x_unknown":[1.0e-7,1.10,2]"#), "{out}");
        assert!(out.starts_with(r#"{"id":"gen-1","object":"chat.completion","created":1,"model":"openai/gpt-4o-mini","#), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["provider"], "OpenAI");
        assert_eq!(v["system_fingerprint"], Value::Null);
        assert_eq!(v["usage"]["total_tokens"], 8);
        // Its parsed form equals the tree the edits describe.
        let mut expected: Value = serde_json::from_str(ANSWER).unwrap();
        expected["id"] = json!("gen-1");
        expected["model"] = json!("openai/gpt-4o-mini");
        expected["provider"] = json!("OpenAI");
        expected["system_fingerprint"] = Value::Null;
        assert_eq!(b.into_value(), expected);
    }

    #[test]
    fn only_objects_parse_and_bad_json_is_refused() {
        for bad in ["[1,2]", "\"x\"", "{\"a\":}", "{\"a\":1", "", "{\"a\":1} trailing"] {
            assert!(RawObject::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let o = RawObject::parse(br#"{"usage":{"prompt_tokens":2},"n":null}"#).unwrap();
        assert_eq!(o.get_as::<Value>("usage").unwrap()["prompt_tokens"], 2);
        assert!(o.get("missing").is_none());
    }

    #[test]
    fn a_value_body_takes_the_same_edits() {
        let mut b = Body::from(serde_json::from_str::<Value>(ANSWER).unwrap());
        b.set("id", &"gen-2");
        b.set_if_absent("system_fingerprint", &Value::Null);
        assert_eq!(b.first_finish_reason().as_deref(), Some("stop"));
        let v = b.into_value();
        assert_eq!(v["id"], "gen-2");
        assert!(v.get("system_fingerprint").is_some());
        // Not an object: edits are no-ops.
        let mut arr = Body::from(json!([1]));
        arr.set("id", &"x");
        assert_eq!(arr.into_value(), json!([1]));
    }
}
