//! Generation records: one per request (also those refused at admission with 402/429), with
//! every attempt, written off the hot path.
//!
//! Handlers hand a [`GenerationRecord`] to [`UsageRecorder::record`], which never blocks: it
//! puts the record on a bounded queue. A background task takes the queue in batches into the
//! store. When the queue is full (the database can't keep up) the record is dropped and counted
//! (`dropped()`), because slowing every request down to the database's pace is worse than a gap
//! in the ledger that the operator is told about.
//!
//! The queue is a vector the writer takes whole: what a burst queued is freed once written.
//! (tokio's channel kept every block it ever grew: ~11 MB after an overload filled it.)
//!
//! A batch the store refuses is retried with back-off (0.2, 0.4, 0.8, 1.6 s), then counted in
//! `dropped()` and logged with its row count. On shutdown [`UsageRecorder::close`] stops taking
//! records and waits for the writer to write every queued one: a clean stop loses nothing.
//! A `kill -9` loses what was still queued: at most `queue_capacity` records, in practice the
//! records of the last `batch_linger_ms` plus one batch in flight (README, "Shutdown").

use keyway_store::{GenerationRow, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::record::{AttemptRecord, GenerationRecord};

/// Told about every batch the writer commits and every record dropped (the billing ledger
/// tracks which charges the store has seen; see `billing.rs`).
pub trait UsageHook: Send + Sync {
    fn before_write(&self);
    fn after_write(&self, rows: &[GenerationRow]);
    fn dropped(&self, rec: &GenerationRecord);
}

pub struct UsageRecorder {
    queue: Option<Arc<Queue>>,
    /// Set once after start (`with_hook`); the writer task reads it per batch.
    hook: Arc<std::sync::OnceLock<Arc<dyn UsageHook>>>,
    dropped: Arc<AtomicU64>,
    recorded: Arc<AtomicU64>,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The writer's own store handle, counted apart from the request path's.
    writer_store: Option<Store>,
    /// Failed batch inserts (each retry counts): the `keyway_db_errors_total` metric.
    write_errors: Arc<AtomicU64>,
    /// Counts and logs every finished request (`/metrics`, the per-request log line).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

const BATCH: usize = 512;
/// The most records one transaction takes after a linger (a burst queued while it slept).
const DRAIN: usize = 8 * BATCH;
/// Retries of a batch the store refused, before its rows are counted as dropped.
const WRITE_RETRIES: u32 = 4;

impl UsageRecorder {
    /// Starts the writer task. `capacity` bounds memory under overload; `linger` is how long
    /// it waits for more records before writing a batch that isn't full.
    pub fn start(store: Store, capacity: usize, linger: Duration) -> Self {
        let store = store.with_separate_count();
        let writer_store = Some(store.clone());
        let queue = Arc::new(Queue { state: std::sync::Mutex::default(), wake: tokio::sync::Notify::new(), capacity });
        let recorded = Arc::new(AtomicU64::new(0));
        let counter = recorded.clone();
        let write_errors = Arc::new(AtomicU64::new(0));
        let errors = write_errors.clone();
        let hook: Arc<std::sync::OnceLock<Arc<dyn UsageHook>>> = Arc::default();
        let writer_hook = hook.clone();
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        let q = queue.clone();
        let writer = tokio::spawn(async move {
            loop {
                let (queued, closed) = q.peek();
                if queued == 0 {
                    if closed {
                        break;
                    }
                    q.wake.notified().await;
                    continue;
                }
                // Linger so that a trickle of records becomes one transaction, not one each: a
                // commit wakes SQLite's worker thread and writes the WAL, which cost ~40% of the
                // gateway's CPU at 1,000 req/s before this (bench/README.md). The linger is a plain
                // sleep and the queue is taken after it: waiting on the queue instead woke this
                // task once per request, often on the other core (bench/README.md, 2026-12-07).
                // A full batch means more is waiting: no linger then.
                if queued < BATCH && !closed {
                    tokio::time::sleep(linger).await;
                }
                let mut records = q.take().into_iter();
                loop {
                    let rows: Arc<[GenerationRow]> = records.by_ref().take(DRAIN).map(to_row).collect();
                    if rows.is_empty() {
                        break;
                    }
                    if let Some(h) = writer_hook.get() {
                        h.before_write();
                    }
                    let n = rows.len() as u64;
                    if insert_with_retries(&store, &rows, &errors).await {
                        counter.fetch_add(n, Ordering::Relaxed);
                    } else {
                        lost.fetch_add(n, Ordering::Relaxed);
                    }
                    if let Some(h) = writer_hook.get() {
                        h.after_write(&rows);
                    }
                    q.written(rows.len());
                }
            }
        });
        Self {
            queue: Some(queue),
            hook,
            dropped,
            recorded,
            writer: std::sync::Mutex::new(Some(writer)),
            writer_store,
            write_errors,
            metrics: None,
        }
    }

    /// Stops taking records (later ones are dropped and counted) and waits up to `timeout` for
    /// the writer to write everything queued. Returns whether it finished in time.
    pub async fn close(&self, timeout: Duration) -> bool {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(writer) = writer else { return true };
        if let Some(q) = &self.queue {
            q.close();
        }
        match tokio::time::timeout(timeout, writer).await {
            Ok(_) => true,
            Err(_) => {
                tracing::error!(queued = self.queue_depth(), "the usage writer did not finish in time; queued records are lost");
                false
            }
        }
    }

    /// A recorder that keeps nothing (`[usage] record = false`: benchmarks and diagnosis only).
    pub fn disabled() -> Self {
        Self {
            queue: None,
            hook: Arc::default(),
            dropped: Arc::default(),
            recorded: Arc::default(),
            writer: std::sync::Mutex::new(None),
            writer_store: None,
            write_errors: Arc::default(),
            metrics: None,
        }
    }

    /// Every recorded request is also observed by `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Installs the hook told about writes and drops (once; later calls are ignored).
    pub fn with_hook(self, hook: Arc<dyn UsageHook>) -> Self {
        let _ = self.hook.set(hook);
        self
    }

    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    pub fn record(&self, rec: GenerationRecord) {
        if let Some(m) = &self.metrics {
            m.observe(&rec);
        }
        if let Some(q) = &self.queue {
            if let Err(rec) = q.push(rec) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(h) = self.hook.get() {
                    h.dropped(&rec);
                }
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Store queries the background writer issued (batched inserts, off the request path).
    pub fn store_queries(&self) -> u64 {
        self.writer_store.as_ref().map(Store::query_count).unwrap_or(0)
    }

    /// Records waiting to be written.
    pub fn queue_depth(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.peek().0)
    }
}

/// Inserts `rows` in one transaction, retrying with back-off; whether they were written. Every
/// failed try counts in `errors`.
async fn insert_with_retries(store: &Store, rows: &Arc<[GenerationRow]>, errors: &AtomicU64) -> bool {
    let n = rows.len();
    for tries in 0..=WRITE_RETRIES {
        let Err(e) = store.insert_generations(rows.clone()).await else { return true };
        errors.fetch_add(1, Ordering::Relaxed);
        if tries == WRITE_RETRIES {
            tracing::error!(error = %e, rows = n, "writing usage failed after retries; these records are lost (keyway_usage_dropped_total)");
            break;
        }
        let wait = Duration::from_millis(200 << tries);
        tracing::warn!(error = %e, rows = n, retry_in_ms = wait.as_millis() as u64, "writing usage failed; retrying");
        tokio::time::sleep(wait).await;
    }
    false
}

/// Records waiting for the writer, bounded by `capacity` together with those it is writing.
struct Queue {
    state: std::sync::Mutex<QueueState>,
    /// The writer waits here while the queue is empty.
    wake: tokio::sync::Notify,
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    records: Vec<GenerationRecord>,
    /// Taken by the writer and not yet written.
    in_flight: usize,
    /// No new records from here on; those queued are still written.
    closed: bool,
}

impl Queue {
    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives the record back when the queue is full or closed (moved, not boxed: a box would
    /// be an allocation per request for the rare refusal).
    #[allow(clippy::result_large_err)]
    fn push(&self, rec: GenerationRecord) -> Result<(), GenerationRecord> {
        let mut s = self.state();
        if s.closed || s.records.len() + s.in_flight >= self.capacity {
            return Err(rec);
        }
        let first = s.records.is_empty();
        s.records.push(rec);
        drop(s);
        // Only the first record wakes the writer: the rest wait for its linger.
        if first {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// (records waiting or being written, closed)
    fn peek(&self) -> (usize, bool) {
        let s = self.state();
        (s.records.len() + s.in_flight, s.closed)
    }

    /// Everything queued, now in flight; the queue starts again from an empty vector.
    fn take(&self) -> Vec<GenerationRecord> {
        let mut s = self.state();
        let taken = std::mem::take(&mut s.records);
        s.in_flight += taken.len();
        taken
    }

    fn written(&self, n: usize) {
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(n);
    }

    fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }
}

/// The attempts as the row's JSON text, in a buffer sized for them (an attempt is ~150 bytes;
/// serde_json's own 128 grew once per row).
fn attempts_json(attempts: &[AttemptRecord]) -> String {
    let mut out = Vec::with_capacity(192 * attempts.len().max(1));
    match serde_json::to_writer(&mut out, attempts).map(|()| String::from_utf8(out)) {
        Ok(Ok(s)) => s,
        _ => "[]".into(),
    }
}

fn to_row(r: GenerationRecord) -> GenerationRow {
    let u = r.usage.unwrap_or_default();
    GenerationRow {
        id: r.id,
        workspace_id: r.workspace_id,
        api_key_hash: r.api_key_hash,
        user_id: r.user,
        requested_model: r.requested_model,
        model: r.model,
        provider: r.provider,
        credential_id: r.credential_id,
        is_byok: r.is_byok,
        streamed: r.streamed,
        status: i64::from(r.status),
        prompt_tokens: u.prompt_tokens as i64,
        completion_tokens: u.completion_tokens as i64,
        cached_tokens: u.cached_tokens as i64,
        cache_write_tokens: u.cache_write_tokens as i64,
        has_usage: r.usage.is_some(),
        latency_ms: r.latency_ms as i64,
        ttft_ms: r.ttft_ms.map(|t| t as i64),
        attempts: attempts_json(&r.attempts),
        finish_reason: r.finish_reason,
        app_referer: r.app_referer,
        app_title: r.app_title,
        cost_micros: r.cost_micros as i64,
        fee_micros: r.fee_micros as i64,
        created_at: r.created_at_ms,
        route_plan: r.route_plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> GenerationRecord {
        GenerationRecord::for_test(&format!("gen-{i}"), "ws")
    }

    #[test]
    fn the_queue_counts_what_is_being_written_and_gives_a_burst_s_memory_back() {
        let q = Queue { state: std::sync::Mutex::default(), wake: tokio::sync::Notify::new(), capacity: 100 };
        for i in 0..100 {
            assert!(q.push(rec(i)).is_ok());
        }
        assert!(q.push(rec(100)).is_err(), "full");
        let taken = q.take();
        assert_eq!(taken.len(), 100);
        assert_eq!(q.state().records.capacity(), 0, "the burst's buffer left with the writer");
        assert_eq!(q.peek(), (100, false));
        assert!(q.push(rec(101)).is_err(), "records being written still count against the bound");
        drop(taken);
        q.written(60);
        for i in 0..60 {
            assert!(q.push(rec(200 + i)).is_ok());
        }
        assert!(q.push(rec(300)).is_err());
        q.written(40);
        q.close();
        assert!(q.push(rec(301)).is_err(), "closed");
        assert_eq!(q.peek(), (60, true), "what was queued before closing is still written");
    }
}
