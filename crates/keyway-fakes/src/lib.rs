//! Fake upstream servers for tests, `keyway demo` and benchmarks.
//!
//! Each fake speaks one provider's real wire protocol and checks authentication the way the real
//! service does, so a test that passes against a fake exercised Keyway's real signing and
//! translation code over real HTTP. Every fake shares [`FakeState`]: the keys it accepts, the
//! calls it saw (to assert which key was used, how often), and fault switches (429 with
//! Retry-After, 5xx, 401, slow first byte, a stream cut halfway, an error event after a 200,
//! invalid JSON), either for every call or only for calls made with one key.

pub mod bedrock;
pub mod gemini;
pub mod anthropic;
pub mod azure;
pub mod openai;
pub mod server;
pub mod vertex;

pub use server::{Fault, FakeServer, FakeState, RecordedCall};
