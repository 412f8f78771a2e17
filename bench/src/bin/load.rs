//! `keyway-load`: a small HTTP/1.1 load generator (hyper client, keep-alive connections) that
//! counts status codes itself (only 200 is a success) and records latencies in HDR histograms.
//!
//! Modes:
//! - `closed`: `--connections` loops, each sending its next request as soon as the previous
//!   answer is read (maximum throughput).
//! - `open`: requests scheduled at fixed intervals from the start (`--rate` per second). A pacer
//!   thread releases each request at its scheduled time to whichever connection is free; latency
//!   is measured from the *scheduled* time, so a slow answer that delays later requests shows up
//!   in their latency instead of being hidden (no coordinated omission).
//! - `stream`: closed loop over streaming requests; time to first byte, the gap between
//!   consecutive SSE events (events that arrive batched in one read show up as ~0 gaps), and
//!   time to last byte.
//! - `hold`: opens `--connections` streams, prints `{"event":"ready",...}` once they are open,
//!   holds them `--duration` seconds, then closes them.
//!
//! Every loop is bounded in time (`--warmup + --duration`, plus one `--timeout-ms` to drain)
//! and, optionally, in count (`--max-requests`). Prints one JSON object on stdout at the end.
#![allow(clippy::print_stdout)]

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "keyway-load", about = "Closed- and open-loop HTTP/1.1 load generator with HDR histograms")]
struct Args {
    /// `http://IP:PORT/path`. `--mode open` takes it more than once (with a `--key` and a
    /// `--body` each): the targets are then loaded interleaved, each at `--rate`, request i of
    /// the schedule going to target i mod n, so that all of them meet the machine in the same
    /// state and a stall of the host shows on every side alike. One report per target.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// Bearer token (one per `--url`).
    #[arg(long)]
    key: Vec<String>,
    /// The JSON body to POST (one per `--url`).
    #[arg(long, required = true)]
    body: Vec<String>,
    /// closed | open | stream | hold
    #[arg(long, default_value = "closed")]
    mode: String,
    /// Keep-alive connections (concurrency).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (not recorded).
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// A request without a full answer after this long counts as a timeout.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Stop after this many requests in total (warm-up included).
    #[arg(long)]
    max_requests: Option<u64>,
}

struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
    auth: String,
    body: Bytes,
    stream: bool,
    timeout: Duration,
}

fn parse_targets(a: &Args) -> anyhow::Result<Vec<Arc<Target>>> {
    if a.body.len() != a.url.len() || a.key.len() > a.url.len() {
        bail!("give one --body (and at most one --key) per --url");
    }
    if a.url.len() > 1 && a.mode != "open" {
        bail!("several --url are for --mode open only");
    }
    (0..a.url.len()).map(|i| parse_target(&a.url[i], a.key.get(i).map(String::as_str).unwrap_or(""), &a.body[i], a.timeout_ms).map(Arc::new)).collect()
}

fn parse_target(url: &str, key: &str, body_text: &str, timeout_ms: u64) -> anyhow::Result<Target> {
    let rest = url.strip_prefix("http://").context("--url must start with http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = host.parse().context("--url host must be IP:PORT")?;
    let body: Value = serde_json::from_str(body_text).context("--body must be JSON")?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    Ok(Target {
        addr,
        host: host.to_owned(),
        path: path.to_owned(),
        auth: format!("Bearer {key}"),
        body: Bytes::from(body_text.to_owned()),
        stream,
        timeout: Duration::from_millis(timeout_ms),
    })
}

#[allow(clippy::expect_used)] // constant bounds that hdrhistogram accepts
fn hist() -> Histogram<u64> {
    // Nanoseconds, 1 ns .. 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid constant histogram bounds")
}

fn ns(d: Duration) -> u64 {
    (d.as_nanos() as u64).max(1)
}

struct Stats {
    latency: Histogram<u64>,
    /// Open loop: from the scheduled time to the moment the request was handed to a connection.
    start_lag: Histogram<u64>,
    ttfb: Histogram<u64>,
    gap: Histogram<u64>,
    status: BTreeMap<u16, u64>,
    errors: u64,
    timeouts: u64,
    unsent: u64,
    events: u64,
    streams: u64,
    sent: u64,
}

impl Stats {
    fn new() -> Self {
        Self {
            latency: hist(),
            start_lag: hist(),
            ttfb: hist(),
            gap: hist(),
            status: BTreeMap::new(),
            errors: 0,
            timeouts: 0,
            unsent: 0,
            events: 0,
            streams: 0,
            sent: 0,
        }
    }

    fn merge(&mut self, o: Stats) {
        let _ = self.latency.add(&o.latency);
        let _ = self.start_lag.add(&o.start_lag);
        let _ = self.ttfb.add(&o.ttfb);
        let _ = self.gap.add(&o.gap);
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.unsent += o.unsent;
        self.events += o.events;
        self.streams += o.streams;
        self.sent += o.sent;
    }
}

fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    let us = |v: u64| (v as f64 / 1000.0 * 10.0).round() / 10.0;
    json!({
        "count": h.len(),
        "mean_us": (h.mean() / 100.0).round() / 10.0,
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "min_us": us(h.min()),
    })
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(t.addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(t: &Target) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::post(t.path.as_str())
        .header(http::header::HOST, t.host.as_str())
        .header(http::header::AUTHORIZATION, t.auth.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(t.body.clone()))?)
}

/// What one exchange produced, timed from `t_start` (the scheduled time in open loop).
struct Exchange {
    status: u16,
}

/// Sends one request and reads the whole answer; stream timings go into `st` when `record`.
async fn exchange(s: &mut Sender, t: &Target, t_send: Instant, st: &mut Stats, record: bool) -> anyhow::Result<Exchange> {
    s.ready().await?;
    let resp = s.send_request(request(t)?).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    if !t.stream || status != 200 {
        body.collect().await?;
        return Ok(Exchange { status });
    }
    let mut index = 0u64;
    let mut prev: Option<Instant> = None;
    let mut last_byte = 0u8;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else { continue };
        let now = Instant::now();
        // Events end with a blank line; count the "\n\n" separators, also across frames.
        let mut n = 0u64;
        let mut p = last_byte;
        for &b in data.iter() {
            if b == b'\n' && p == b'\n' {
                n += 1;
            }
            p = b;
        }
        last_byte = p;
        for _ in 0..n {
            if record {
                if index == 0 {
                    let _ = st.ttfb.record(ns(now - t_send));
                } else if index >= 2 {
                    // The upstream sends the role and first content chunk back to back; from
                    // then on each event is due one chunk delay after the previous one.
                    if let Some(p) = prev {
                        let _ = st.gap.record(ns(now - p));
                    }
                }
                st.events += 1;
            }
            prev = Some(now);
            index += 1;
        }
    }
    if record {
        st.streams += 1;
    }
    Ok(Exchange { status })
}

/// One measured request on a (re)connected sender: classifies the outcome into `st`.
async fn run_one(sender: &mut Option<Sender>, t: &Target, t_start: Instant, st: &mut Stats, record: bool) {
    if sender.is_none() {
        match tokio::time::timeout(t.timeout, connect(t)).await {
            Ok(Ok(s)) => *sender = Some(s),
            Ok(Err(_)) | Err(_) => {
                if record {
                    st.errors += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                return;
            }
        }
    }
    let Some(s) = sender.as_mut() else { return };
    if record {
        st.sent += 1;
        let _ = st.start_lag.record(ns(Instant::now().saturating_duration_since(t_start)));
    }
    let mut scratch = Stats::new();
    let out = tokio::time::timeout(t.timeout, exchange(s, t, Instant::now(), &mut scratch, record)).await;
    let done = Instant::now();
    if record {
        st.merge(scratch);
    }
    match out {
        Ok(Ok(ex)) => {
            if record {
                *st.status.entry(ex.status).or_default() += 1;
                let _ = st.latency.record(ns(done - t_start));
            }
        }
        Ok(Err(_)) => {
            if record {
                st.errors += 1;
            }
            *sender = None;
        }
        Err(_) => {
            if record {
                st.timeouts += 1;
            }
            *sender = None;
        }
    }
}

fn budget(max: &Option<Arc<AtomicU64>>) -> bool {
    match max {
        None => true,
        Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
    }
}

async fn closed(t: Arc<Target>, a: &Args) -> (Stats, Duration) {
    let start = Instant::now();
    let record_from = start + Duration::from_secs_f64(a.warmup);
    let deadline = record_from + Duration::from_secs_f64(a.duration);
    let max = a.max_requests.map(|m| Arc::new(AtomicU64::new(m)));
    let mut tasks = Vec::new();
    for _ in 0..a.connections {
        let t = t.clone();
        let max = max.clone();
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new();
            let mut sender = None;
            while Instant::now() < deadline && budget(&max) {
                let t0 = Instant::now();
                run_one(&mut sender, &t, t0, &mut st, t0 >= record_from).await;
            }
            st
        }));
    }
    let mut all = Stats::new();
    for task in tasks {
        if let Ok(st) = task.await {
            all.merge(st);
        }
    }
    (all, Instant::now().saturating_duration_since(record_from))
}

/// Lets the pacer thread sleep with microsecond precision (the default timer slack is 50 µs).
fn tighten_timer_slack() {
    let _ = std::fs::write("/proc/thread-self/timerslack_ns", "1");
}

/// Open loop over one target or several interleaved (see `Args::url`): one `Stats` per target.
async fn open(targets: Vec<Arc<Target>>, a: &Args) -> (Vec<Stats>, Duration) {
    let n = targets.len().max(1);
    let start = Instant::now() + Duration::from_millis(50);
    let record_from = start + Duration::from_secs_f64(a.warmup);
    let total_secs = a.warmup + a.duration;
    let mut total = (a.rate * total_secs).round() as u64 * n as u64;
    if let Some(m) = a.max_requests {
        total = total.min(m);
    }
    let interval = 1.0 / (a.rate.max(0.001) * n as f64);
    let timeout = targets.iter().map(|t| t.timeout).max().unwrap_or_default();
    // Past this, stop sending: whatever is still queued is reported as `unsent`.
    let hard_stop = start + Duration::from_secs_f64(total_secs) + timeout + Duration::from_secs(2);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| tokio::sync::mpsc::unbounded_channel::<Instant>()).unzip();
    let pacer = std::thread::spawn(move || {
        tighten_timer_slack();
        for i in 0..total {
            let at = start + Duration::from_secs_f64(i as f64 * interval);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if txs[(i % n as u64) as usize].send(at).is_err() {
                return;
            }
        }
    });
    let mut per_target = Vec::new();
    for (t, rx) in targets.iter().zip(rxs) {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        per_target.push(open_connections(t.clone(), rx, a.connections, hard_stop, record_from));
    }
    let mut out = Vec::new();
    for tasks in per_target {
        let mut all = Stats::new();
        for task in tasks {
            if let Ok(st) = task.await {
                all.merge(st);
            }
        }
        out.push(all);
    }
    let _ = pacer.join();
    // Throughput over the scheduled window: the rate actually served.
    (out, Duration::from_secs_f64(a.duration))
}

type OpenTask = tokio::task::JoinHandle<Stats>;

/// `connections` tasks taking scheduled send times from `rx` for target `t`.
fn open_connections(t: Arc<Target>, rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>>, connections: usize, hard_stop: Instant, record_from: Instant) -> Vec<OpenTask> {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let t = t.clone();
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new();
            let mut sender = None;
            // Connect before the first scheduled request so that set-up is not timed.
            if let Ok(s) = connect(&t).await {
                sender = Some(s);
            }
            loop {
                let next = rx.lock().await.recv().await;
                let Some(at) = next else { break };
                if Instant::now() > hard_stop {
                    st.unsent += 1;
                    continue;
                }
                run_one(&mut sender, &t, at, &mut st, at >= record_from).await;
            }
            st
        }));
    }
    tasks
}

/// Opens `--connections` streams, holds them, reports how many stayed open.
async fn hold(t: Arc<Target>, a: &Args) -> anyhow::Result<Value> {
    let release = Arc::new(tokio::sync::Notify::new());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let connecting = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = Vec::new();
    for _ in 0..a.connections {
        let t = t.clone();
        let release = release.clone();
        let ready_tx = ready_tx.clone();
        let connecting = connecting.clone();
        tasks.push(tokio::spawn(async move {
            let notified = release.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let opened = async {
                let permit = connecting.acquire().await.ok();
                let mut s = tokio::time::timeout(t.timeout, connect(&t)).await.ok()?.ok()?;
                s.ready().await.ok()?;
                let resp = tokio::time::timeout(t.timeout, s.send_request(request(&t).ok()?)).await.ok()?.ok()?;
                if resp.status() != 200 {
                    return None;
                }
                let mut body = resp.into_body();
                // The first frame proves the stream flows end to end.
                tokio::time::timeout(t.timeout, body.frame()).await.ok()??.ok()?;
                drop(permit);
                Some((s, body))
            }
            .await;
            let Some((_s, mut body)) = opened else {
                let _ = ready_tx.send(false);
                return false;
            };
            let _ = ready_tx.send(true);
            // Still open when released: the stream must not have ended or failed meanwhile.
            loop {
                tokio::select! {
                    _ = &mut notified => return true,
                    f = body.frame() => match f {
                        Some(Ok(_)) => continue,
                        _ => return false,
                    },
                }
            }
        }));
    }
    drop(ready_tx);
    let setup_start = Instant::now();
    let (mut ok, mut failed) = (0u64, 0u64);
    // Each task reports once (and keeps its sender while it holds the stream).
    for _ in 0..a.connections {
        let Some(r) = ready_rx.recv().await else { break };
        if r {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    let setup = setup_start.elapsed();
    println!("{}", json!({"event": "ready", "open": ok, "failed": failed, "setup_s": setup.as_secs_f64()}));
    std::io::stdout().flush()?;
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    release.notify_waiters();
    let mut still_open = 0u64;
    for task in tasks {
        if let Ok(true) = task.await {
            still_open += 1;
        }
    }
    Ok(json!({"mode": "hold", "requested": a.connections, "opened": ok, "failed": failed, "still_open_at_end": still_open,
              "setup_s": setup.as_secs_f64(), "held_s": a.duration}))
}

fn report(mode: &str, a: &Args, st: &Stats, elapsed: Duration) -> Value {
    let ok = st.status.get(&200).copied().unwrap_or(0);
    let answered: u64 = st.status.values().sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut v = json!({
        "mode": mode,
        "connections": a.connections,
        "duration_s": (secs * 1000.0).round() / 1000.0,
        "sent": st.sent,
        "answered": answered,
        "ok": ok,
        "status": st.status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "errors": st.errors,
        "timeouts": st.timeouts,
        "unsent": st.unsent,
        "throughput_rps": ((ok as f64 / secs) * 10.0).round() / 10.0,
        "latency": summary(&st.latency),
    });
    if mode == "open" {
        v["rate"] = json!(a.rate);
        v["start_lag"] = summary(&st.start_lag);
    }
    if mode == "stream" {
        v["ttfb"] = summary(&st.ttfb);
        v["gap"] = summary(&st.gap);
        v["streams"] = json!(st.streams);
        v["events_per_stream"] = json!(if st.streams > 0 { st.events as f64 / st.streams as f64 } else { 0.0 });
    }
    v
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut targets = parse_targets(&a)?;
    let t = targets.first().cloned().context("no --url")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let out = rt.block_on(async {
        match a.mode.as_str() {
            "closed" => {
                let (st, el) = closed(t, &a).await;
                Ok(report("closed", &a, &st, el))
            }
            "stream" => {
                if !t.stream {
                    bail!("--mode stream needs \"stream\": true in --body");
                }
                let (st, el) = closed(t, &a).await;
                Ok(report("stream", &a, &st, el))
            }
            "open" if targets.len() == 1 => {
                let (st, el) = open(std::mem::take(&mut targets), &a).await;
                Ok(report("open", &a, &st[0], el))
            }
            "open" => {
                let (st, el) = open(std::mem::take(&mut targets), &a).await;
                Ok(json!({"mode": "open", "interleaved": true, "targets": st.iter().map(|s| report("open", &a, s, el)).collect::<Vec<_>>()}))
            }
            "hold" => hold(t, &a).await,
            other => bail!("unknown mode `{other}`"),
        }
    })?;
    println!("{out}");
    Ok(())
}
