//! What this node has observed per endpoint (gateway model x provider), for `provider.sort:
//! "latency" | "throughput"`: a moving window of the last [`WINDOW`] successful attempts, of
//! which only those younger than [`MAX_AGE`] count. The planner reads the median of each.
//!
//! - latency: milliseconds from sending the attempt to its first content (a stream's first
//!   content chunk; a whole response's arrival);
//! - throughput: output tokens per second, over the attempt from sending it to its last byte.
//!
//! On the hot path: a read lock on the map and one small mutex per endpoint; an endpoint's
//! window is allocated once, on its first success, and then reused.

use keyway_core::route::{EndpointStats, StatsSource};
use keyway_core::ProviderSlug;
use foldhash::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Samples kept per endpoint and per measure.
pub const WINDOW: usize = 64;
/// Older samples are ignored: an endpoint measured only long ago counts as unmeasured.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// A bound on distinct endpoints tracked (request models are caller-chosen strings).
const MAX_ENDPOINTS: usize = 10_000;

/// A fixed ring of timestamped samples.
#[derive(Debug, Clone, Copy)]
struct Ring {
    samples: [Option<(Instant, f64)>; WINDOW],
    next: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Self { samples: [None; WINDOW], next: 0 }
    }
}

impl Ring {
    fn push(&mut self, at: Instant, v: f64) {
        self.samples[self.next] = Some((at, v));
        self.next = (self.next + 1) % WINDOW;
    }

    /// The median of the samples younger than `MAX_AGE`, if any.
    fn median(&self, now: Instant) -> Option<f64> {
        let mut vals = [0f64; WINDOW];
        let mut n = 0;
        for (at, v) in self.samples.iter().flatten() {
            if now.saturating_duration_since(*at) <= MAX_AGE {
                vals[n] = *v;
                n += 1;
            }
        }
        if n == 0 {
            return None;
        }
        let vals = &mut vals[..n];
        vals.sort_unstable_by(f64::total_cmp);
        Some(if n % 2 == 1 { vals[n / 2] } else { (vals[n / 2 - 1] + vals[n / 2]) / 2.0 })
    }
}

#[derive(Debug, Default)]
struct Window {
    latency_ms: Ring,
    throughput_tps: Ring,
}

type Slot = Arc<Mutex<Window>>;

#[derive(Debug, Default)]
pub struct StatsBoard {
    by_model: RwLock<HashMap<String, HashMap<ProviderSlug, Slot>>>,
}

impl StatsBoard {
    fn slot(&self, model: &str, provider: ProviderSlug) -> Option<Slot> {
        if let Some(s) = self.by_model.read().unwrap_or_else(|p| p.into_inner()).get(model).and_then(|m| m.get(&provider)) {
            return Some(s.clone());
        }
        let mut map = self.by_model.write().unwrap_or_else(|p| p.into_inner());
        let known = map.get(model).is_some_and(|m| m.contains_key(&provider));
        if !known && map.values().map(HashMap::len).sum::<usize>() >= MAX_ENDPOINTS {
            return None;
        }
        Some(map.entry(model.to_owned()).or_default().entry(provider).or_default().clone())
    }

    fn with(&self, model: &str, provider: ProviderSlug, f: impl FnOnce(&mut Window)) {
        if let Some(s) = self.slot(model, provider) {
            f(&mut s.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// A successful attempt's time to first content.
    pub fn record_latency(&self, model: &str, provider: ProviderSlug, latency: Duration) {
        let now = Instant::now();
        self.with(model, provider, |w| w.latency_ms.push(now, latency.as_secs_f64() * 1000.0));
    }

    /// A finished attempt's output tokens over its whole duration. Nothing is recorded without
    /// tokens (an upstream that reported no usage says nothing about its speed).
    pub fn record_throughput(&self, model: &str, provider: ProviderSlug, output_tokens: u64, duration: Duration) {
        if output_tokens == 0 {
            return;
        }
        // A floor of 1 ms keeps a loopback answer from reading as infinitely fast.
        let secs = duration.as_secs_f64().max(0.001);
        let now = Instant::now();
        self.with(model, provider, |w| w.throughput_tps.push(now, output_tokens as f64 / secs));
    }

    /// The window's medians now (what `sort` sees).
    pub fn get(&self, model: &str, provider: ProviderSlug) -> Option<EndpointStats> {
        let slot = self.by_model.read().unwrap_or_else(|p| p.into_inner()).get(model)?.get(&provider)?.clone();
        let w = slot.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let s = EndpointStats { latency_ms: w.latency_ms.median(now), throughput_tps: w.throughput_tps.median(now) };
        (s.latency_ms.is_some() || s.throughput_tps.is_some()).then_some(s)
    }
}

impl StatsSource for StatsBoard {
    fn stats(&self, model: &str, provider: ProviderSlug) -> Option<EndpointStats> {
        self.get(model, provider)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unmeasured_endpoint_has_no_stats() {
        let b = StatsBoard::default();
        assert_eq!(b.get("m", ProviderSlug::OpenAi), None);
        b.record_throughput("m", ProviderSlug::OpenAi, 0, Duration::from_millis(5));
        assert_eq!(b.get("m", ProviderSlug::OpenAi), None, "no tokens, no sample");
    }

    #[test]
    fn median_of_the_window_and_oldest_samples_drop_out() {
        let b = StatsBoard::default();
        for ms in [10, 30, 20] {
            b.record_latency("m", ProviderSlug::OpenAi, Duration::from_millis(ms));
        }
        assert_eq!(b.get("m", ProviderSlug::OpenAi).unwrap().latency_ms, Some(20.0));
        assert_eq!(b.get("m", ProviderSlug::Groq), None, "per provider");
        assert_eq!(b.get("other", ProviderSlug::OpenAi), None, "per model");
        // A full window of slow samples pushes the fast ones out.
        for _ in 0..WINDOW {
            b.record_latency("m", ProviderSlug::OpenAi, Duration::from_millis(500));
        }
        assert_eq!(b.get("m", ProviderSlug::OpenAi).unwrap().latency_ms, Some(500.0));
    }

    #[test]
    fn throughput_is_tokens_per_second() {
        let b = StatsBoard::default();
        b.record_throughput("m", ProviderSlug::OpenAi, 100, Duration::from_millis(500));
        b.record_throughput("m", ProviderSlug::OpenAi, 100, Duration::from_millis(250));
        let s = b.get("m", ProviderSlug::OpenAi).unwrap();
        assert_eq!(s.throughput_tps, Some(300.0));
        assert_eq!(s.latency_ms, None);
    }

    #[test]
    fn samples_older_than_max_age_are_ignored() {
        let mut r = Ring::default();
        let now = Instant::now();
        r.push(now, 1.0);
        assert_eq!(r.median(now + MAX_AGE + Duration::from_secs(1)), None);
        assert_eq!(r.median(now), Some(1.0));
    }
}
