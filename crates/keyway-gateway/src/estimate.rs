//! The token estimate of a request before it runs: what a tokens-per-minute limit reserves and
//! what a credit or budget check prices. A leaf: limits and billing both take its numbers.

/// A cheap token estimate of a request's input (characters / 4) and its output cap
/// (`max_completion_tokens`, `max_tokens`, or 0 when the client sets none).
pub fn demand_of(body: &serde_json::Map<String, serde_json::Value>) -> (u64, u64) {
    use serde_json::Value;
    fn chars(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(chars).sum(),
            Value::Object(o) => o.get("text").or_else(|| o.get("content")).map(chars).unwrap_or(0),
            _ => 0,
        }
    }
    let mut n = 0usize;
    if let Some(Value::Array(msgs)) = body.get("messages") {
        for m in msgs {
            n += 16 + m.get("content").map(chars).unwrap_or(0);
        }
    }
    if let Some(sys) = body.get("system") {
        n += chars(sys);
    }
    if let Some(input) = body.get("input") {
        n += chars(input);
    }
    let out = ["max_completion_tokens", "max_tokens", "max_output_tokens"].iter().find_map(|k| body.get(*k).and_then(Value::as_u64)).unwrap_or(0);
    ((n as u64).div_ceil(4), out)
}

/// [`demand_of`] for a body as it crossed the gateway. A raw body (the client's text, not yet
/// parsed) is scanned for the same lengths without building its messages.
pub fn demand_of_body(body: &keyway_providers::RequestBody) -> (u64, u64) {
    match body {
        keyway_providers::RequestBody::Raw { raw, .. } => demand_of_raw(raw),
        keyway_providers::RequestBody::Map(m) => demand_of(m),
    }
}

fn demand_of_raw(raw: &keyway_providers::RawObject) -> (u64, u64) {
    let scan = |key: &str| raw.get(key).and_then(|v| serde_json::from_str::<text_len::Chars>(v.get()).ok()).map_or(0, |c| c.0);
    let mut n = raw.get("messages").and_then(|v| serde_json::from_str::<text_len::Messages>(v.get()).ok()).map_or(0, |m| m.0);
    n += scan("system") + scan("input");
    let out = ["max_completion_tokens", "max_tokens", "max_output_tokens"].iter().find_map(|k| raw.get_as::<u64>(k)).unwrap_or(0);
    ((n as u64).div_ceil(4), out)
}

/// Text lengths as [`demand_of`] counts them, read by serde visitors that keep nothing.
mod text_len {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// A string's length; a list's items summed; an object's `text` (else `content`); else 0.
    pub struct Chars(pub usize);
    /// 16 per message plus its `content`'s [`Chars`]; anything but a list is an error (which
    /// the caller counts as 0).
    pub struct Messages(pub usize);
    /// One message: its `content`'s [`Chars`] (0 for anything but an object).
    struct Message(usize);

    macro_rules! scalars_are_zero {
        ($t:ident) => {
            fn visit_bool<E>(self, _: bool) -> Result<$t, E> {
                Ok($t(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
                Ok($t(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
                Ok($t(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
                Ok($t(0))
            }
            fn visit_unit<E>(self) -> Result<$t, E> {
                Ok($t(0))
            }
        };
    }

    struct CharsV;
    impl<'de> Visitor<'de> for CharsV {
        type Value = Chars;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        scalars_are_zero!(Chars);
        fn visit_str<E>(self, s: &str) -> Result<Chars, E> {
            Ok(Chars(s.len()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Chars, A::Error> {
            let mut n = 0;
            while let Some(c) = seq.next_element::<Chars>()? {
                n += c.0;
            }
            Ok(Chars(n))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Chars, A::Error> {
            let (mut text, mut content) = (None, None);
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                match &*k {
                    "text" => text = Some(map.next_value::<Chars>()?.0),
                    "content" => content = Some(map.next_value::<Chars>()?.0),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(Chars(text.or(content).unwrap_or(0)))
        }
    }
    impl<'de> Deserialize<'de> for Chars {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(CharsV)
        }
    }

    struct MessageV;
    impl<'de> Visitor<'de> for MessageV {
        type Value = Message;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a message")
        }
        scalars_are_zero!(Message);
        fn visit_str<E>(self, _: &str) -> Result<Message, E> {
            Ok(Message(0))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Message, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Message(0))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
            let mut content = 0;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == "content" {
                    content = map.next_value::<Chars>()?.0;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Message(content))
        }
    }
    impl<'de> Deserialize<'de> for Message {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(MessageV)
        }
    }

    struct MessagesV;
    impl<'de> Visitor<'de> for MessagesV {
        type Value = Messages;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of messages")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
            let mut n = 0;
            while let Some(m) = seq.next_element::<Message>()? {
                n += 16 + m.0;
            }
            Ok(Messages(n))
        }
    }
    impl<'de> Deserialize<'de> for Messages {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_seq(MessagesV)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_estimates() {
        let body = serde_json::json!({"messages": [{"role": "user", "content": "abcdefgh"}, {"role": "user", "content": [{"type": "text", "text": "abcd"}]}], "max_tokens": 100});
        let (p, o) = demand_of(body.as_object().unwrap());
        assert_eq!((p, o), ((16 + 8 + 16 + 4) / 4, 100));
        let body = serde_json::json!({"input": ["abcd", "efgh"], "max_completion_tokens": 7, "max_tokens": 9});
        assert_eq!(demand_of(body.as_object().unwrap()), (2, 7));
    }

    #[test]
    fn a_raw_body_is_estimated_as_its_parsed_map_is() {
        let bodies = [
            r#"{"messages":[{"role":"user","content":"abcdefgh"},{"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url","image_url":{"url":"data:x"}}]}],"max_tokens":100}"#,
            r#"{"messages":[{"role":"system","content":"h\u00e9llo \"x\"\n"},{"role":"assistant","content":null,"tool_calls":[{"id":"t","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"42"}]}"#,
            // Odd shapes: numbers, nested lists, an object's `text` beside `content`, scalars where messages go.
            r#"{"messages":[1,"two",[3],{"content":{"text":"abc","content":"abcdefgh"}},{"content":[["ab"],{"content":"cd"}]},{"content":7}],"max_completion_tokens":7,"max_tokens":9}"#,
            r#"{"messages":{"content":"not a list"},"system":[{"type":"text","text":"be brief"}],"input":["abcd",["efgh"]],"max_output_tokens":3}"#,
            r#"{"messages":[{"content":"a","content":"abcdef"}],"max_tokens":-1,"max_output_tokens":2.0}"#,
            r#"{"input":"one two three","max_tokens":18446744073709551615}"#,
            r#"{"messages":[]}"#,
            r#"{}"#,
        ];
        for b in bodies {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(b).unwrap();
            let raw = keyway_providers::RequestBody::from(keyway_providers::RawObject::parse(b.as_bytes()).unwrap());
            assert_eq!(demand_of_body(&raw), demand_of(&map), "{b}");
            assert!(matches!(raw, keyway_providers::RequestBody::Raw { ref parsed, .. } if parsed.get().is_none()), "estimated without parsing the body");
        }
    }
}
