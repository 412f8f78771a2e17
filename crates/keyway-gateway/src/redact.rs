//! Removing provider secrets from what an upstream said before anyone sees it (Test key's
//! response, error bodies). Text is scrubbed *after* it is decoded: an upstream can quote a key
//! with JSON escapes (`sk\/...`, `\u0073k-...`) that a search of the raw bytes would never match.

use serde_json::{Map, Value};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Longest body shown when it is not JSON (bytes, cut at a character boundary).
pub const MAX_RAW_BODY: usize = 4096;

/// Every form of `secret` that can appear in decoded text: as is, and percent-encoded (a key
/// echoed inside a URL or a form body).
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string();
    if encoded != secret {
        out.push(encoded);
    }
    out
}

/// `text` with every form of every secret (4 characters or longer) replaced by [`MASK`].
pub fn scrub_text(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        for f in forms(s) {
            if out.contains(&f) {
                out = out.replace(&f, MASK);
            }
        }
    }
    out
}

/// A message that may quote an upstream body: its JSON-style escapes decoded, then scrubbed.
pub fn scrub_message(text: &str, secrets: &[&str]) -> String {
    scrub_text(&unescape_lenient(text), secrets)
}

/// Scrubs every string in `v`, object keys included, in place.
pub fn scrub_value(v: &mut Value, secrets: &[&str]) {
    match v {
        Value::String(s) => {
            let clean = scrub_text(s, secrets);
            if clean != *s {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| scrub_value(i, secrets)),
        Value::Object(map) => {
            let taken = std::mem::take(map);
            let mut clean = Map::with_capacity(taken.len());
            for (k, mut val) in taken {
                scrub_value(&mut val, secrets);
                clean.insert(scrub_text(&k, secrets), val);
            }
            *map = clean;
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// An upstream body as it may be shown: parsed as JSON and scrubbed string by string; otherwise
/// its JSON-style escapes decoded, cut to [`MAX_RAW_BODY`], and scrubbed as text.
pub fn scrub_body(body: &str, secrets: &[&str]) -> Value {
    if let Ok(mut v) = serde_json::from_str::<Value>(body) {
        scrub_value(&mut v, secrets);
        return v;
    }
    let decoded = unescape_lenient(body);
    let mut cut = decoded.len().min(MAX_RAW_BODY);
    while !decoded.is_char_boundary(cut) {
        cut -= 1;
    }
    // Scrub the whole decoded text first: a cut through the middle of a key must not leave its
    // first half readable.
    let scrubbed = scrub_text(&decoded, secrets);
    let mut shown = scrub_text(&decoded[..cut], secrets);
    if scrubbed.len() < decoded.len() || cut < decoded.len() {
        // Re-cut the scrubbed text instead, at the same budget.
        let mut c = scrubbed.len().min(MAX_RAW_BODY);
        while !scrubbed.is_char_boundary(c) {
            c -= 1;
        }
        shown = scrubbed[..c].to_owned();
        if c < scrubbed.len() {
            shown.push_str("…[truncated]");
        }
    }
    Value::String(shown)
}

/// Decodes `\/`, `\"`, `\\`, `\n`-style and `\uXXXX` escapes (surrogate pairs too) wherever they
/// appear; anything else is kept as it is.
fn unescape_lenient(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, n)| n) {
            Some(n @ ('/' | '"' | '\\')) => {
                out.push(n);
                chars.next();
            }
            Some('n') => {
                out.push('\n');
                chars.next();
            }
            Some('t') => {
                out.push('\t');
                chars.next();
            }
            Some('r') => {
                out.push('\r');
                chars.next();
            }
            Some('u') => match hex4(s, i + 2) {
                Some(hi) if (0xD800..0xDC00).contains(&hi) && s.get(i + 6..i + 8) == Some("\\u") => {
                    match hex4(s, i + 8).and_then(|lo| char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF))) {
                        Some(ch) => {
                            out.push(ch);
                            for _ in 0..11 {
                                chars.next();
                            }
                        }
                        None => out.push('\\'),
                    }
                }
                Some(code) => match char::from_u32(code) {
                    Some(ch) => {
                        out.push(ch);
                        for _ in 0..5 {
                            chars.next();
                        }
                    }
                    None => out.push('\\'),
                },
                None => out.push('\\'),
            },
            _ => out.push('\\'),
        }
    }
    out
}

fn hex4(s: &str, at: usize) -> Option<u32> {
    s.get(at..at + 4).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())).and_then(|h| u32::from_str_radix(h, 16).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const KEY: &str = "sk-proj/Abc+123_secretKEY";

    fn escaped_every_char(s: &str) -> String {
        s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
    }

    #[test]
    fn a_key_quoted_with_json_escapes_is_scrubbed_after_parsing() {
        for quoted in [KEY.replace('/', "\\/"), escaped_every_char(KEY), format!("{}{}", &KEY[..3], escaped_every_char(&KEY[3..]))] {
            let body = format!(r#"{{"error": {{"message": "Incorrect API key provided: {quoted}", "key_{quoted}": [1, "{quoted}"]}}}}"#);
            let v = scrub_body(&body, &[KEY]);
            let shown = v.to_string();
            assert!(!shown.contains("secretKEY"), "{shown}");
            assert_eq!(v["error"]["message"], "Incorrect API key provided: ***");
            assert_eq!(v["error"]["key_***"][1], "***");
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_decoded_cut_and_scrubbed() {
        let body = format!("upstream says: bad key {} <html>{}", escaped_every_char(KEY), "x".repeat(10_000));
        let v = scrub_body(&body, &[KEY]);
        let shown = v.as_str().unwrap();
        assert!(!shown.contains("secretKEY") && shown.contains("bad key ***"), "{shown}");
        assert!(shown.len() <= MAX_RAW_BODY + 20 && shown.ends_with("[truncated]"));
        // A cut that would fall inside the key must not show its first half.
        let body = format!("{}{KEY}", "y".repeat(MAX_RAW_BODY - 8));
        assert!(!scrub_body(&body, &[KEY]).as_str().unwrap().contains("sk-proj"));
    }

    #[test]
    fn percent_encoded_forms_and_nested_values() {
        let enc = percent_encoding::utf8_percent_encode(KEY, percent_encoding::NON_ALPHANUMERIC).to_string();
        let mut v = json!({"url": format!("https://x/?key={enc}"), "list": [{"deep": KEY}]});
        scrub_value(&mut v, &[KEY]);
        assert_eq!(v, json!({"url": "https://x/?key=***", "list": [{"deep": "***"}]}));
        // Short values are never treated as secrets (they would mask ordinary words).
        assert_eq!(scrub_text("abc", &["abc"]), "abc");
    }

    #[test]
    fn unescape_keeps_what_is_not_an_escape() {
        assert_eq!(unescape_lenient(r"a\qb \u12 \uZZZZ \\ \/"), r"a\qb \u12 \uZZZZ \ /");
        assert_eq!(unescape_lenient(r"\ud83d\ude00!"), "😀!");
    }
}
