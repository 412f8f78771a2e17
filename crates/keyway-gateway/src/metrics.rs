//! `GET /metrics` in Prometheus text, and the one log line per request.
//!
//! Everything about a request is known once its [`GenerationRecord`] is handed to the usage
//! recorder, streamed or not, served or failed, so that is where [`Metrics::observe`] runs: one
//! hook, no timing code spread through the attempt loop. Labels carry provider slugs, model
//! slugs and credential *ids* (`system` for operator keys) — never a secret, never a key hash.
//!
//! The recorder belongs to the [`AppState`](crate::AppState), not to a process-global: several
//! gateways in one test process keep separate numbers.

use crate::health::HealthBoard;
use crate::record::GenerationRecord;
use keyway_core::route::{CredentialHealth, HealthKey};
use metrics::{counter, gauge, histogram, with_local_recorder, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use foldhash::HashMap;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

/// Seconds: from sub-millisecond gateway overhead to multi-minute streams.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Every credential whose health this node has recorded, by (provider, credential id): the
    /// scrape reads the health board for each to fill the cooling/unhealthy gauges.
    health_keys: Mutex<BTreeMap<(String, String), OwnedHealthKey>>,
    requests: HandleCache<(String, String, u16, bool, bool), RequestHandles>,
    attempts: HandleCache<(String, String, String, u16), AttemptHandles>,
    http: HandleCache<(&'static str, u16), Counter>,
    overhead: OnceLock<Histogram>,
    attempts_per_request: OnceLock<Histogram>,
    /// The model names a `model` label may carry; any other counts as `other`.
    pub known_models: Arc<KnownModels>,
    /// `[metrics] bearer_token`, resolved: a scrape must present it.
    token: Option<secrecy::SecretString>,
    upkeeps: std::sync::atomic::AtomicU64,
}

/// Model names that may appear as a metric label: the catalog's, price overrides', and those
/// of configured model mappings. The `model` of a request comes from the caller; without this
/// bound 3,000 made-up names made `/metrics` 25 MB.
#[derive(Debug, Default)]
pub struct KnownModels {
    names: RwLock<std::collections::HashSet<String>>,
}

/// Names added past the catalog stop here (mappings are set by management keys; still bounded).
const MAX_KNOWN_MODELS: usize = 20_000;

impl KnownModels {
    pub fn add<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut set = self.names.write().unwrap_or_else(|p| p.into_inner());
        for n in names {
            if set.len() >= MAX_KNOWN_MODELS {
                break;
            }
            if !set.contains(n) {
                set.insert(n.to_owned());
            }
        }
    }

    /// `name` when known, else `other`.
    pub fn label<'a>(&self, name: &'a str) -> &'a str {
        if name.is_empty() || self.names.read().unwrap_or_else(|p| p.into_inner()).contains(name) {
            name
        } else {
            "other"
        }
    }
}

/// The handles of one request label set. Building the labels and looking them up in the
/// registry on every request cost ~14k instructions (callgrind); a lookup here, by a hash of
/// borrowed fields, costs a fraction. Series are registered when first used, as the macros did.
struct RequestHandles {
    requests: Counter,
    duration: Histogram,
    upstream: Histogram,
    ttft: OnceLock<Histogram>,
    /// prompt, completion, cached.
    tokens: [OnceLock<Counter>; 3],
    cost: OnceLock<Counter>,
    fee: OnceLock<Counter>,
}

struct AttemptHandles {
    total: Counter,
    duration: Histogram,
}

/// Metric handles by label set, looked up without building an owned key: by hash, then by
/// comparing the borrowed fields with each entry of that hash.
struct HandleCache<K, H> {
    map: RwLock<HashMap<u64, Bucket<K, H>>>,
}

type Bucket<K, H> = Vec<(K, Arc<H>)>;

impl<K, H> Default for HandleCache<K, H> {
    fn default() -> Self {
        Self { map: RwLock::default() }
    }
}

/// Label sets kept at most; past it (a runaway label) handles are built per call, uncached.
const MAX_CACHED_LABEL_SETS: usize = 4096;

impl<K, H> HandleCache<K, H> {
    fn get(&self, hash: u64, matches: impl Fn(&K) -> bool, make: impl FnOnce() -> (K, H)) -> Arc<H> {
        if let Some(h) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(&hash).and_then(|v| v.iter().find(|(k, _)| matches(k))) {
            return h.1.clone();
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(&hash).and_then(|v| v.iter().find(|(k, _)| matches(k))) {
            return h.1.clone();
        }
        let (k, h) = make();
        let h = Arc::new(h);
        if map.len() < MAX_CACHED_LABEL_SETS {
            map.entry(hash).or_default().push((k, h.clone()));
        }
        h
    }
}

/// Label sets hashed with a per-process random seed (SipHash cost ~1k instructions a request
/// across the lookups; the buckets still compare every field, so a collision only shares a bucket).
fn hash_of(v: &impl Hash) -> u64 {
    use std::hash::BuildHasher as _;
    static SEED: std::sync::LazyLock<foldhash::fast::RandomState> = std::sync::LazyLock::new(foldhash::fast::RandomState::default);
    SEED.hash_one(v)
}

#[derive(Debug, Clone)]
enum OwnedHealthKey {
    Byok(String),
    System(usize),
}

impl OwnedHealthKey {
    fn of(k: HealthKey<'_>) -> Self {
        match k {
            HealthKey::Byok(id) => Self::Byok(id.to_owned()),
            HealthKey::System(i) => Self::System(i),
        }
    }
    fn key(&self) -> HealthKey<'_> {
        match self {
            Self::Byok(id) => HealthKey::Byok(id),
            Self::System(i) => HealthKey::System(*i),
        }
    }
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
    /// Store errors on the request path (key lookups, credential loads).
    pub store_errors: u64,
    /// Credential rows skipped because they could not be read.
    pub credentials_unreadable: u64,
    /// Requests admitted without the shared counters (Redis unreachable).
    pub shared_unavailable: u64,
    /// Whether Redis answers; `None` without `redis_url`.
    pub shared_up: Option<bool>,
}

/// The process allocator's own figures (`allocated`, `resident`, `retained`, ...), read at
/// scrape time as `keyway_allocator_bytes{kind}`. The binary knows its allocator; this crate
/// doesn't, so the binary installs the reader (see `set_memory_reader`).
static MEMORY: OnceLock<MemoryReader> = OnceLock::new();

/// Reads `(kind, bytes)` pairs from the process allocator.
pub type MemoryReader = fn() -> Vec<(&'static str, u64)>;

/// Installs the reader behind `keyway_allocator_bytes` (once; later calls are ignored).
pub fn set_memory_reader(read: MemoryReader) {
    let _ = MEMORY.set(read);
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
        Self {
            recorder,
            handle,
            health_keys: Mutex::default(),
            requests: HandleCache::default(),
            attempts: HandleCache::default(),
            http: HandleCache::default(),
            overhead: OnceLock::new(),
            attempts_per_request: OnceLock::new(),
            known_models: Arc::default(),
            token: None,
            upkeeps: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Folds the histograms' recorded samples into their buckets every `every`, as a scrape
    /// does. The exporter keeps every sample until then: a gateway nobody scrapes grew by
    /// ~40 bytes a request (five histograms), without bound (bench/README.md, 2026-12-08).
    pub fn spawn_upkeep(self: &Arc<Self>, every: std::time::Duration) {
        crate::periodic::every(self, every, |m| async move {
            m.handle.run_upkeep();
            m.upkeeps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
    }

    /// Upkeeps the background task ran (tests).
    pub fn upkeeps(&self) -> u64 {
        self.upkeeps.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Scrapes must send `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: Option<secrecy::SecretString>) -> Self {
        self.token = token;
        self
    }

    /// Whether a scrape with these headers may read the metrics.
    fn allowed(&self, headers: &axum::http::HeaderMap) -> bool {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        let Some(token) = &self.token else { return true };
        let given = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes()))
    }

    /// Called with a credential's health before and after the attempt loop recorded a failure
    /// (a success can't start a cooldown, and this keeps the hot path free of it):
    /// counts the transitions the health board actually made (a cooldown starting, a key turning
    /// unhealthy), not the statuses that might cause one.
    pub fn health_changed(&self, provider: &str, credential: &str, key: HealthKey<'_>, before: Option<CredentialHealth>, after: &CredentialHealth) {
        let now = SystemTime::now();
        let before = before.unwrap_or_default();
        // A 429 while already cooling extends the cooldown; that is not a new one.
        let started_cooling = after.is_cooling(now) && !before.is_cooling(now);
        let turned_unhealthy = after.unhealthy && !before.unhealthy;
        let parked = after.is_parked(now) && !before.is_parked(now);
        if parked {
            with_local_recorder(&self.recorder, || {
                counter!("keyway_credentials_quota_exhausted_total", "provider" => provider.to_owned(), "credential" => credential.to_owned()).increment(1);
            });
        }
        if started_cooling || turned_unhealthy {
            let reason = after.last_failure.map(|(_, k)| k.as_str()).unwrap_or("unknown");
            with_local_recorder(&self.recorder, || {
                if started_cooling {
                    counter!("keyway_cooldowns_total", "provider" => provider.to_owned(), "credential" => credential.to_owned(), "reason" => reason).increment(1);
                }
                if turned_unhealthy {
                    counter!("keyway_credentials_marked_unhealthy_total", "provider" => provider.to_owned(), "credential" => credential.to_owned()).increment(1);
                }
            });
        }
        let mut keys = self.health_keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.entry((provider.to_owned(), credential.to_owned())).or_insert_with(|| OwnedHealthKey::of(key));
    }

    /// Sets `keyway_credentials_cooling` and `keyway_credentials_unhealthy` (per provider) from
    /// the health board as it is now, so a key reset over the API or a cooldown that ran out shows at once.
    pub fn read_health(&self, board: &HealthBoard) {
        let now = SystemTime::now();
        let mut by_provider: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for ((provider, _), key) in self.health_keys.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let h = board.get(key.key()).unwrap_or_default();
            let e = by_provider.entry(provider.clone()).or_default();
            e.0 += u64::from(h.is_cooling(now));
            e.1 += u64::from(h.unhealthy);
            e.2 += u64::from(h.is_parked(now));
        }
        with_local_recorder(&self.recorder, || {
            for (provider, (cooling, unhealthy, parked)) in by_provider {
                gauge!("keyway_credentials_cooling", "provider" => provider.clone()).set(cooling as f64);
                gauge!("keyway_credentials_unhealthy", "provider" => provider.clone()).set(unhealthy as f64);
                gauge!("keyway_credentials_quota_exhausted", "provider" => provider).set(parked as f64);
            }
        });
    }

    /// Counts and times one finished request, and writes its log line.
    pub fn observe(&self, r: &GenerationRecord) {
        let provider = r.provider.as_deref().unwrap_or("none");
        let model = self.known_models.label(r.model.as_deref().unwrap_or_default());
        let upstream_ms: u64 = r.attempts.iter().map(|a| a.latency_ms).sum();
        // Time Keyway itself spent before the answer started flowing: the whole request for a
        // plain answer, up to the first token for a stream; minus the time spent waiting upstream.
        let until_answer = if r.streamed { r.ttft_ms.unwrap_or(r.latency_ms) } else { r.latency_ms };
        let overhead_ms = until_answer.saturating_sub(upstream_ms);
        let fell_back = r.status == 200 && r.attempts.len() > 1;
        let rec = &self.recorder;
        let key = (provider, model, r.status, r.streamed, r.is_byok);
        let h = self.requests.get(hash_of(&key), |k| (k.0.as_str(), k.1.as_str(), k.2, k.3, k.4) == key, || {
            let handles = with_local_recorder(rec, || RequestHandles {
                requests: counter!("keyway_requests_total", "provider" => provider.to_owned(), "status" => r.status.to_string(), "streamed" => r.streamed.to_string()),
                duration: histogram!("keyway_request_duration_seconds", "provider" => provider.to_owned()),
                upstream: histogram!("keyway_upstream_duration_seconds", "provider" => provider.to_owned()),
                ttft: Default::default(),
                tokens: Default::default(),
                cost: Default::default(),
                fee: Default::default(),
            });
            ((provider.to_owned(), model.to_owned(), r.status, r.streamed, r.is_byok), handles)
        });
        h.requests.increment(1);
        h.duration.record(secs(r.latency_ms));
        h.upstream.record(secs(upstream_ms));
        self.overhead.get_or_init(|| with_local_recorder(rec, || histogram!("keyway_gateway_overhead_seconds"))).record(secs(overhead_ms));
        if let Some(t) = r.ttft_ms {
            h.ttft.get_or_init(|| with_local_recorder(rec, || histogram!("keyway_time_to_first_token_seconds", "provider" => provider.to_owned()))).record(secs(t));
        }
        self.attempts_per_request
            .get_or_init(|| with_local_recorder(rec, || histogram!("keyway_attempts_per_request")))
            .record(r.attempts.len() as f64);
        if let Some(u) = &r.usage {
            let tokens = |i: usize, kind: &'static str| {
                h.tokens[i].get_or_init(|| {
                    with_local_recorder(rec, || counter!("keyway_tokens_total", "provider" => provider.to_owned(), "model" => model.to_owned(), "kind" => kind))
                })
            };
            tokens(0, "prompt").increment(u.prompt_tokens);
            tokens(1, "completion").increment(u.completion_tokens);
            if u.cached_tokens > 0 {
                tokens(2, "cached").increment(u.cached_tokens);
            }
        }
        if r.cost_micros > 0 {
            let byok = if r.is_byok { "true" } else { "false" };
            h.cost
                .get_or_init(|| with_local_recorder(rec, || counter!("keyway_cost_micros_total", "provider" => provider.to_owned(), "byok" => byok)))
                .increment(r.cost_micros);
        }
        if r.fee_micros > 0 {
            h.fee.get_or_init(|| with_local_recorder(rec, || counter!("keyway_fee_micros_total", "provider" => provider.to_owned()))).increment(r.fee_micros);
        }
        if fell_back {
            with_local_recorder(rec, || {
                // From the credential tried first to the one that served (ids, never secrets).
                let (first, first_cred) = r.attempts.first().map(|a| (a.provider.clone(), a.credential_id.clone())).unwrap_or_default();
                let to_cred = r.credential_id.clone().unwrap_or_default();
                counter!("keyway_fallbacks_total", "from_provider" => first, "from_credential" => first_cred, "to_provider" => provider.to_owned(), "to_credential" => to_cred)
                    .increment(1);
            });
        }
        for a in &r.attempts {
            let outcome = if a.status == 200 { "ok" } else { a.error.as_deref().unwrap_or("") };
            let key = (a.provider.as_str(), a.credential_id.as_str(), outcome, a.status);
            let h = self.attempts.get(hash_of(&key), |k| (k.0.as_str(), k.1.as_str(), k.2.as_str(), k.3) == key, || {
                let shown = if outcome.is_empty() { a.status.to_string() } else { outcome.to_owned() };
                let handles = with_local_recorder(rec, || AttemptHandles {
                    total: counter!("keyway_attempts_total", "provider" => a.provider.clone(), "credential" => a.credential_id.clone(), "outcome" => shown),
                    duration: histogram!("keyway_attempt_duration_seconds", "provider" => a.provider.clone()),
                });
                ((a.provider.clone(), a.credential_id.clone(), outcome.to_owned(), a.status), handles)
            });
            h.total.increment(1);
            h.duration.record(secs(a.latency_ms));
        }
        tracing::info!(
            target: "keyway::request",
            generation_id = %r.id,
            workspace_id = %r.workspace_id,
            model = %r.requested_model,
            served_model = r.model.as_deref().unwrap_or("-"),
            provider = provider,
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
        let rec = &self.recorder;
        let key = (surface, status);
        // A handle per (surface, status): building one formats the status and looks the label
        // set up in the registry, ~900 instructions of every response.
        self.http.get(hash_of(&key), |k| *k == key, || (key, with_local_recorder(rec, || counter!("keyway_http_responses_total", "surface" => surface, "status" => status.to_string())))).increment(1);
        // Inference 5xx are upstream trouble (counted per attempt); elsewhere a 500 is ours, mostly the store.
        if status >= 500 && surface != "inference" {
            with_local_recorder(rec, || counter!("keyway_internal_errors_total", "surface" => surface).increment(1));
        }
    }

    /// A failed `accept` (out of file descriptors and the like).
    pub fn accept_error(&self) {
        with_local_recorder(&self.recorder, || counter!("keyway_accept_errors_total").increment(1));
    }

    /// A connection past `[server] max_connections`, answered 503 or closed.
    pub fn connection_shed(&self) {
        with_local_recorder(&self.recorder, || counter!("keyway_connections_shed_total").increment(1));
    }

    /// Prometheus text, with the scrape-time gauges filled in.
    pub fn render(&self, s: Snapshot) -> String {
        with_local_recorder(&self.recorder, || {
            if let Some(read) = MEMORY.get() {
                for (kind, bytes) in read() {
                    gauge!("keyway_allocator_bytes", "kind" => kind).set(bytes as f64);
                }
            }
            gauge!("keyway_usage_queue_depth").set(s.usage_queue_depth as f64);
            // Counted elsewhere (atomics); exported as counters so that rate() reads them right.
            counter!("keyway_usage_dropped_total").absolute(s.usage_dropped);
            counter!("keyway_usage_recorded_total").absolute(s.usage_recorded);
            counter!("keyway_db_errors_total", "source" => "usage_writer").absolute(s.usage_write_errors);
            counter!("keyway_db_errors_total", "source" => "store").absolute(s.store_errors);
            counter!("keyway_store_queries_total").absolute(s.store_queries);
            counter!("keyway_credentials_unreadable_total").absolute(s.credentials_unreadable);
            if let Some(up) = s.shared_up {
                gauge!("keyway_shared_up").set(if up { 1.0 } else { 0.0 });
                counter!("keyway_shared_unavailable_total").absolute(s.shared_unavailable);
            }
        });
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// `GET /metrics`.
pub async fn endpoint(axum::extract::State(state): axum::extract::State<crate::SharedState>, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !state.metrics.allowed(&headers) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            "/metrics needs `Authorization: Bearer <[metrics] bearer_token>`\n",
        )
            .into_response();
    }
    let snap = Snapshot {
        usage_queue_depth: state.usage.queue_depth() as u64,
        usage_dropped: state.usage.dropped(),
        usage_recorded: state.usage.recorded(),
        usage_write_errors: state.usage.write_errors(),
        store_queries: state.store.query_count(),
        store_errors: state.store.error_count(),
        credentials_unreadable: state.store.unreadable_count(),
        shared_unavailable: state.cluster.unavailable_count(),
        shared_up: state.cluster.up(),
    };
    state.metrics.read_health(&state.health);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(snap)).into_response()
}

/// The router of a separate metrics address (`[metrics] listen`).
pub fn router(state: crate::SharedState) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(endpoint)).with_state(state)
}

fn surface(path: &str) -> &'static str {
    let rest = path.strip_prefix("/api/v1").or_else(|| path.strip_prefix("/v1"));
    match rest {
        Some(r) if ["/chat/completions", "/embeddings", "/messages", "/models", "/ai/"].iter().any(|p| r.starts_with(p)) => "inference",
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
    use crate::record::AttemptRecord;
    use keyway_core::route::Outcome;

    fn rec() -> GenerationRecord {
        GenerationRecord {
            model: Some("openai/gpt-4o-mini".into()),
            provider: Some("openai".into()),
            credential_id: Some("cred-2".into()),
            is_byok: true,
            usage: Some(keyway_core::Usage { prompt_tokens: 3, completion_tokens: 5, ..Default::default() }),
            latency_ms: 30,
            attempts: vec![
                AttemptRecord { provider: "openai".into(), model: "m".into(), credential_id: "cred-1".into(), status: 429, error: Some("rate_limited".into()), message: None, latency_ms: 10 },
                AttemptRecord { provider: "openai".into(), model: "m".into(), credential_id: "cred-2".into(), status: 200, error: None, message: None, latency_ms: 15 },
            ],
            cost_micros: 1234,
            ..GenerationRecord::for_test("gen-1", "ws")
        }
    }

    #[test]
    fn a_request_with_a_fallback_is_counted_everywhere() {
        let m = Metrics::new();
        m.known_models.add(["openai/gpt-4o-mini"]);
        m.observe(&rec());
        let text = m.render(Snapshot { usage_queue_depth: 2, store_queries: 9, store_errors: 4, ..Default::default() });
        for needle in [
            "keyway_requests_total{provider=\"openai\",status=\"200\",streamed=\"false\"} 1",
            "keyway_fallbacks_total{from_provider=\"openai\",from_credential=\"cred-1\",to_provider=\"openai\",to_credential=\"cred-2\"} 1",
            "keyway_attempts_total{provider=\"openai\",credential=\"cred-1\",outcome=\"rate_limited\"} 1",
            "keyway_db_errors_total{source=\"store\"} 4",
            "keyway_cost_micros_total{provider=\"openai\",byok=\"true\"} 1234",
            "keyway_tokens_total{provider=\"openai\",model=\"openai/gpt-4o-mini\",kind=\"completion\"} 5",
            "keyway_usage_queue_depth 2",
            "keyway_store_queries_total 9",
            "keyway_gateway_overhead_seconds_bucket",
            "keyway_upstream_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // A 429 in a record is not a cooldown: only the health board's transitions count.
        assert!(!text.contains("keyway_cooldowns_total"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn histograms_are_folded_without_a_scrape_and_the_task_ends_with_the_metrics() {
        let m = Arc::new(Metrics::new());
        m.spawn_upkeep(std::time::Duration::from_secs(5));
        m.observe(&rec());
        tokio::time::sleep(std::time::Duration::from_millis(11_000)).await;
        assert_eq!(m.upkeeps(), 2, "an upkeep every 5 s, none at the start");
        let text = m.render(Snapshot::default());
        assert!(text.contains("keyway_request_duration_seconds_count{provider=\"openai\"} 1"), "{text}");
        let weak = Arc::downgrade(&m);
        drop(m);
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        assert!(weak.upgrade().is_none(), "the task holds no strong reference");
    }

    /// Feeds the health board as the attempt loop does.
    fn fail(m: &Metrics, board: &HealthBoard, id: &str, outcome: Outcome) {
        let k = HealthKey::Byok(id);
        let before = board.get(k);
        let after = board.record(k, outcome);
        m.health_changed("openai", id, k, before, &after);
    }

    #[test]
    fn cooldowns_follow_the_health_board() {
        let (m, board) = (Metrics::new(), HealthBoard::default());
        let limited = Outcome::RateLimited { retry_after: Some(std::time::Duration::from_secs(60)) };
        fail(&m, &board, "cred-1", limited);
        // A second 429 while cooling extends the cooldown; it does not start another.
        fail(&m, &board, "cred-1", limited);
        fail(&m, &board, "cred-2", Outcome::UpstreamError);
        m.read_health(&board);
        let text = m.render(Snapshot::default());
        assert!(text.contains("keyway_cooldowns_total{provider=\"openai\",credential=\"cred-1\",reason=\"rate_limited\"} 1"), "{text}");
        assert!(!text.contains("credential=\"cred-2\""), "a 5xx cools nothing down: {text}");
        assert!(text.contains("keyway_credentials_cooling{provider=\"openai\"} 1"), "{text}");
        assert!(text.contains("keyway_credentials_unhealthy{provider=\"openai\"} 0"), "{text}");
        // Reset over the API (key replaced): the gauge reads the board, so it drops at once.
        board.reset("cred-1");
        m.read_health(&board);
        assert!(m.render(Snapshot::default()).contains("keyway_credentials_cooling{provider=\"openai\"} 0"));
    }

    #[test]
    fn the_grafana_dashboard_only_uses_metrics_that_exist() {
        let m = Metrics::new();
        m.observe(&GenerationRecord { streamed: true, ttft_ms: Some(5), ..rec() });
        m.observe_http("management", 500);
        let board = HealthBoard::default();
        fail(&m, &board, "cred-1", Outcome::RateLimited { retry_after: None });
        m.read_health(&board);
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
    fn model_names_outside_the_known_ones_count_as_other() {
        let m = Metrics::new();
        m.known_models.add(["openai/gpt-4o-mini"]);
        for i in 0..3000 {
            m.observe(&GenerationRecord { model: Some(format!("openai/made-up-{i}")), ..rec() });
        }
        m.observe(&rec());
        let text = m.render(Snapshot::default());
        assert!(!text.contains("made-up"), "a caller's model name became a label");
        assert!(text.contains("keyway_tokens_total{provider=\"openai\",model=\"other\",kind=\"prompt\"} 9000"), "{text}");
        assert!(text.contains("model=\"openai/gpt-4o-mini\""), "{text}");
        assert!(text.len() < 20_000, "/metrics grew to {} bytes", text.len());
    }

    #[test]
    fn surfaces() {
        assert_eq!(surface("/v1/chat/completions"), "inference");
        assert_eq!(surface("/api/v1/messages"), "inference");
        assert_eq!(surface("/v1/ai/language-model"), "inference");
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
