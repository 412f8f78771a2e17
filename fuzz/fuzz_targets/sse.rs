//! The SSE decoder on any bytes split anywhere: events or a bounded-line error, never a panic,
//! and the same events whatever the split.
#![no_main]

use keyway_providers::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fn decode(parts: &[&[u8]]) -> Vec<(String, String)> {
    let mut d = SseDecoder::with_max_line(4096);
    let mut out = Vec::new();
    for p in parts {
        d.push(p);
        loop {
            match d.next_event() {
                Ok(Some(e)) => out.push((e.event, e.data)),
                Ok(None) => break,
                Err(_) => return out,
            }
        }
    }
    out.extend(d.finish().map(|e| (e.event, e.data)));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let at = usize::from(cut).min(rest.len());
    let whole = decode(&[rest]);
    let split = decode(&[&rest[..at], &rest[at..]]);
    // A line longer than the cap may be refused at a different point; otherwise the same.
    if rest.len() < 4096 {
        assert_eq!(whole, split);
    }
});
