//! Usage in OpenAI's shape: the one reader ([`openai_usage`], and [`UsageView`], the same
//! reading straight from the text) and the one writer ([`openai_usage_json`]). Every adapter's
//! own usage reading (Anthropic's `cache_read_input_tokens`/`cache_creation_input_tokens`,
//! Bedrock's `cacheReadInputTokens`/`cacheWriteInputTokens`, Gemini's `cachedContentTokenCount`)
//! lands on the same [`Usage`]: `prompt_tokens` counts every input token, cache reads and
//! writes included; `tests/usage.rs` checks they agree.

use keyway_core::Usage;
use serde_json::{json, Value};

/// The visitor methods for the JSON scalars a lenient read maps to one value (`$v`): null,
/// booleans, numbers, strings (with `ints`); without it `u64`/`i64` are the caller's. Maps and
/// lists are always the caller's.
macro_rules! scalars {
    ($v:expr, ints) => {
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($v)
        }
        scalars!($v);
    };
    ($v:expr) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
}

/// An OpenAI `usage` object -> [`Usage`]: the one reading of it, for upstream answers and
/// client bodies alike. `prompt_tokens` counts cached tokens too (as OpenAI counts them);
/// `prompt_tokens_details.cached_tokens` are cache reads and `prompt_tokens_details.cache_write_tokens`
/// cache writes (OpenRouter's and OpenAI's name; 0 where a provider doesn't report writes).
/// A count that isn't a `u64` counts 0; anything but an object is no usage.
pub fn openai_usage(v: &Value) -> Option<Usage> {
    let u = v.as_object()?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let details = u.get("prompt_tokens_details").and_then(Value::as_object);
    let d = |k: &str| details.and_then(|d| d.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        cached_tokens: d("cached_tokens"),
        cache_write_tokens: d("cache_write_tokens"),
    })
}

/// [`Usage`] as an OpenAI `usage` object, the inverse of [`openai_usage`]. `cache_write_tokens`
/// appears only when non-zero, so that an answer without cache writes keeps OpenAI's own shape.
pub fn openai_usage_json(u: &Usage) -> Value {
    let mut details = json!({"cached_tokens": u.cached_tokens});
    if u.cache_write_tokens > 0 {
        details["cache_write_tokens"] = json!(u.cache_write_tokens);
    }
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total(),
        "prompt_tokens_details": details,
    })
}

/// A usage object in OpenAI's shape, read straight from the text as [`openai_usage`] reads its
/// `Value` (a count that isn't a `u64` counts 0; anything but an object is no usage), without
/// building the object and its details maps: that was ~5k instructions of every answer.
pub(crate) type UsageView = ObjectOr<Usage>;

/// What a lenient read takes from a JSON object's fields.
trait Fields: Default {
    /// Reads `key`'s value from `map` (skipping what it doesn't read).
    fn field<'de, A: serde::de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// `Some` of an object's fields; `None` for any other JSON value, which is checked and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectOr<T>(pub Option<T>);

impl<'de, T: Fields> serde::Deserialize<'de> for ObjectOr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Fields> serde::de::Visitor<'de> for V<T> {
            type Value = ObjectOr<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ObjectOr<T>, A::Error> {
                let mut t = T::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    t.field(&key, &mut map)?;
                }
                Ok(ObjectOr(Some(t)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<ObjectOr<T>, A::Error> {
                serde::de::IgnoredAny.visit_seq(seq).map(|_| ObjectOr(None))
            }
            scalars!(ObjectOr(None), ints);
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Fields for Usage {
    fn field<'de, A: serde::de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "prompt_tokens" => self.prompt_tokens = map.next_value::<Count>()?.0,
            "completion_tokens" => self.completion_tokens = map.next_value::<Count>()?.0,
            // `cached_tokens` and `cache_write_tokens` of `prompt_tokens_details`, 0 unless that is
            // an object holding them.
            "prompt_tokens_details" => {
                let d = map.next_value::<ObjectOr<Details>>()?.0.unwrap_or_default();
                (self.cached_tokens, self.cache_write_tokens) = (d.cached, d.cache_write);
            }
            _ => {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Details {
    cached: u64,
    cache_write: u64,
}

impl Fields for Details {
    fn field<'de, A: serde::de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "cached_tokens" => self.cached = map.next_value::<Count>()?.0,
            "cache_write_tokens" => self.cache_write = map.next_value::<Count>()?.0,
            _ => {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A token count: the value when it is a `u64` (as `Value::as_u64` reads it), else 0.
struct Count(u64);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                serde::de::IgnoredAny.visit_map(map).map(|_| Count(0))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Count, A::Error> {
                serde::de::IgnoredAny.visit_seq(seq).map(|_| Count(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(0))
            }
            scalars!(Count(0));
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_usage_view_reads_what_the_value_path_reads() {
        let cases = [
            r#"{"prompt_tokens":19,"completion_tokens":21,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":7,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}}"#,
            r#"{"prompt_tokens":1}"#,
            r#"{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":2,"cache_write_tokens":3}}"#,
            r#"{"prompt_tokens_details":{"cache_write_tokens":"3","cached_tokens":-1}}"#,
            r#"{}"#,
            r#"{"prompt_tokens":-3,"completion_tokens":2.0,"prompt_tokens_details":{"cached_tokens":"4"}}"#,
            r#"{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551616}"#,
            r#"{"prompt_tokens":null,"completion_tokens":true,"prompt_tokens_details":null}"#,
            r#"{"prompt_tokens":[1],"completion_tokens":{"n":1},"prompt_tokens_details":[{"cached_tokens":1}]}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":5,"cached_tokens":6},"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"pr\u006fmpt_tokens":9}"#,
            r#"null"#,
            r#"[]"#,
            r#"[{"prompt_tokens":1}]"#,
            r#""many""#,
            r#"12"#,
            r#"-1"#,
            r#"1.5"#,
            r#"false"#,
        ];
        for c in cases {
            let by_value = openai_usage(&serde_json::from_str::<Value>(c).unwrap());
            let view: UsageView = serde_json::from_str(c).unwrap();
            assert_eq!(view.0, by_value, "{c}");
        }
        assert!(serde_json::from_str::<UsageView>(r#"{"prompt_tokens":}"#).is_err());
    }
}
