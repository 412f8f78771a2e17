//! `GET /metrics` in Prometheus text, and the one log line per request.
//!
//! Everything about a request is known once its [`GenerationRecord`] is handed to the usage
//! recorder, streamed or not, served or failed, so that is where [`Metrics::observe`] runs: one
//! hook, no timing code spread through the attempt loop. Labels carry provider slugs, model
//! slugs and credential *ids* (`system` for operator keys) — never a secret, never a key hash.
//!
//! The recorder belongs to the [`AppState`](crate::AppState), not to a process-global: several
//! gateways in one test process keep separate numbers.

use crate::usage::GenerationRecord;
use metrics::{counter, gauge, histogram, with_local_recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Seconds: from sub-millisecond gateway overhead to multi-minute streams.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Point-in-time values read when `/metrics` is scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    pub usage_queue_depth: u64,
    pub usage_dropped: u64,
    pub usage_recorded: u64,
    pub usage_write_errors: u64,
    pub store_queries: u64,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

impl Metrics {
    pub fn new() -> Self {
        // The bucket lists are static and non-empty, so neither call can fail; fall back to
        // the exporter's defaults rather than panic if that ever changes.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("keyway_attempts_per_request".into()), ATTEMPT_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    /// Counts and times one finished request, and writes its log line.
    pub fn observe(&self, r: &GenerationRecord) {
        let provider = r.provider.clone().unwrap_or_else(|| "none".into());
        let status = r.status.to_string();
        let upstream_ms: u64 = r.attempts.iter().map(|a| a.latency_ms).sum();
        // Time Keyway itself spent before the answer started flowing: the whole request for a
        // plain answer, up to the first token for a stream; minus the time spent waiting upstream.
        let until_answer = if r.streamed { r.ttft_ms.unwrap_or(r.latency_ms) } else { r.latency_ms };
        let overhead_ms = until_answer.saturating_sub(upstream_ms);
        let fell_back = r.status == 200 && r.attempts.len() > 1;
        with_local_recorder(&self.recorder, || {
            let byok = if r.is_byok { "true" } else { "false" };
            counter!("keyway_requests_total", "provider" => provider.clone(), "status" => status.clone(), "streamed" => r.streamed.to_string()).increment(1);
            histogram!("keyway_request_duration_seconds", "provider" => provider.clone()).record(secs(r.latency_ms));
            histogram!("keyway_upstream_duration_seconds", "provider" => provider.clone()).record(secs(upstream_ms));
            histogram!("keyway_gateway_overhead_seconds").record(secs(overhead_ms));
            if let Some(t) = r.ttft_ms {
                histogram!("keyway_time_to_first_token_seconds", "provider" => provider.clone()).record(secs(t));
            }
            histogram!("keyway_attempts_per_request").record(r.attempts.len() as f64);
            if let Some(u) = &r.usage {
                let model = r.model.clone().unwrap_or_default();
                counter!("keyway_tokens_total", "provider" => provider.clone(), "model" => model.clone(), "kind" => "prompt").increment(u.prompt_tokens);
                counter!("keyway_tokens_total", "provider" => provider.clone(), "model" => model.clone(), "kind" => "completion").increment(u.completion_tokens);
                if u.cached_tokens > 0 {
                    counter!("keyway_tokens_total", "provider" => provider.clone(), "model" => model, "kind" => "cached").increment(u.cached_tokens);
                }
            }
            if r.cost_micros > 0 {
                counter!("keyway_cost_micros_total", "provider" => provider.clone(), "byok" => byok).increment(r.cost_micros);
            }
            if r.fee_micros > 0 {
                counter!("keyway_fee_micros_total", "provider" => provider.clone()).increment(r.fee_micros);
            }
            if fell_back {
                let first = r.attempts.first().map(|a| a.provider.clone()).unwrap_or_default();
                counter!("keyway_fallbacks_total", "from_provider" => first, "to_provider" => provider.clone()).increment(1);
            }
            for a in &r.attempts {
                let outcome = if a.status == 200 { "ok".to_owned() } else { a.error.clone().unwrap_or_else(|| a.status.to_string()) };
                counter!("keyway_attempts_total", "provider" => a.provider.clone(), "credential" => a.credential_id.clone(), "outcome" => outcome)
                    .increment(1);
                histogram!("keyway_attempt_duration_seconds", "provider" => a.provider.clone()).record(secs(a.latency_ms));
                // The health rules cool a key down on 429 and on 401/403 (see docs/routing.md, rule 5).
                if matches!(a.status, 429 | 401 | 403) {
                    counter!("keyway_cooldowns_total", "provider" => a.provider.clone(), "credential" => a.credential_id.clone(), "status" => a.status.to_string())
                        .increment(1);
                }
            }
        });
        tracing::info!(
            target: "keyway::request",
            generation_id = %r.id,
            workspace_id = %r.workspace_id,
            model = %r.requested_model,
            served_model = r.model.as_deref().unwrap_or("-"),
            provider = %provider,
            credential = r.credential_id.as_deref().unwrap_or("-"),
            byok = r.is_byok,
            status = r.status,
            attempts = r.attempts.len(),
            streamed = r.streamed,
            latency_ms = r.latency_ms,
            ttft_ms = r.ttft_ms,
            upstream_ms,
            prompt_tokens = r.usage.map(|u| u.prompt_tokens),
            completion_tokens = r.usage.map(|u| u.completion_tokens),
            cost_micros = r.cost_micros,
            "request"
        );
    }

    /// Counts a response the HTTP layer saw (every route, including management and errors).
    pub fn observe_http(&self, surface: &'static str, status: u16) {
        with_local_recorder(&self.recorder, || {
            counter!("keyway_http_responses_total", "surface" => surface, "status" => status.to_string()).increment(1);
            if status >= 500 && surface != "inference" {
                // Inference 5xx are upstream trouble (counted per attempt); elsewhere a 500 is ours, mostly the store.
                counter!("keyway_internal_errors_total", "surface" => surface).increment(1);
            }
        });
    }

    /// Prometheus text, with the scrape-time gauges filled in.
    pub fn render(&self, s: Snapshot) -> String {
        with_local_recorder(&self.recorder, || {
            gauge!("keyway_usage_queue_depth").set(s.usage_queue_depth as f64);
            // Counted elsewhere (atomics); exported as counters so that rate() reads them right.
            counter!("keyway_usage_dropped_total").absolute(s.usage_dropped);
            counter!("keyway_usage_recorded_total").absolute(s.usage_recorded);
            counter!("keyway_db_errors_total", "source" => "usage_writer").absolute(s.usage_write_errors);
            counter!("keyway_store_queries_total").absolute(s.store_queries);
        });
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// `GET /metrics`.
pub async fn endpoint(axum::extract::State(state): axum::extract::State<crate::SharedState>) -> impl axum::response::IntoResponse {
    let snap = Snapshot {
        usage_queue_depth: state.usage.queue_depth() as u64,
        usage_dropped: state.usage.dropped(),
        usage_recorded: state.usage.recorded(),
        usage_write_errors: state.usage.write_errors(),
        store_queries: state.store.query_count(),
    };
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(snap))
}

fn surface(path: &str) -> &'static str {
    let rest = path.strip_prefix("/api/v1").or_else(|| path.strip_prefix("/v1"));
    match rest {
        Some(r) if ["/chat/completions", "/embeddings", "/messages", "/models"].iter().any(|p| r.starts_with(p)) => "inference",
        Some(_) if path.starts_with("/api/v1") => "management",
        _ => "other",
    }
}

/// Middleware: counts every response by surface and status.
pub async fn track(
    axum::extract::State(state): axum::extract::State<crate::SharedState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let surface = surface(req.uri().path());
    let resp = next.run(req).await;
    state.metrics.observe_http(surface, resp.status().as_u16());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::AttemptRecord;

    fn rec() -> GenerationRecord {
        GenerationRecord {
            id: "gen-1".into(),
            workspace_id: "ws".into(),
            api_key_hash: "h".into(),
            user: None,
            requested_model: "openai/gpt-4o-mini".into(),
            model: Some("openai/gpt-4o-mini".into()),
            provider: Some("openai".into()),
            credential_id: Some("cred-2".into()),
            is_byok: true,
            streamed: false,
            status: 200,
            usage: Some(keyway_core::Usage { prompt_tokens: 3, completion_tokens: 5, ..Default::default() }),
            latency_ms: 30,
            ttft_ms: None,
            attempts: vec![
                AttemptRecord { provider: "openai".into(), model: "m".into(), credential_id: "cred-1".into(), status: 429, error: Some("rate_limited".into()), message: None, latency_ms: 10 },
                AttemptRecord { provider: "openai".into(), model: "m".into(), credential_id: "cred-2".into(), status: 200, error: None, message: None, latency_ms: 15 },
            ],
            finish_reason: None,
            app_referer: None,
            app_title: None,
            created_at_ms: 0,
            cost_micros: 1234,
            fee_micros: 0,
        }
    }

    #[test]
    fn a_request_with_a_fallback_is_counted_everywhere() {
        let m = Metrics::new();
        m.observe(&rec());
        let text = m.render(Snapshot { usage_queue_depth: 2, store_queries: 9, ..Default::default() });
        for needle in [
            "keyway_requests_total{provider=\"openai\",status=\"200\",streamed=\"false\"} 1",
            "keyway_fallbacks_total{from_provider=\"openai\",to_provider=\"openai\"} 1",
            "keyway_attempts_total{provider=\"openai\",credential=\"cred-1\",outcome=\"rate_limited\"} 1",
            "keyway_cooldowns_total{provider=\"openai\",credential=\"cred-1\",status=\"429\"} 1",
            "keyway_cost_micros_total{provider=\"openai\",byok=\"true\"} 1234",
            "keyway_tokens_total{provider=\"openai\",model=\"openai/gpt-4o-mini\",kind=\"completion\"} 5",
            "keyway_usage_queue_depth 2",
            "keyway_store_queries_total 9",
            "keyway_gateway_overhead_seconds_bucket",
            "keyway_upstream_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn the_grafana_dashboard_only_uses_metrics_that_exist() {
        let m = Metrics::new();
        m.observe(&GenerationRecord { streamed: true, ttft_ms: Some(5), ..rec() });
        m.observe_http("management", 500);
        let text = m.render(Snapshot::default());
        let dash = include_str!("../../../docs/grafana-keyway.json");
        let mut names: Vec<&str> = dash
            .match_indices("keyway_")
            .map(|(i, _)| {
                let rest = &dash[i..];
                let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|n| n.len() > "keyway_".len())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 10, "{names:?}");
        for n in names {
            let base = n.trim_end_matches("_bucket");
            assert!(text.contains(base), "the dashboard uses {n}, which /metrics does not export");
        }
    }

    #[test]
    fn surfaces() {
        assert_eq!(surface("/v1/chat/completions"), "inference");
        assert_eq!(surface("/api/v1/messages"), "inference");
        assert_eq!(surface("/api/v1/byok/x"), "management");
        assert_eq!(surface("/metrics"), "other");
    }

    #[test]
    fn two_gateways_keep_separate_numbers() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.observe(&rec());
        assert!(a.render(Snapshot::default()).contains("keyway_requests_total"));
        assert!(!b.render(Snapshot::default()).contains("keyway_requests_total"));
    }
}
