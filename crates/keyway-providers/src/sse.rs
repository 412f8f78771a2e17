//! An incremental Server-Sent Events decoder. Bytes arrive split anywhere (inside a line, inside
//! a UTF-8 sequence, between `\r` and `\n`); events come out whole. It never panics on any input.

use bytes::{Buf, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty means the default `message`.
    pub event: String,
    pub data: String,
}

/// Feed with [`SseDecoder::push`], drain with [`SseDecoder::next_event`].
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    event: String,
    data: String,
    has_data: bool,
    /// The previous chunk ended in `\r`; a leading `\n` of the next belongs to it.
    skip_lf: bool,
    /// Guard against an upstream that never ends a line, or an event of endless `data:` lines.
    max_line: usize,
    /// The current event's data grew past `max_line`.
    too_long: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SSE line or event longer than {0} bytes")]
pub struct LineTooLong(pub usize);

impl SseDecoder {
    pub fn new() -> Self {
        Self { max_line: 16 * 1024 * 1024, ..Default::default() }
    }

    pub fn with_max_line(max_line: usize) -> Self {
        Self { max_line, ..Default::default() }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, LineTooLong> {
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
                self.skip_lf = false;
            }
            let Some(pos) = memchr::memchr2(b'\n', b'\r', &self.buf) else {
                if self.buf.len() > self.max_line {
                    self.buf.clear();
                    return Err(LineTooLong(self.max_line));
                }
                return Ok(None);
            };
            let line = self.buf.split_to(pos);
            let terminator = self.buf[0];
            self.buf.advance(1);
            if terminator == b'\r' {
                self.skip_lf = true;
            }
            let ev = self.line(&line);
            if self.too_long {
                self.buf.clear();
                self.data = String::new();
                self.event.clear();
                self.has_data = false;
                self.too_long = false;
                return Err(LineTooLong(self.max_line));
            }
            if let Some(ev) = ev {
                return Ok(Some(ev));
            }
        }
    }

    /// At end of input: a final event that was not followed by a blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let line = self.buf.split();
            if let Some(ev) = self.line(&line) {
                return Some(ev);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // The validating fast path first: `from_utf8_lossy` checks byte by byte even when all is
        // well, which was most of the decoder's time per event.
        let value = match std::str::from_utf8(value) {
            Ok(v) => std::borrow::Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max_line {
                    self.too_long = true;
                    return None;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = value.into_owned(),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !self.has_data {
            self.event.clear();
            return None;
        }
        self.has_data = false;
        Some(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = vec![];
        for c in chunks {
            d.push(c);
            while let Ok(Some(e)) = d.next_event() {
                out.push(e);
            }
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn decodes_events_with_names_and_multiline_data() {
        let evs = decode_all(&[b"event: message_start\ndata: {\"a\":1}\n\n: comment\ndata: x\ndata: y\n\ndata: [DONE]\n\n"]);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].event, "message_start");
        assert_eq!(evs[1].data, "x\ny");
        assert_eq!(evs[2].data, "[DONE]");
    }

    #[test]
    fn crlf_split_across_chunks() {
        let evs = decode_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(evs.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn unterminated_final_event_is_flushed() {
        let evs = decode_all(&[b"data: tail"]);
        assert_eq!(evs, vec![SseEvent { event: String::new(), data: "tail".into() }]);
    }

    #[test]
    fn overlong_line_is_an_error_not_a_hang() {
        let mut d = SseDecoder::with_max_line(8);
        d.push(b"data: 0123456789");
        assert_eq!(d.next_event(), Err(LineTooLong(8)));
    }

    #[test]
    fn an_event_of_many_short_data_lines_is_capped_too() {
        let mut d = SseDecoder::with_max_line(64);
        for _ in 0..20 {
            d.push(b"data: 0123456789\n");
        }
        assert_eq!(d.next_event(), Err(LineTooLong(64)));
        // Memory goes back: what was gathered is dropped, and later events decode.
        assert!(d.data.capacity() == 0 && d.buf.is_empty());
        d.push(b"\ndata: ok\n\n");
        assert_eq!(d.next_event().ok().flatten().map(|e| e.data), Some("ok".into()));
    }

    proptest! {
        #[test]
        fn any_bytes_any_split_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), cuts in proptest::collection::vec(0usize..512, 0..8)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut prev = 0;
            let mut parts: Vec<&[u8]> = vec![];
            for c in cuts { parts.push(&data[prev..c]); prev = c; }
            parts.push(&data[prev..]);
            let _ = decode_all(&parts);
        }

        #[test]
        fn splitting_does_not_change_the_events(n in 1usize..6, split in 0usize..200) {
            let mut text = String::new();
            for i in 0..n { text.push_str(&format!("event: e{i}\r\ndata: {{\"i\":{i}}}\r\n\r\n")); }
            let bytes = text.as_bytes();
            let split = split.min(bytes.len());
            let whole = decode_all(&[bytes]);
            let parts = decode_all(&[&bytes[..split], &bytes[split..]]);
            prop_assert_eq!(whole.len(), n);
            prop_assert_eq!(whole, parts);
        }
    }
}
