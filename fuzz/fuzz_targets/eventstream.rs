//! The AWS event-stream decoder (Bedrock) on any bytes split anywhere: messages or a frame
//! error, never a panic.
#![no_main]

use keyway_providers::bedrock::EventStreamDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let at = usize::from(cut).min(rest.len());
    let mut d = EventStreamDecoder::new();
    for part in [&rest[..at], &rest[at..]] {
        d.push(part);
        while let Ok(Some(_)) = d.next_message() {}
    }
});
