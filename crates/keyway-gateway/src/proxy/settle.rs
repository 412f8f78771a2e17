//! Closing a generation's books, whole answer or stream: one function both paths call, and
//! that imports neither (the stream's end runs it from `Drop`).

use crate::admission::Admission;
use crate::state::AppState;
use crate::usage::GenerationRecord;
use keyway_core::pricing::Prices;
use keyway_core::ProviderSlug;
use std::time::{Duration, Instant};

/// An answered generation's throughput sample: the serving model and provider, and how long
/// the answer took (only an answer that ran to its end says how fast the endpoint generates).
pub struct Throughput<'a> {
    pub model: &'a str,
    pub provider: ProviderSlug,
    pub took: Duration,
}

/// Closes the books of a generation an attempt answered: the throughput sample, the charge,
/// the token reservation corrected to what was used, the row queued for the store.
pub fn finish(
    state: &AppState,
    mut record: GenerationRecord,
    started: Instant,
    prices: Option<Prices>,
    admission: &mut Admission,
    sample: Option<Throughput<'_>>,
) {
    if let (Some(t), Some(u)) = (sample, record.usage) {
        state
            .stats
            .record_throughput(t.model, t.provider, u.completion_tokens, t.took);
    }
    record.latency_ms = started.elapsed().as_millis() as u64;
    state.billing.settle(&mut record, prices);
    if let Some(u) = record.usage {
        admission.settle_tokens(u.total());
    }
    state.usage.record(record);
}

