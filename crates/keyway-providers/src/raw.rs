//! Raw JSON: objects kept as the text they came in ([`RawObject`]), where a value sits in that
//! text ([`Span`]), and splicing new values into it ([`splice`]). The answer and request types
//! ([`crate::body`], [`crate::types`]) are built on these; this module imports neither.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Where one top-level value sits in a chunk's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// The span of `part`, a slice borrowed from `whole`; `None` when it isn't one.
    pub fn within(whole: &str, part: &str) -> Option<Span> {
        let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= whole.len()).then_some(Span { start, end })
    }
}

/// `s` as a JSON string, quotes and escapes included.
pub fn json_str(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_json_str(&mut out, s);
    // serde_json writes valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// One top-level edit of a JSON object's text: `key` set to `value` (JSON text, written as it
/// is), in place where its old value sits (`at`), else added at the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edit<'a> {
    pub key: &'a str,
    pub at: Option<Span>,
    pub value: &'a str,
}

/// Appends the object `json` to `out` with `edits` made: the present keys' values replaced where
/// they are, the absent keys added before the closing brace in `edits`' order. `false` (and
/// nothing written) when the spans don't fit `json`, which is then not the text they were read
/// from. The caller sizes `out`; a handful of edits, sorted in place, no allocation.
pub(crate) fn splice(json: &[u8], edits: &mut [Edit<'_>], out: &mut Vec<u8>) -> bool {
    let Some(close) = json.iter().rposition(|&b| b == b'}') else { return false };
    let Some(open) = json.iter().position(|&b| b == b'{') else { return false };
    // The present keys first, by where they sit; the absent ones after, in their order (the
    // sort is stable).
    edits.sort_by_key(|e| e.at.map_or(usize::MAX, |s| s.start));
    let present = edits.iter().take_while(|e| e.at.is_some()).count();
    let (present, absent) = edits.split_at(present);
    // In order, apart, and inside the object: else these spans belong to other bytes.
    let mut at = open + 1;
    for s in present.iter().filter_map(|e| e.at) {
        if s.start < at || s.end < s.start || s.end > close {
            return false;
        }
        at = s.end;
    }
    let has_members = !present.is_empty() || json.get(open + 1..close).is_some_and(|m| m.iter().any(|b| !b.is_ascii_whitespace()));
    let mut at = 0;
    for e in present {
        let Some(s) = e.at else { continue };
        out.extend_from_slice(json.get(at..s.start).unwrap_or_default());
        out.extend_from_slice(e.value.as_bytes());
        at = s.end;
    }
    out.extend_from_slice(json.get(at..close).unwrap_or_default());
    for (i, e) in absent.iter().enumerate() {
        if has_members || i > 0 {
            out.push(b',');
        }
        write_json_str(out, e.key);
        out.push(b':');
        out.extend_from_slice(e.value.as_bytes());
    }
    out.extend_from_slice(json.get(close..).unwrap_or_default());
    true
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JSON object whose top-level values are kept as raw JSON text, in the upstream's order.
#[derive(Debug, Clone)]
pub struct RawObject {
    fields: Vec<(String, Box<RawValue>)>,
}

/// Same keys in the same order with the same JSON text.
impl PartialEq for RawObject {
    fn eq(&self, other: &Self) -> bool {
        self.fields.len() == other.fields.len() && self.fields.iter().zip(&other.fields).all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

impl RawObject {
    /// Parses `bytes` as one JSON object (anything else is an error).
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    /// A top-level value parsed into `T` (e.g. `usage`), `None` when absent or not a `T`.
    pub fn get_as<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<T> {
        serde_json::from_str(self.get(key)?.get()).ok()
    }

    /// Replaces `key`'s value (every copy of a duplicated key) or appends it.
    pub fn set(&mut self, key: &str, value: &impl Serialize) {
        let Ok(raw) = serde_json::value::to_raw_value(value) else { return };
        let mut found = false;
        for (k, v) in &mut self.fields {
            if k == key {
                *v = raw.clone();
                found = true;
            }
        }
        if !found {
            self.fields.push((key.to_owned(), raw));
        }
    }

    /// The fields in order (duplicates included), each value as its JSON text.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// Takes `key` out (every copy of a duplicated key), returning the last copy's value.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let mut last = None;
        let mut i = 0;
        while i < self.fields.len() {
            if self.fields.get(i).is_some_and(|(k, _)| k == key) {
                last = Some(self.fields.remove(i).1);
            } else {
                i += 1;
            }
        }
        last
    }

    /// One copy per key, as a parsed `Map` keeps them: the last value, at the first position.
    pub fn dedup_keys(&mut self) {
        // A request has a dozen keys at most: the quadratic check costs less than a set.
        let n = self.fields.len();
        if !(1..n).any(|i| self.fields[..i].iter().any(|(k, _)| *k == self.fields[i].0)) {
            return;
        }
        let mut out: Vec<(String, Box<RawValue>)> = Vec::with_capacity(n);
        for (k, v) in self.fields.drain(..) {
            match out.iter_mut().find(|(ko, _)| *ko == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        self.fields = out;
    }

    /// The parsed map (the last copy of a duplicated key wins, as when parsing the text). An
    /// error where a value that was split over is refused by a parse (a lone surrogate escape, a
    /// number beyond `f64`).
    pub fn try_to_map(&self) -> Result<Map<String, Value>, serde_json::Error> {
        self.fields.iter().map(|(k, v)| Ok((k.clone(), serde_json::from_str(v.get())?))).collect()
    }

    pub fn to_value(&self) -> Value {
        Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::from_str(v.get()).unwrap_or(Value::Null)))
                .collect(),
        )
    }

    pub(crate) fn len_hint(&self) -> usize {
        2 + self.fields.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>()
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push((k, v));
                }
                Ok(RawObject { fields })
            }
        }
        d.deserialize_map(Fields)
    }
}

