//! The limits every upstream exchange runs under; shared by the client, the send/read helpers
//! and every adapter (so that none of them needs the registry that builds the adapters).

use std::time::Duration;

/// How long an upstream exchange may take, and how large its answer may be (memory stays
/// bounded whatever an upstream sends: past a cap the attempt fails as a protocol error, 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the response head (and to an error body).
    pub first_byte: Duration,
    /// Between two chunks of a body or stream.
    pub idle: Duration,
    /// Largest whole (non-streamed) answer read, in bytes.
    pub max_answer_bytes: usize,
    /// Largest single line or event of a stream, in bytes.
    pub max_event_bytes: usize,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(120),
            max_answer_bytes: 64 * 1024 * 1024,
            max_event_bytes: 16 * 1024 * 1024,
        }
    }
}
