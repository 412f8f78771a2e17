//! `keyway-bench`: runs every scenario of issue 9 direct to the upstream and through Keyway in
//! the same run, and writes `bench/results/latest.{md,json}`.
//!
//! It starts `keyway-upstream` (lean mode), then `keyway serve` (release build) with a fresh data
//! dir and a bootstrap management key, and sets up the realistic BYOK path over the management
//! API: two stored, encrypted BYOK credentials plus a system credential (a route plan with three
//! candidates for `openai/gpt-4o-mini`), a Keyway key with limits, usage recording on (the
//! `usage` scenario starts a second gateway with `[usage] record = false` to measure its cost).
//! Load comes from `keyway-load` (open and closed loop). Processes are pinned with `taskset`
//! when there are cores to spare. See bench/README.md.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Parser, Clone)]
#[command(name = "keyway-bench", about = "Keyway benchmark scenarios, direct vs through Keyway")]
struct Args {
    /// Short runs (about two minutes in all).
    #[arg(long)]
    quick: bool,
    /// The keyway binary (default: `keyway` beside this binary).
    #[arg(long)]
    keyway: Option<PathBuf>,
    /// Where latest.md and latest.json go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Do not pin processes to cores (the same as `--pinning unpinned`).
    #[arg(long)]
    no_pin: bool,
    /// `pinned` (default; see "Pinning" in bench/README.md), `unpinned` (every process free on
    /// every core, as on an operator's shared box), or `both`: the closed loop, the fixed rate
    /// and streaming run pinned, then again unpinned on fresh processes, in one run.
    #[arg(long, default_value = "pinned")]
    pinning: String,
    /// A Redis server for the gateway (`redis_url`, a key prefix of this run's own): the limited
    /// key's limits and budgets are then also taken from the counters nodes share, as in a
    /// multi-node deployment (docs/deploy.md).
    #[arg(long)]
    redis: Option<String>,
    /// Only these scenarios (comma-separated: closed,open,stream,hold,overload,usage,litellm,compare,callgrind).
    #[arg(long)]
    only: Option<String>,
    /// Number of streams held open in the idle-streams scenario (default 5000).
    #[arg(long)]
    hold_streams: Option<usize>,
    /// Seconds the idle streams are held (default 30, 8 with --quick).
    #[arg(long)]
    hold_secs: Option<f64>,
    /// Run Keyway under this command, e.g. `valgrind --tool=callgrind --callgrind-out-file=/tmp/kw.cg`
    /// (with `--only callgrind`: instructions per request on the realistic path).
    #[arg(long)]
    wrap: Option<String>,
    /// Generation rows written into both gateways' databases before the `usage` scenario
    /// measures (copies of a real row, spread over the past month), so recording is measured
    /// on a database with a history, not only on an empty one.
    #[arg(long, default_value_t = 300_000)]
    usage_history: u64,
    /// Requests measured by the `callgrind` scenario.
    #[arg(long, default_value_t = 2000)]
    callgrind_requests: u64,
    /// Streams measured by the `callgrind` scenario after its requests, in a dump of their own
    /// (0: none). Each is the streaming scenario's stream: 11 events.
    #[arg(long, default_value_t = 0)]
    callgrind_streams: u64,
    /// Concurrent streams in the streaming scenario (default 16; 1 shows the path without
    /// other streams' chunks queued on the gateway's core).
    #[arg(long, default_value_t = 16)]
    stream_connections: usize,
    /// Another keyway binary (an older build, say) to measure against this one: the `compare`
    /// scenario starts a fresh gateway from each and runs the closed loop at 64 connections
    /// through them in alternating rounds, pairing each round's figures.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// The `litellm` executable of a venv (`bench/run --litellm` makes one): adds the LiteLLM
    /// reference scenario, LiteLLM's proxy in Keyway's place on the same upstream and core.
    #[arg(long)]
    litellm: Option<PathBuf>,
}

const MGMT: &str = "kw-mgmt-bench-bootstrap-key-0123456789abcdef";
const BYOK_1: &str = "sk-bench-byok-primary-0001";
const BYOK_2: &str = "sk-bench-byok-secondary-0002";
const SYSTEM: &str = "sk-bench-system-operator-0003";
/// LiteLLM's master key in the reference scenario (it refuses to start without one).
const LITELLM_KEY: &str = "sk-litellm-bench-master-0123456789abcdef0123456789abcdef";

/// Kills the processes it started (by their own handle) when dropped.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    /// SIGTERM first, so that a gateway under a `--wrap` profiler (massif, callgrind) exits
    /// cleanly and writes its profile; SIGKILL after 20 s.
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        for (_, c) in &mut self.0 {
            let t0 = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Clone)]
struct Pins {
    load: Option<String>,
    upstream: Option<String>,
    gateway: Option<String>,
    note: String,
}

fn pins(cores: usize, no_pin: bool) -> Pins {
    let none = |note: &str| Pins { load: None, upstream: None, gateway: None, note: note.into() };
    if no_pin || Command::new("taskset").arg("-V").output().is_err() {
        return none("not pinned");
    }
    match cores {
        0 | 1 => none("not pinned (1 core)"),
        2 => Pins {
            load: Some("0".into()),
            upstream: Some("0".into()),
            gateway: Some("1".into()),
            note: "2 cores: Keyway alone on core 1; load generator and upstream share core 0".into(),
        },
        _ => Pins {
            load: Some("0".into()),
            upstream: Some("1".into()),
            gateway: Some("2".into()),
            note: format!("{cores} cores: load generator on core 0, upstream on core 1, Keyway on core 2"),
        },
    }
}

fn command(pin: &Option<String>, program: &Path) -> Command {
    match pin {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

// ---------- /proc readings ----------

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of every thread, in seconds.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("odd /proc stat"))?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ticks / clk_tck())
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

// ---------- a tiny HTTP client for set-up ----------

async fn http(addr: SocketAddr, method: &str, path: &str, key: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value, http::HeaderMap)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut s, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), s.send_request(req)).await??;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    let v = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, v, headers))
}

// ---------- the environment: upstream + Keyway ----------

struct Env {
    args: Args,
    bin_dir: PathBuf,
    pins: Pins,
    _procs: Procs,
    upstream: SocketAddr,
    /// The bare hyper proxy (`keyway-upstream --mode proxy`), pinned where Keyway is: the floor.
    floor: SocketAddr,
    floor_pid: u32,
    gateway: SocketAddr,
    gateway_pid: u32,
    key: String,
    dir: TempDir,
    /// LiteLLM's proxy, while the reference scenario runs: its address and pid.
    litellm: Option<(SocketAddr, u32)>,
}

impl Env {
    /// The gateway's SQLite file.
    fn db(&self) -> PathBuf {
        self.dir.0.join("data").join("keyway.db")
    }
}

/// A temp dir removed on drop (no extra dependency).
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_listening(child: &mut Child) -> anyhow::Result<SocketAddr> {
    let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    line.trim().strip_prefix("listening ").ok_or_else(|| anyhow!("upstream said `{line}`"))?.parse().context("upstream address")
}

/// Upstream + Keyway with the realistic path; `record_usage: false` sets `[usage] record = false`.
async fn start_env(args: &Args, record_usage: bool) -> anyhow::Result<Env> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().ok_or_else(|| anyhow!("no bin dir"))?.to_path_buf();
    let keyway = args.keyway.clone().unwrap_or_else(|| bin_dir.join("keyway"));
    if !keyway.exists() {
        bail!("{} not found: build it with `cargo build --release -p keyway`", keyway.display());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pins = pins(cores, args.no_pin || args.pinning == "unpinned");
    let mut procs = Procs(Vec::new());

    let mut up = command(&pins.upstream, &bin_dir.join("keyway-upstream"))
        .args(["--listen", "127.0.0.1:0", "--keys", &format!("{BYOK_1},{BYOK_2},{SYSTEM}")])
        .stdout(Stdio::piped())
        .spawn()
        .context("start keyway-upstream")?;
    let upstream = read_listening(&mut up)?;
    procs.0.push(("upstream".into(), up));
    let mut fl = command(&pins.gateway, &bin_dir.join("keyway-upstream"))
        .args(["--mode", "proxy", "--listen", "127.0.0.1:0", "--to", &format!("http://{upstream}")])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the floor proxy")?;
    let floor = read_listening(&mut fl)?;
    let floor_pid = fl.id();
    procs.0.push(("floor".into(), fl));

    let dir = std::env::temp_dir().join(format!("keyway-bench-{}-{}", std::process::id(), if record_usage { "on" } else { "off" }));
    std::fs::create_dir_all(&dir)?;
    let dir = TempDir(dir);
    let port = free_port()?;
    let gateway: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut config = format!(
        "listen = \"{gateway}\"\ndata_dir = \"{}\"\n",
        dir.0.join("data").display()
    );
    if let Some(url) = &args.redis {
        config.push_str(&format!("redis_url = \"{url}\"\n\n[cluster]\nkey_prefix = \"kwbench-{}-{port}\"\n", std::process::id()));
    }
    config.push_str(&format!(
        "\n[usage]\nrecord = {record_usage}\n\n[providers.openai]\nbase_url = \"http://{upstream}/v1\"\n\n[[system_credentials]]\nprovider = \"openai\"\nkey = \"env:KEYWAY_BENCH_SYSTEM_KEY\"\n"
    ));
    let config_path = dir.0.join("keyway.toml");
    std::fs::write(&config_path, config)?;
    let mut gw = match &args.wrap {
        Some(w) => {
            let mut words = w.split_whitespace();
            let mut c = command(&pins.gateway, Path::new(words.next().ok_or_else(|| anyhow!("empty --wrap"))?));
            c.args(words).arg(&keyway);
            c
        }
        None => command(&pins.gateway, &keyway),
    };
    let gw = gw
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .env("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT)
        .env("KEYWAY_BENCH_SYSTEM_KEY", SYSTEM)
        .env("KEYWAY_LOG", std::env::var("KEYWAY_LOG").unwrap_or_else(|_| "warn".into()))
        // Under a --wrap (callgrind) requests run ~50x slower: with the default 50 ms linger the
        // usage writer would commit ~12-row batches where full speed gives ~200, and per-batch
        // costs (commit, WAL frames) would weigh ~15x too much. 2 s gives full-speed batch sizes.
        .env(
            "KEYWAY_USAGE__BATCH_LINGER_MS",
            std::env::var("KEYWAY_USAGE__BATCH_LINGER_MS")
                .unwrap_or_else(|_| if args.wrap.is_some() { CALLGRIND_LINGER.as_millis().to_string() } else { "50".into() }),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.0.join("keyway.log"))?))
        .spawn()
        .context("start keyway")?;
    let gateway_pid = gw.id();
    procs.0.push(("keyway".into(), gw));
    let t0 = Instant::now();
    loop {
        if let Ok((200, _, _)) = http(gateway, "GET", "/health", "", None).await {
            break;
        }
        if t0.elapsed() > Duration::from_secs(if args.wrap.is_some() { 300 } else { 30 }) {
            let log = std::fs::read_to_string(dir.0.join("keyway.log")).unwrap_or_default();
            bail!("keyway did not come up:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The realistic BYOK path: two stored BYOK credentials + the system one = three candidates.
    for (name, key, order) in [("bench primary", BYOK_1, 0), ("bench secondary", BYOK_2, 1)] {
        let (s, v, _) = http(gateway, "POST", "/api/v1/byok", MGMT, Some(&json!({"provider": "openai", "key": key, "name": name, "sort_order": order}))).await?;
        if s != 201 {
            bail!("creating a BYOK credential: {s} {v}");
        }
    }
    let limits = json!({"requests_per_minute": 100_000_000u64, "tokens_per_minute": 10_000_000_000u64, "max_concurrent": 100_000,
                        "budget_daily_micros": 1_000_000_000_000u64, "budget_monthly_micros": 10_000_000_000_000u64});
    let (s, v, _) = http(gateway, "POST", "/api/v1/keys", MGMT, Some(&json!({"name": "bench", "limits": limits}))).await?;
    if s != 201 {
        bail!("creating the Keyway key: {s} {v}");
    }
    let key = v["key"].as_str().ok_or_else(|| anyhow!("no key in {v}"))?.to_owned();
    let env = Env { args: args.clone(), bin_dir, pins, _procs: procs, upstream, floor, floor_pid, gateway, gateway_pid, key, dir, litellm: None };
    let (s, v, h) = http(env.gateway, "POST", "/v1/chat/completions", &env.key, Some(&body(true, false, None))).await?;
    if s != 200 || h.get("x-keyway-byok").and_then(|v| v.to_str().ok()) != Some("true") {
        bail!("the realistic path does not answer from a BYOK key: {s} {v} {h:?}");
    }
    Ok(env)
}

/// A realistic chat request; `bench_*` fields steer the upstream and pass through Keyway untouched.
fn body(through: bool, stream: bool, chunk_delay_ms: Option<u64>) -> Value {
    let mut b = json!({
        "model": if through { "openai/gpt-4o-mini" } else { "gpt-4o-mini" },
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one short haiku."},
            {"role": "user", "content": "Write a haiku about an API gateway that adds only microseconds."}
        ],
        "temperature": 0.7,
        "max_tokens": 64,
        "user": "bench-user-42",
    });
    if stream {
        b["stream"] = json!(true);
        b["bench_chunk_delay_ms"] = json!(chunk_delay_ms.unwrap_or(5));
    }
    b
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Direct,
    /// Through the bare hyper proxy: what any hyper-based gateway pays for its two hops.
    Floor,
    Keyway,
    /// Through LiteLLM's proxy (the reference scenario only).
    LiteLlm,
}

impl Side {
    /// Gateways route by Keyway's model name (`openai/gpt-4o-mini`); the upstream and the bare
    /// floor proxy see the upstream's own (`gpt-4o-mini`).
    fn through_gateway(self) -> bool {
        matches!(self, Side::Keyway | Side::LiteLlm)
    }
}

impl Env {
    fn load_cmd(&self, side: Side, stream: bool, chunk_delay_ms: Option<u64>, extra: &[String]) -> Command {
        let (url, key) = self.target(side);
        let mut c = command(&self.pins.load, &self.bin_dir.join("keyway-load"));
        c.args(["--url", &url, "--key", &key, "--body", &body(side.through_gateway(), stream, chunk_delay_ms).to_string()]);
        c.args(extra);
        c
    }

    /// Runs keyway-load to completion and returns its JSON report.
    fn load(&self, side: Side, stream: bool, extra: &[String]) -> anyhow::Result<Value> {
        let out = self.load_cmd(side, stream, None, extra).stderr(Stdio::inherit()).output().context("run keyway-load")?;
        if !out.status.success() {
            bail!("keyway-load failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("{}")).context("keyway-load output")
    }

    /// The gateway's own counters from `/metrics`: store queries of the request path (the usage
    /// writer's batched inserts are counted apart), usage records written and queued.
    async fn queries(&self) -> Value {
        let text = match http(self.gateway, "GET", "/metrics", "", None).await {
            Ok((200, Value::String(t), _)) => t,
            _ => return Value::Null,
        };
        let metric = |name: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v as u64)
        };
        json!({
            "store_queries": metric("keyway_store_queries_total"),
            "usage_recorded": metric("keyway_usage_recorded_total"),
            "usage_queue_depth": metric("keyway_usage_queue_depth"),
        })
    }

    /// A run through the floor proxy or LiteLLM with that process's CPU time around it.
    fn measured_process(&self, side: Side, stream: bool, extra: &[String]) -> anyhow::Result<Value> {
        let pid = self.pid(side).ok_or_else(|| anyhow!("no process serves this side"))?;
        let cpu0 = cpu_secs(pid)?;
        let t0 = Instant::now();
        let mut r = self.load(side, stream, extra)?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs(pid)? - cpu0;
        r["gateway"] = Value::Object(process_figures(&r, pid, cpu, wall));
        Ok(r)
    }

    /// The process serving `side` (none for the upstream itself).
    fn pid(&self, side: Side) -> Option<u32> {
        match side {
            Side::Direct => None,
            Side::Floor => Some(self.floor_pid),
            Side::Keyway => Some(self.gateway_pid),
            Side::LiteLlm => self.litellm.map(|(_, pid)| pid),
        }
    }

    /// A through-Keyway run with the gateway's CPU time, RSS and store queries around it.
    async fn measured(&self, stream: bool, extra: &[String]) -> anyhow::Result<Value> {
        let q0 = self.queries().await;
        let cpu0 = cpu_secs(self.gateway_pid)?;
        let t0 = Instant::now();
        let mut r = self.load(Side::Keyway, stream, extra)?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs(self.gateway_pid)? - cpu0;
        let q1 = self.queries().await;
        self.gateway_figures(&mut r, cpu, wall, &q0, &q1);
        Ok(r)
    }

    /// Several sides in one open-loop run, their requests interleaved (keyway-load with one
    /// target per side, each at the rate): a stall of the host lands on all of them alike, so
    /// the differences between them hold on a noisy machine where back-to-back runs don't.
    /// One report per side, in order, each with its process's CPU figures.
    async fn interleaved<const N: usize>(&self, sides: [Side; N], extra: &[String]) -> anyhow::Result<[Value; N]> {
        let mut c = command(&self.pins.load, &self.bin_dir.join("keyway-load"));
        for side in sides {
            let (url, key) = self.target(side);
            c.args(["--url", &url, "--key", &key, "--body", &body(side.through_gateway(), false, None).to_string()]);
        }
        c.args(extra);
        let q0 = self.queries().await;
        let cpu0 = sides.iter().map(|&side| self.pid(side).map(cpu_secs).transpose()).collect::<anyhow::Result<Vec<_>>>()?;
        let t0 = Instant::now();
        let out = c.stderr(Stdio::inherit()).output().context("run keyway-load")?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu1 = sides.iter().map(|&side| self.pid(side).map(cpu_secs).transpose()).collect::<anyhow::Result<Vec<_>>>()?;
        let q1 = self.queries().await;
        if !out.status.success() {
            bail!("keyway-load failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("{}")).context("keyway-load output")?;
        let Ok(mut reports) = <[Value; N]>::try_from(v["targets"].as_array().cloned().unwrap_or_default()) else {
            bail!("keyway-load gave not {N} reports: {v}");
        };
        for (i, r) in reports.iter_mut().enumerate() {
            let (Some(pid), Some(a), Some(b)) = (self.pid(sides[i]), cpu0[i], cpu1[i]) else { continue };
            if sides[i] == Side::Keyway {
                self.gateway_figures(r, b - a, wall, &q0, &q1);
            } else {
                r["gateway"] = Value::Object(process_figures(r, pid, b - a, wall));
            }
        }
        Ok(reports)
    }

    fn target(&self, side: Side) -> (String, String) {
        match side {
            Side::Direct => (format!("http://{}/v1/chat/completions", self.upstream), SYSTEM.to_owned()),
            Side::Floor => (format!("http://{}/v1/chat/completions", self.floor), SYSTEM.to_owned()),
            Side::Keyway => (format!("http://{}/v1/chat/completions", self.gateway), self.key.clone()),
            Side::LiteLlm => (format!("http://{}/v1/chat/completions", self.litellm.map(|(a, _)| a).unwrap_or(self.gateway)), LITELLM_KEY.to_owned()),
        }
    }

    /// The gateway's CPU per request, store queries and usage records over a run, into `r`.
    fn gateway_figures(&self, r: &mut Value, cpu: f64, wall: f64, q0: &Value, q1: &Value) {
        let served = r["answered"].as_u64().unwrap_or(0);
        let dq = q1["store_queries"].as_u64().unwrap_or(0).saturating_sub(q0["store_queries"].as_u64().unwrap_or(0));
        let dw = q1["usage_recorded"].as_u64().unwrap_or(0).saturating_sub(q0["usage_recorded"].as_u64().unwrap_or(0));
        let mut g = process_figures(r, self.gateway_pid, cpu, wall);
        g.insert("store_queries".into(), if q0["store_queries"].is_null() { Value::Null } else { json!(dq) });
        g.insert("store_queries_per_request".into(), json!(if served > 0 { dq as f64 / served as f64 } else { 0.0 }));
        g.insert("usage_records_written".into(), json!(dw));
        r["gateway"] = Value::Object(g);
    }
}

/// CPU time over a run (per request answered in `r`, and as a share of the wall clock) and RSS
/// after it, of the process `pid` that served the run.
fn process_figures(r: &Value, pid: u32, cpu: f64, wall: f64) -> serde_json::Map<String, Value> {
    let served = r["answered"].as_u64().unwrap_or(0);
    let mut m = serde_json::Map::new();
    m.insert("cpu_s".into(), json!(round(cpu, 3)));
    m.insert("cpu_util".into(), json!(round(cpu / wall.max(1e-9), 3)));
    m.insert("cpu_us_per_request".into(), json!(if served > 0 { round(cpu * 1e6 / served as f64, 1) } else { 0.0 }));
    m.insert("rss_kb_after".into(), json!(rss_kb(pid)));
    m
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn pct(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

// ---------- scenarios ----------

struct Plan {
    closed_secs: f64,
    open_secs: f64,
    stream_secs: f64,
    hold_secs: f64,
    hold_streams: usize,
    overload_secs: f64,
}

fn added(direct: &Value, keyway: &Value, metric: &str) -> Value {
    let mut o = serde_json::Map::new();
    for q in ["p50_us", "p90_us", "p99_us", "p999_us"] {
        let d = pct(direct, &format!("/{metric}/{q}"));
        let k = pct(keyway, &format!("/{metric}/{q}"));
        o.insert(q.into(), json!(round(k - d, 1)));
    }
    Value::Object(o)
}

async fn closed_loop(env: &Env, plan: &Plan, conns: usize) -> anyhow::Result<Value> {
    let extra = [s("--mode"), s("closed"), s("--connections"), s(conns), s("--duration"), s(plan.closed_secs), s("--warmup"), s(0.5)];
    let direct = env.load(Side::Direct, false, &extra)?;
    let floor = env.measured_process(Side::Floor, false, &extra)?;
    let keyway = env.measured(false, &extra).await?;
    let rps = |v: &Value| v["throughput_rps"].as_f64().unwrap_or(0.0);
    let ratio = rps(&keyway) / rps(&direct);
    Ok(json!({"connections": conns, "direct": direct, "floor": floor, "keyway": keyway,
              "throughput_ratio": round(ratio, 3), "floor_throughput_ratio": round(rps(&floor) / rps(&direct), 3)}))
}

/// `interleaved`: the three sides in one run (3x the rate on the machine); else one after the
/// other, for rates whose triple the load generator's core can't carry.
async fn open_loop(env: &Env, plan: &Plan, rate: u64, conns: usize, interleaved: bool) -> anyhow::Result<Value> {
    let extra = [s("--mode"), s("open"), s("--rate"), s(rate), s("--connections"), s(conns), s("--duration"), s(plan.open_secs), s("--warmup"), s(1)];
    let (direct, floor, keyway) = if interleaved {
        let [d, f, k] = env.interleaved([Side::Direct, Side::Floor, Side::Keyway], &extra).await?;
        (d, f, k)
    } else {
        (env.load(Side::Direct, false, &extra)?, env.measured_process(Side::Floor, false, &extra)?, env.measured(false, &extra).await?)
    };
    Ok(json!({"rate": rate, "interleaved": interleaved, "direct": direct, "floor": floor, "keyway": keyway,
              "added_latency_us": added(&direct, &keyway, "latency"),
              "floor_added_latency_us": added(&direct, &floor, "latency"),
              "over_floor_latency_us": added(&floor, &keyway, "latency")}))
}

/// keyway-load's arguments for the streaming runs (here and in the LiteLLM reference).
fn stream_args(env: &Env, plan: &Plan) -> [String; 8] {
    [s("--mode"), s("stream"), s("--connections"), s(env.args.stream_connections), s("--duration"), s(plan.stream_secs), s("--warmup"), s(0.5)]
}

async fn streaming(env: &Env, plan: &Plan) -> anyhow::Result<Value> {
    let conns = env.args.stream_connections;
    let extra = stream_args(env, plan);
    let direct = env.load(Side::Direct, true, &extra)?;
    let floor = env.measured_process(Side::Floor, true, &extra)?;
    let keyway = env.measured(true, &extra).await?;
    Ok(json!({
        "chunk_delay_ms": 5, "content_chunks": 8, "connections": conns,
        "direct": direct, "floor": floor, "keyway": keyway,
        "added_ttfb_us": added(&direct, &keyway, "ttfb"),
        "floor_added_ttfb_us": added(&direct, &floor, "ttfb"),
        "floor_added_gap_us": added(&direct, &floor, "gap"),
        "added_gap_us": added(&direct, &keyway, "gap"),
        "added_ttlb_us": added(&direct, &keyway, "latency"),
    }))
}

/// `plan.hold_streams` idle streams held through `side` (Keyway, or the floor: what hyper's
/// HTTP/1 connections on both sides of a proxy hold per stream before any gateway code).
async fn hold(env: &Env, plan: &Plan, side: Side) -> anyhow::Result<Value> {
    let pid = env.pid(side).ok_or_else(|| anyhow!("no process serves this side"))?;
    let idle_kb = rss_kb(pid);
    let extra = [s("--mode"), s("hold"), s("--connections"), s(plan.hold_streams), s("--duration"), s(plan.hold_secs), s("--timeout-ms"), s(60_000)];
    let mut child = env.load_cmd(side, true, Some(600_000), &extra).stdout(Stdio::piped()).spawn()?;
    let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(out).lines();
    let ready: Value = match lines.next() {
        Some(Ok(l)) => serde_json::from_str(&l).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    // Sample while the streams are held; keep the largest reading.
    let held_from = Instant::now();
    let mut peak = 0u64;
    let mut samples = Vec::new();
    while held_from.elapsed().as_secs_f64() < plan.hold_secs - 0.5 {
        std::thread::sleep(Duration::from_millis(500));
        let r = rss_kb(pid);
        peak = peak.max(r);
        samples.push(r);
    }
    let last: Value = lines.map_while(Result::ok).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or(Value::Null);
    let _ = child.wait();
    let open = ready["open"].as_u64().unwrap_or(0);
    let mid = samples.get(samples.len() / 2).copied().unwrap_or(peak);
    std::thread::sleep(Duration::from_secs(2));
    let after_kb = rss_kb(pid);
    Ok(json!({
        "streams": plan.hold_streams, "ready": ready, "result": last,
        "rss_idle_kb": idle_kb, "rss_held_mid_kb": mid, "rss_held_peak_kb": peak, "rss_after_close_kb": after_kb,
        "rss_per_stream_kb": if open > 0 { round((peak as f64 - idle_kb as f64) / open as f64, 2) } else { f64::NAN },
    }))
}

async fn overload(env: &Env, plan: &Plan, max_rps: f64) -> anyhow::Result<Value> {
    let rate = (max_rps * 2.0).round().max(100.0) as u64;
    let conns = if env.args.quick { 1024 } else { 2048 };
    let extra = [s("--mode"), s("open"), s("--rate"), s(rate), s("--connections"), s(conns), s("--duration"), s(plan.overload_secs), s("--timeout-ms"), s(15_000)];
    // Sample the gateway's RSS during the run from a side thread.
    let pid = env.gateway_pid;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss_kb(pid));
            std::thread::sleep(Duration::from_millis(200));
        }
        peak
    });
    let rss_before = rss_kb(pid);
    let keyway = env.measured(false, &extra).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let keyway = keyway?;
    // Still alive and answering at once afterwards?
    let t = Instant::now();
    let probe = http(env.gateway, "POST", "/v1/chat/completions", &env.key, Some(&body(true, false, None))).await.map(|(s, _, _)| s).unwrap_or(0);
    let probe_ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok(json!({
        "rate": rate, "connections": conns, "keyway": keyway,
        "rss_before_kb": rss_before, "rss_peak_kb": peak, "rss_after_kb": rss_kb(pid),
        "probe_after_status": probe, "probe_after_ms": round(probe_ms, 2),
    }))
}

/// LiteLLM's proxy (PyPI, in the venv `bench/run --litellm` makes) in Keyway's place: the
/// same upstream, core and load, one worker as it starts by default, its master key checked.
/// It runs without a database (LiteLLM's virtual keys, limits and spend rows need PostgreSQL),
/// so its path is lighter than Keyway's realistic one. Its per-request access log is turned
/// down to warnings, as Keyway logs none at its default level.
async fn litellm_reference(env: &mut Env, plan: &Plan, exe: &Path) -> anyhow::Result<Value> {
    let dir = env.dir.0.join("litellm");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: openai/gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://{}/v1\n      api_key: {SYSTEM}\n",
            env.upstream
        ),
    )?;
    let log_config = dir.join("logging.json");
    std::fs::write(
        &log_config,
        json!({"version": 1, "disable_existing_loggers": false,
               "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
               "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
               "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
                           "uvicorn.error": {"level": "WARNING"},
                           "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": false}}})
        .to_string(),
    )?;
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let log = dir.join("litellm.log");
    let child = command(&env.pins.gateway, exe)
        .args(["--config", &config.display().to_string(), "--host", "127.0.0.1", "--port", &port.to_string(), "--log_config", &log_config.display().to_string()])
        .env("LITELLM_MASTER_KEY", LITELLM_KEY)
        // The bundled price map instead of a fetch from GitHub (no network beyond loopback).
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .stdout(Stdio::from(std::fs::File::create(&log)?))
        .stderr(Stdio::from(std::fs::File::options().append(true).open(&log)?))
        .spawn()
        .with_context(|| format!("start {}", exe.display()))?;
    let pid = child.id();
    let procs = Procs(vec![("litellm".into(), child)]);
    let t0 = Instant::now();
    loop {
        if let Ok((200, _, _)) = http(addr, "POST", "/v1/chat/completions", LITELLM_KEY, Some(&body(true, false, None))).await {
            break;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            bail!("LiteLLM did not answer within 180 s:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let startup_s = t0.elapsed().as_secs_f64();
    env.litellm = Some((addr, pid));
    let result = litellm_runs(env, plan).await;
    env.litellm = None;
    drop(procs);
    let mut r = result?;
    r["startup_s"] = json!(round(startup_s, 1));
    r["version"] = json!(Command::new(exe.with_file_name("pip")).args(["show", "litellm"]).output().ok().and_then(|o| {
        String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("Version: ").map(str::to_owned))
    }));
    Ok(r)
}

/// Closed loop, open loop (interleaved) and streaming: direct, Keyway and LiteLLM side by side.
async fn litellm_runs(env: &Env, plan: &Plan) -> anyhow::Result<Value> {
    let warm = [s("--mode"), s("closed"), s("--connections"), s(8), s("--duration"), s(2)];
    env.load(Side::LiteLlm, false, &warm)?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = env.pid(Side::LiteLlm).unwrap_or(0);
    let idle_kb = rss_kb(pid);

    eprintln!("  LiteLLM: closed loop c=64");
    let closed = [s("--mode"), s("closed"), s("--connections"), s(64), s("--duration"), s(plan.closed_secs), s("--warmup"), s(0.5)];
    let direct = env.load(Side::Direct, false, &closed)?;
    let keyway = env.measured(false, &closed).await?;
    let litellm = env.measured_process(Side::LiteLlm, false, &closed)?;
    let rps = |v: &Value| v["throughput_rps"].as_f64().unwrap_or(0.0);
    // An open-loop rate LiteLLM carries: half its closed-loop maximum (at least 10/s).
    let rate = ((rps(&litellm) * 0.5 / 10.0).floor() * 10.0).max(10.0) as u64;
    let closed = json!({"connections": 64, "direct": direct, "keyway": keyway, "litellm": litellm,
                        "keyway_ratio": round(rps(&keyway) / rps(&direct), 3), "litellm_ratio": round(rps(&litellm) / rps(&direct), 4)});

    eprintln!("  LiteLLM: open loop {rate}/s, direct, Keyway and LiteLLM interleaved");
    let open_args = [s("--mode"), s("open"), s("--rate"), s(rate), s("--connections"), s(64), s("--duration"), s(plan.open_secs), s("--warmup"), s(1)];
    let [direct, keyway, litellm] = env.interleaved([Side::Direct, Side::Keyway, Side::LiteLlm], &open_args).await?;
    let open = json!({"rate": rate, "direct": direct, "keyway": keyway, "litellm": litellm,
                      "keyway_added_latency_us": added(&direct, &keyway, "latency"),
                      "litellm_added_latency_us": added(&direct, &litellm, "latency")});

    eprintln!("  LiteLLM: streaming");
    let stream_args = stream_args(env, plan);
    let direct = env.load(Side::Direct, true, &stream_args)?;
    let keyway = env.measured(true, &stream_args).await?;
    let litellm = env.measured_process(Side::LiteLlm, true, &stream_args)?;
    let stream = json!({"connections": env.args.stream_connections, "direct": direct, "keyway": keyway, "litellm": litellm,
                        "keyway_added_ttfb_us": added(&direct, &keyway, "ttfb"), "litellm_added_ttfb_us": added(&direct, &litellm, "ttfb"),
                        "keyway_added_gap_us": added(&direct, &keyway, "gap"), "litellm_added_gap_us": added(&direct, &litellm, "gap")});
    Ok(json!({"closed": closed, "open": open, "stream": stream,
              "litellm_rss_idle_kb": idle_kb, "litellm_rss_end_kb": rss_kb(pid), "keyway_rss_end_kb": rss_kb(env.gateway_pid)}))
}

/// Usage recording on vs off: the same closed loop (c=64) through two gateways started for
/// this scenario, one recording and one with `[usage] record = false`, in alternating rounds so
/// that drift on a shared machine hits both alike. Only one gateway is loaded at a time. Both
/// start fresh: the main gateway has held 5,000 streams and an overload by now (a heap of
/// ~300 MB), which is not what recording costs and made it look 5-7 points worse.
async fn usage_on_off(args: &Args, plan: &Plan) -> anyhow::Result<Value> {
    let on = start_env(args, true).await?;
    let off = start_env(args, false).await?;
    let warm = [s("--mode"), s("closed"), s("--connections"), s(8), s("--duration"), s(1)];
    on.load(Side::Keyway, false, &warm)?;
    off.load(Side::Keyway, false, &warm)?;
    let history = args.usage_history;
    if history > 0 {
        while on.queries().await["usage_queue_depth"].as_u64().unwrap_or(0) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let template = template_row(&on.db())?;
        for env in [&on, &off] {
            let t0 = Instant::now();
            prefill_history(&env.db(), &template, history)?;
            eprintln!("  {history} history rows written in {:.1} s", t0.elapsed().as_secs_f64());
        }
        // Past the gateways' first cache refreshes and a billing reconcile over the history.
        on.load(Side::Keyway, false, &warm)?;
        off.load(Side::Keyway, false, &warm)?;
    }
    const ROUNDS: usize = 5;
    let (on_runs, off_runs) = alternating(&on, &off, plan, ROUNDS, "usage recording on vs off").await?;
    let (on_rps, off_rps) = (mean(&on_runs, "/throughput_rps"), mean(&off_runs, "/throughput_rps"));
    let (on_cpu, off_cpu) = (mean(&on_runs, "/gateway/cpu_us_per_request"), mean(&off_runs, "/gateway/cpu_us_per_request"));
    let written_on: u64 = on_runs.iter().map(|r| r["gateway"]["usage_records_written"].as_u64().unwrap_or(0)).sum();
    let written_off: u64 = off_runs.iter().map(|r| r["gateway"]["usage_records_written"].as_u64().unwrap_or(0)).sum();
    // Each round's pair ran back to back: the median of their differences is the figure least
    // moved by drift on a shared machine.
    let paired: Vec<f64> = on_runs
        .iter()
        .zip(&off_runs)
        .map(|(on, off)| {
            let (a, b) = (pct(on, "/throughput_rps"), pct(off, "/throughput_rps"));
            (b - a) / b * 100.0
        })
        .collect();
    let paired_median = median(paired.clone());
    Ok(json!({
        "paired_cost_percent": paired.iter().map(|p| round(*p, 2)).collect::<Vec<_>>(),
        "paired_cost_percent_median": round(paired_median, 2),
        "connections": 64, "rounds": ROUNDS, "secs_per_run": plan.closed_secs, "history_rows": history,
        "on": {"throughput_rps": round(on_rps, 1), "cpu_us_per_request": round(on_cpu, 1), "usage_records_written": written_on, "runs": on_runs},
        "off": {"throughput_rps": round(off_rps, 1), "cpu_us_per_request": round(off_cpu, 1), "usage_records_written": written_off, "runs": off_runs},
        // Positive = recording costs throughput; the target is under 5.
        "throughput_cost_percent": round((off_rps - on_rps) / off_rps * 100.0, 2),
        "cpu_cost_us_per_request": round(on_cpu - off_cpu, 1),
    }))
}

/// The closed loop at 64 connections through gateway `a` then `b` (then `b` then `a`: who goes
/// first alternates), `rounds` times; only one gateway is loaded at a time.
async fn alternating(a: &Env, b: &Env, plan: &Plan, rounds: usize, what: &str) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let extra = [s("--mode"), s("closed"), s("--connections"), s(64), s("--duration"), s(plan.closed_secs), s("--warmup"), s(0.5)];
    let (mut a_runs, mut b_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("scenario: {what}, round {}/{rounds}", round + 1);
        if round % 2 == 0 {
            a_runs.push(a.measured(false, &extra).await?);
            b_runs.push(b.measured(false, &extra).await?);
        } else {
            b_runs.push(b.measured(false, &extra).await?);
            a_runs.push(a.measured(false, &extra).await?);
        }
    }
    Ok((a_runs, b_runs))
}

fn mean(runs: &[Value], p: &str) -> f64 {
    runs.iter().map(|r| pct(r, p)).sum::<f64>() / runs.len().max(1) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// This build against `--compare`'s, both started fresh on the realistic path: the closed loop
/// in alternating rounds, each round's pair back to back, so that the paired differences (and
/// their median) carry little of the drift that moves single runs on a shared machine by 10% or
/// more. CPU per request is the figure to read: throughput here is bounded by the core the load
/// generator and the upstream share.
async fn compare(args: &Args, plan: &Plan, other: &Path) -> anyhow::Result<Value> {
    let this = start_env(args, true).await?;
    let mut other_args = args.clone();
    other_args.keyway = Some(other.to_path_buf());
    let that = start_env(&other_args, true).await?;
    let warm = [s("--mode"), s("closed"), s("--connections"), s(8), s("--duration"), s(1)];
    this.load(Side::Keyway, false, &warm)?;
    that.load(Side::Keyway, false, &warm)?;
    const ROUNDS: usize = 6;
    let (this_runs, that_runs) = alternating(&this, &that, plan, ROUNDS, "this build vs --compare").await?;
    let paired = |p: &str| -> Vec<f64> { this_runs.iter().zip(&that_runs).map(|(a, b)| pct(a, p) - pct(b, p)).collect() };
    let cpu = paired("/gateway/cpu_us_per_request");
    let rps = paired("/throughput_rps");
    let side = |runs: &[Value], bin: String| {
        json!({"binary": bin, "throughput_rps": round(mean(runs, "/throughput_rps"), 1), "cpu_us_per_request": round(mean(runs, "/gateway/cpu_us_per_request"), 1), "runs": runs})
    };
    let this_bin = args.keyway.clone().map(|p| p.display().to_string()).unwrap_or_else(|| "keyway (beside keyway-bench)".into());
    Ok(json!({
        "connections": 64, "rounds": ROUNDS, "secs_per_run": plan.closed_secs,
        "this": side(&this_runs, this_bin),
        "other": side(&that_runs, other.display().to_string()),
        // Negative = this build spends less CPU per request than the other.
        "paired_cpu_diff_us": cpu.iter().map(|d| round(*d, 1)).collect::<Vec<_>>(),
        "paired_cpu_diff_us_median": round(median(cpu), 1),
        "paired_throughput_diff_rps": rps.iter().map(|d| round(*d, 0)).collect::<Vec<_>>(),
        "paired_throughput_diff_rps_median": round(median(rps), 0),
    }))
}

/// One generation row the gateway wrote, column by column.
fn template_row(db: &Path) -> anyhow::Result<Vec<(String, rusqlite::types::Value)>> {
    let c = rusqlite::Connection::open(db)?;
    c.busy_timeout(Duration::from_secs(30))?;
    let mut st = c.prepare("SELECT * FROM generations ORDER BY created_at DESC LIMIT 1")?;
    let names: Vec<String> = st.column_names().into_iter().map(str::to_owned).collect();
    let row = st.query_row([], |r| (0..names.len()).map(|i| r.get::<_, rusqlite::types::Value>(i)).collect::<Result<Vec<_>, _>>())?;
    Ok(names.into_iter().zip(row).collect())
}

/// `rows` copies of `template` with their own ids, one every few seconds over the past 30 days,
/// in one transaction (the gateway's writer waits on its busy timeout meanwhile).
fn prefill_history(db: &Path, template: &[(String, rusqlite::types::Value)], rows: u64) -> anyhow::Result<()> {
    let mut c = rusqlite::Connection::open(db)?;
    c.busy_timeout(Duration::from_secs(60))?;
    let now_ms = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis())?;
    let step_ms = (30 * 86_400_000 / rows.max(1)).max(1) as i64;
    let cols: Vec<&str> = template.iter().map(|(n, _)| n.as_str()).collect();
    let values: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, n)| match *n {
            // Below the gateway's own ids (`gen-` + a UUIDv7, which starts with the time).
            "id" => "printf('gen-0hist%027d', n.i)".to_owned(),
            "created_at" => format!("{} - (?{} - n.i) * {step_ms}", now_ms, template.len() + 1),
            _ => format!("?{}", i + 1),
        })
        .collect();
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?{}) INSERT INTO generations ({}) SELECT {} FROM n",
        template.len() + 1,
        cols.join(", "),
        values.join(", ")
    );
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut params: Vec<rusqlite::types::Value> = template.iter().map(|(_, v)| v.clone()).collect();
    params.push(rusqlite::types::Value::Integer(i64::try_from(rows)?));
    let n = tx.execute(&sql, rusqlite::params_from_iter(params))?;
    tx.commit()?;
    if n as u64 != rows {
        bail!("wrote {n} history rows, not {rows}");
    }
    Ok(())
}

fn want(args: &Args, name: &str) -> bool {
    args.only.as_deref().is_none_or(|o| o.split(',').any(|x| x.trim() == name))
}

/// The usage writer's linger under a `--wrap` profiler (see `start_env`).
const CALLGRIND_LINGER: Duration = Duration::from_secs(2);

/// Instructions per request under callgrind: counters zeroed after warm-up, dumped after
/// exactly `--callgrind-requests` requests (closed loop, 16 connections); then, with
/// `--callgrind-streams`, zeroed again and dumped after that many streams (4 connections).
async fn callgrind(env: &Env) -> anyhow::Result<Value> {
    let warm = [s("--mode"), s("closed"), s("--connections"), s(16), s("--duration"), s(600), s("--max-requests"), s(500), s("--timeout-ms"), s(60_000)];
    env.load(Side::Keyway, false, &warm)?;
    let n = env.args.callgrind_requests;
    let run = [s("--mode"), s("closed"), s("--connections"), s(16), s("--duration"), s(600), s("--max-requests"), s(n), s("--timeout-ms"), s(60_000)];
    let mut out = callgrind_dump(env, false, &run).await?;
    out["requests"] = json!(n);
    let streams = env.args.callgrind_streams;
    if streams > 0 {
        let run = [s("--mode"), s("stream"), s("--connections"), s(4), s("--duration"), s(600), s("--max-requests"), s(streams), s("--timeout-ms"), s(60_000)];
        let mut st = callgrind_dump(env, true, &run).await?;
        st["streams"] = json!(streams);
        out["streams"] = st;
    }
    Ok(out)
}

/// Zeroes the gateway's callgrind counters, runs `run`, waits for the usage writer (its batched
/// inserts belong to these requests' cost) and dumps.
async fn callgrind_dump(env: &Env, stream: bool, run: &[String]) -> anyhow::Result<Value> {
    let pid = env.gateway_pid.to_string();
    // The counters are read outside the measured window (each read is a `/metrics` render,
    // ~2.3k instructions per request of a 2,000-request window), and the writer is given its
    // linger before the first look at its queue, so that one render at most falls inside.
    let q0 = env.queries().await;
    let st = Command::new("callgrind_control").args(["-z", &pid]).output()?;
    if !st.status.success() {
        bail!("callgrind_control -z: {}", String::from_utf8_lossy(&st.stderr));
    }
    let r = env.load(Side::Keyway, stream, run)?;
    tokio::time::sleep(CALLGRIND_LINGER + Duration::from_secs(1)).await;
    let t0 = Instant::now();
    while env.queries().await["usage_queue_depth"].as_u64().unwrap_or(0) > 0 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let st = Command::new("callgrind_control").args(["-d", &pid]).output()?;
    if !st.status.success() {
        bail!("callgrind_control -d: {}", String::from_utf8_lossy(&st.stderr));
    }
    let q1 = env.queries().await;
    Ok(json!({"statuses": r["status"], "dumped": String::from_utf8_lossy(&st.stdout).trim(),
              "store_queries": q1["store_queries"].as_u64().unwrap_or(0).saturating_sub(q0["store_queries"].as_u64().unwrap_or(0))}))
}

async fn run(args: Args) -> anyhow::Result<Value> {
    let plan = if args.quick {
        Plan { closed_secs: 4.0, open_secs: 5.0, stream_secs: 4.0, hold_secs: args.hold_secs.unwrap_or(8.0), hold_streams: args.hold_streams.unwrap_or(5000), overload_secs: 4.0 }
    } else {
        Plan { closed_secs: 10.0, open_secs: 20.0, stream_secs: 10.0, hold_secs: args.hold_secs.unwrap_or(30.0), hold_streams: args.hold_streams.unwrap_or(5000), overload_secs: 10.0 }
    };
    let mut env = start_env(&args, true).await?;
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("keyway-bench: upstream {} keyway {} (pid {}); {}", env.upstream, env.gateway, env.gateway_pid, env.pins.note);

    // Warm up: connection pools, the key and credential caches, the allocator.
    let warm = [s("--mode"), s("closed"), s("--connections"), s(8), s("--duration"), s(1)];
    env.load(Side::Keyway, false, &warm)?;
    env.load(Side::Direct, false, &warm)?;
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kb(env.gateway_pid);

    let mut out = json!({
        "machine": {
            "cores": cores,
            "pinning": env.pins.note,
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "cpu": std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())),
        },
        "mode": if args.quick { "quick" } else { "full" },
        "path": "realistic BYOK: model openai/gpt-4o-mini, route plan of 3 candidates (2 stored encrypted BYOK keys + 1 system key), Keyway key with limits, usage recording on",
        "rss_idle_kb": idle_rss,
        "redis": args.redis.is_some(),
    });
    out["memory_idle"] = memory(&env).await;
    if want(&args, "hold") {
        eprintln!("scenario: {} idle streams", plan.hold_streams);
        out["hold"] = hold(&env, &plan, Side::Keyway).await?;
        eprintln!("scenario: {} idle streams through the floor", plan.hold_streams);
        out["hold"]["floor"] = hold(&env, &plan, Side::Floor).await?;
    }
    let mut max_rps: f64 = 0.0;
    if want(&args, "closed") || want(&args, "overload") {
        let mut runs = Vec::new();
        for c in [64, 256] {
            eprintln!("scenario: closed loop c={c}");
            let r = closed_loop(&env, &plan, c).await?;
            max_rps = max_rps.max(r["keyway"]["throughput_rps"].as_f64().unwrap_or(0.0));
            runs.push(r);
        }
        out["closed"] = json!(runs);
    }
    if want(&args, "open") {
        let mut runs = Vec::new();
        for (rate, conns, interleaved) in [(1000, 64, true), (5000, 128, false)] {
            eprintln!("scenario: open loop {rate}/s{}", if interleaved { ", direct, floor and Keyway interleaved" } else { "" });
            runs.push(open_loop(&env, &plan, rate, conns, interleaved).await?);
        }
        out["open"] = json!(runs);
    }
    if want(&args, "stream") {
        eprintln!("scenario: streaming");
        out["stream"] = streaming(&env, &plan).await?;
    }
    if let (true, Some(exe)) = (want(&args, "litellm"), args.litellm.clone()) {
        eprintln!("scenario: LiteLLM reference ({})", exe.display());
        out["litellm"] = litellm_reference(&mut env, &plan, &exe).await?;
    }
    if want(&args, "overload") {
        eprintln!("scenario: overload at 2x {max_rps:.0}/s");
        out["overload"] = overload(&env, &plan, max_rps).await?;
    }
    if want(&args, "usage") {
        out["usage"] = usage_on_off(&args, &plan).await?;
        eprintln!(
            "usage recording: on {} req/s, off {} req/s, cost {}% throughput, {} µs CPU/request",
            f(&out, "/usage/on/throughput_rps"), f(&out, "/usage/off/throughput_rps"), f(&out, "/usage/throughput_cost_percent"), f(&out, "/usage/cpu_cost_us_per_request")
        );
    }
    if let (true, Some(other)) = (want(&args, "compare"), args.compare.clone()) {
        out["compare"] = compare(&args, &plan, &other).await?;
        eprintln!(
            "compare: CPU/request {} µs (this) vs {} µs (other), paired difference median {} µs",
            f(&out, "/compare/this/cpu_us_per_request"), f(&out, "/compare/other/cpu_us_per_request"), f(&out, "/compare/paired_cpu_diff_us_median")
        );
    }
    if want(&args, "callgrind") && args.wrap.is_some() {
        eprintln!("scenario: callgrind, {} requests", args.callgrind_requests);
        out["callgrind"] = callgrind(&env).await?;
    }
    out["rss_end_kb"] = json!(rss_kb(env.gateway_pid));
    // What stays once the load is gone: the allocator hands idle pages back after a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    out["memory_end"] = memory(&env).await;
    if !args.quick {
        // Once the upstream pool's idle connections are closed (30 s, checked every 30 s:
        // keyway-providers' client):
        // what an operator sees a couple of minutes after a burst.
        eprintln!("waiting 95 s for the gateway to go idle");
        tokio::time::sleep(Duration::from_secs(95)).await;
        out["memory_idle_end"] = memory(&env).await;
    }
    if args.pinning == "both" && ["closed", "open", "stream"].iter().any(|n| want(&args, n)) {
        drop(env);
        out["unpinned"] = unpinned(&args, &plan).await?;
    }
    out["elapsed_s"] = json!(round(started.elapsed().as_secs_f64(), 1));
    Ok(out)
}

/// The closed loop at 64 connections, the fixed rate of 1,000/s and streaming again, on fresh
/// processes that no one pins: the scheduler moves them over both cores as it would on an
/// operator's box, with the cross-core wake-ups that pinning hides.
async fn unpinned(args: &Args, plan: &Plan) -> anyhow::Result<Value> {
    let mut a = args.clone();
    a.pinning = "unpinned".into();
    let env = start_env(&a, true).await?;
    eprintln!("keyway-bench: unpinned: upstream {} keyway {} (pid {}); {}", env.upstream, env.gateway, env.gateway_pid, env.pins.note);
    let warm = [s("--mode"), s("closed"), s("--connections"), s(8), s("--duration"), s(1)];
    env.load(Side::Keyway, false, &warm)?;
    env.load(Side::Direct, false, &warm)?;
    std::thread::sleep(Duration::from_millis(500));
    let mut out = json!({"pinning": env.pins.note, "rss_idle_kb": rss_kb(env.gateway_pid)});
    if want(args, "closed") {
        eprintln!("scenario (unpinned): closed loop c=64");
        out["closed"] = json!([closed_loop(&env, plan, 64).await?]);
    }
    if want(args, "open") {
        eprintln!("scenario (unpinned): open loop 1000/s, interleaved");
        out["open"] = json!([open_loop(&env, plan, 1000, 64, true).await?]);
    }
    if want(args, "stream") {
        eprintln!("scenario (unpinned): streaming");
        out["stream"] = streaming(&env, plan).await?;
    }
    out["rss_end_kb"] = json!(rss_kb(env.gateway_pid));
    tokio::time::sleep(Duration::from_secs(3)).await;
    out["memory_end"] = memory(&env).await;
    Ok(out)
}

/// Where the gateway's resident memory is: its mappings from `/proc/PID/smaps` by kind, its
/// threads, and the allocator's own figures (`keyway_allocator_bytes` on `/metrics`).
async fn memory(env: &Env) -> Value {
    let pid = env.gateway_pid;
    let mut kinds: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let mut kind = "other";
    for line in std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default().lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let path = line.split_whitespace().nth(5).unwrap_or("");
            kind = if path.ends_with("/keyway") || path.contains("/keyway (deleted)") {
                "binary (code and data)"
            } else if path.starts_with('/') {
                "shared libraries"
            } else if path == "[heap]" {
                "[heap]: the C allocator (SQLite)"
            } else if path == "[stack]" {
                "main thread stack"
            } else if path.starts_with('[') {
                "kernel-mapped ([vdso], ...)"
            } else {
                "anonymous: jemalloc's arenas, thread stacks, other C arenas"
            };
        } else if first == "Rss:" {
            *kinds.entry(kind).or_default() += words.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()));
    let mut allocator = serde_json::Map::new();
    if let Ok((200, Value::String(text), _)) = http(env.gateway, "GET", "/metrics", "", None).await {
        for l in text.lines().filter(|l| l.starts_with("keyway_allocator_bytes{")) {
            let k = l.split('"').nth(1).unwrap_or("");
            let v = l.split_whitespace().last().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            allocator.insert(format!("{k}_kb"), json!((v / 1024.0).round()));
        }
    }
    json!({"rss_kb": rss_kb(pid), "by_mapping_kb": kinds, "threads": threads, "allocator": allocator})
}

// ---------- the Markdown table ----------

fn f(v: &Value, p: &str) -> String {
    match v.pointer(p) {
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(0.0);
            if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") }
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "–".into(),
    }
}

fn status_counts(v: &Value) -> String {
    let mut parts: Vec<String> = v["status"].as_object().map(|m| m.iter().map(|(k, n)| format!("{k}: {n}")).collect()).unwrap_or_default();
    for k in ["errors", "timeouts", "unsent"] {
        if v[k].as_u64().unwrap_or(0) > 0 {
            parts.push(format!("{k}: {}", v[k]));
        }
    }
    parts.join(", ")
}

fn markdown(r: &Value) -> String {
    let mut m = String::new();
    let w = &mut m;
    let _ = writeln_str(w, "# Keyway benchmark results\n");
    let _ = writeln_str(w, &format!(
        "Mode `{}`, {} cores ({}), {}. Path: {}.\n\nAdded = through Keyway minus direct to the upstream, same run. Latencies in µs.\n",
        f(r, "/mode"), f(r, "/machine/cores"), f(r, "/machine/cpu"), f(r, "/machine/pinning"), f(r, "/path")
    ));
    if let Some(runs) = r["closed"].as_array() {
        let _ = writeln_str(w, "## 1. Non-streaming, closed loop (max throughput)\n");
        let _ = writeln_str(w, "| connections | direct req/s | floor req/s (ratio), CPU µs/req | Keyway req/s | ratio | Keyway p50 / p99 | gateway CPU µs/req | gateway CPU util | store queries (per req) | statuses through Keyway |\n|---|---|---|---|---|---|---|---|---|---|");
        for c in runs {
            let _ = writeln_str(w, &format!(
                "| {} | {} | {} ({}), {} | {} | {} | {} / {} | **{}** | {} | {} ({}) | {} |",
                f(c, "/connections"), f(c, "/direct/throughput_rps"),
                f(c, "/floor/throughput_rps"), f(c, "/floor_throughput_ratio"), f(c, "/floor/gateway/cpu_us_per_request"),
                f(c, "/keyway/throughput_rps"), f(c, "/throughput_ratio"),
                f(c, "/keyway/latency/p50_us"), f(c, "/keyway/latency/p99_us"), f(c, "/keyway/gateway/cpu_us_per_request"), f(c, "/keyway/gateway/cpu_util"),
                f(c, "/keyway/gateway/store_queries"), f(c, "/keyway/gateway/store_queries_per_request"), status_counts(&c["keyway"])
            ));
        }
        let _ = writeln_str(w, "");
    }
    if let Some(runs) = r["open"].as_array() {
        let _ = writeln_str(w, "## 2. Non-streaming, fixed rate (open loop, latency from the scheduled send time)\n");
        let _ = writeln_str(w, "At 1,000/s the three sides run at once, their requests interleaved (each at the rate, 3x on the machine), so a stall of the host lands on all of them; at 5,000/s (whose triple the load generator's core can't carry) one after the other.\n");
        let _ = writeln_str(w, "| rate | direct p50 / p99 / p99.9 | floor added p50 / p99 / p99.9 | Keyway p50 / p99 / p99.9 | **added p50 / p99 / p99.9** | gateway CPU µs/req (floor) | statuses through Keyway | statuses direct |\n|---|---|---|---|---|---|---|---|");
        for o in runs {
            let _ = writeln_str(w, &format!(
                "| {}/s | {} / {} / {} | {} / {} / {} | {} / {} / {} | **{} / {} / {}** | {} ({}) | {} | {} |",
                f(o, "/rate"), f(o, "/direct/latency/p50_us"), f(o, "/direct/latency/p99_us"), f(o, "/direct/latency/p999_us"),
                f(o, "/floor_added_latency_us/p50_us"), f(o, "/floor_added_latency_us/p99_us"), f(o, "/floor_added_latency_us/p999_us"),
                f(o, "/keyway/latency/p50_us"), f(o, "/keyway/latency/p99_us"), f(o, "/keyway/latency/p999_us"),
                f(o, "/added_latency_us/p50_us"), f(o, "/added_latency_us/p99_us"), f(o, "/added_latency_us/p999_us"),
                f(o, "/keyway/gateway/cpu_us_per_request"), f(o, "/floor/gateway/cpu_us_per_request"), status_counts(&o["keyway"]), status_counts(&o["direct"])
            ));
        }
        let _ = writeln_str(w, "");
    }
    if r["stream"].is_object() {
        let st = &r["stream"];
        let _ = writeln_str(w, &format!("## 3. Streaming ({} content chunks, {} ms apart, {} concurrent streams)\n", f(st, "/content_chunks"), f(st, "/chunk_delay_ms"), f(st, "/connections")));
        let _ = writeln_str(w, "| | direct p50 / p99 | floor added p50 / p99 | Keyway p50 / p99 | **added p50 / p99** |\n|---|---|---|---|---|");
        for (label, metric, add) in [("time to first byte", "ttfb", "ttfb_us"), ("gap between chunks", "gap", "gap_us"), ("time to last byte", "latency", "ttlb_us")] {
            let floor = |q: &str| if metric == "latency" { "–".to_owned() } else { f(st, &format!("/floor_added_{add}/{q}")) };
            let _ = writeln_str(w, &format!(
                "| {label} | {} / {} | {} / {} | {} / {} | **{} / {}** |",
                f(st, &format!("/direct/{metric}/p50_us")), f(st, &format!("/direct/{metric}/p99_us")),
                floor("p50_us"), floor("p99_us"),
                f(st, &format!("/keyway/{metric}/p50_us")), f(st, &format!("/keyway/{metric}/p99_us")),
                f(st, &format!("/added_{add}/p50_us")), f(st, &format!("/added_{add}/p99_us"))
            ));
        }
        let _ = writeln_str(w, &format!(
            "\nEvents per stream: direct {}, Keyway {} (equal = no chunk lost or merged); smallest gap through Keyway {} µs (a batched chunk would show ~0). Streams: direct {}, Keyway {}; statuses through Keyway: {}.\n",
            f(st, "/direct/events_per_stream"), f(st, "/keyway/events_per_stream"), f(st, "/keyway/gap/min_us"),
            f(st, "/direct/streams"), f(st, "/keyway/streams"), status_counts(&st["keyway"])
        ));
    }
    if r["hold"].is_object() {
        let h = &r["hold"];
        let _ = writeln_str(w, "## 4. Open idle streams held through Keyway (and through the floor)\n");
        let _ = writeln_str(w, "| through | streams asked | opened | still open at end | held s | RSS idle | RSS held (peak) | **RSS per stream** | RSS after close |\n|---|---|---|---|---|---|---|---|---|");
        for (name, h) in [("Keyway", h), ("floor (bare hyper proxy)", &h["floor"])] {
            if !h.is_object() {
                continue;
            }
            let _ = writeln_str(w, &format!(
                "| {name} | {} | {} | {} | {} | {} MB | {} MB | **{} KB** | {} MB |",
                f(h, "/streams"), f(h, "/ready/open"), f(h, "/result/still_open_at_end"), f(h, "/result/held_s"),
                mb(h, "/rss_idle_kb"), mb(h, "/rss_held_peak_kb"), f(h, "/rss_per_stream_kb"), mb(h, "/rss_after_close_kb")
            ));
        }
        let _ = writeln_str(w, "");
    }
    if r["overload"].is_object() {
        let o = &r["overload"];
        let _ = writeln_str(w, "## 5. Overload: open loop at twice the measured max throughput\n");
        let _ = writeln_str(w, "| rate | connections | statuses | answered / sent | Keyway p50 / p99 | RSS before / peak / after | probe after |\n|---|---|---|---|---|---|---|");
        let _ = writeln_str(w, &format!(
            "| {}/s | {} | {} | {} / {} | {} / {} | {} / {} / {} MB | {} in {} ms |\n",
            f(o, "/rate"), f(o, "/connections"), status_counts(&o["keyway"]), f(o, "/keyway/answered"), f(o, "/keyway/sent"),
            f(o, "/keyway/latency/p50_us"), f(o, "/keyway/latency/p99_us"), mb(o, "/rss_before_kb"), mb(o, "/rss_peak_kb"), mb(o, "/rss_after_kb"),
            f(o, "/probe_after_status"), f(o, "/probe_after_ms")
        ));
    }
    if r["usage"].is_object() {
        let u = &r["usage"];
        let _ = writeln_str(
            w,
            &format!(
                "## 6. Usage recording on vs off (closed loop c={}, {} alternating rounds of {} s, {} history rows in each database)\n",
                f(u, "/connections"),
                f(u, "/rounds"),
                f(u, "/secs_per_run"),
                f(u, "/history_rows")
            ),
        );
        let _ = writeln_str(w, "| recording | Keyway req/s (mean) | gateway CPU µs/req (mean) | usage records written |\n|---|---|---|---|");
        for side in ["on", "off"] {
            let _ = writeln_str(w, &format!("| {side} | {} | {} | {} |", f(u, &format!("/{side}/throughput_rps")), f(u, &format!("/{side}/cpu_us_per_request")), f(u, &format!("/{side}/usage_records_written"))));
        }
        let _ = writeln_str(w, &format!(
            "\n**Recording costs {}% of throughput** ((off − on) / off of the means; target < 5%) and {} µs of gateway CPU per request. Round by round: {} % (median {} %).\n",
            f(u, "/throughput_cost_percent"),
            f(u, "/cpu_cost_us_per_request"),
            u["paired_cost_percent"].as_array().map(|a| a.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
            f(u, "/paired_cost_percent_median")
        ));
    }
    if r["compare"].is_object() {
        let c = &r["compare"];
        let _ = writeln_str(w, &format!(
            "## 8. This build vs `--compare` (closed loop c={}, {} alternating rounds of {} s, both gateways fresh)\n",
            f(c, "/connections"), f(c, "/rounds"), f(c, "/secs_per_run")
        ));
        let _ = writeln_str(w, "| build | binary | Keyway req/s (mean) | gateway CPU µs/req (mean) |\n|---|---|---|---|");
        for side in ["this", "other"] {
            let _ = writeln_str(w, &format!("| {side} | `{}` | {} | {} |", c[side]["binary"].as_str().unwrap_or(""), f(c, &format!("/{side}/throughput_rps")), f(c, &format!("/{side}/cpu_us_per_request"))));
        }
        let list = |p: &str| c[p].as_array().map(|a| a.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")).unwrap_or_default();
        let _ = writeln_str(w, &format!(
            "\n**This build minus the other, round by round**: CPU {} µs/request (median **{}**); throughput {} req/s (median {}).\n",
            list("paired_cpu_diff_us"), f(c, "/paired_cpu_diff_us_median"), list("paired_throughput_diff_rps"), f(c, "/paired_throughput_diff_rps_median")
        ));
    }
    if r["litellm"].is_object() {
        let l = &r["litellm"];
        let _ = writeln_str(w, &format!(
            "## 7. Reference: LiteLLM {} (PyPI) in Keyway's place\n\nSame upstream, same core, same load; one worker, its master key checked, no database (so no per-key limits or usage rows: a lighter path than Keyway's). Started in {} s. The open loop runs the three sides interleaved at a rate LiteLLM carries (half its closed-loop maximum).\n",
            f(l, "/version"), f(l, "/startup_s")
        ));
        let _ = writeln_str(w, &format!(
            "| | closed c=64 req/s (ratio to direct) | CPU µs/req | p50 / p99 at c=64 | added p50 / p99 at {}/s | stream added TTFB p50 / p99 | stream added gap p50 | events per stream | RSS idle → end | statuses |\n|---|---|---|---|---|---|---|---|---|---|",
            f(l, "/open/rate")
        ));
        let _ = writeln_str(w, &format!(
            "| direct | {} | – | {} / {} | – | – | – | {} | – | {} |",
            f(l, "/closed/direct/throughput_rps"), f(l, "/closed/direct/latency/p50_us"), f(l, "/closed/direct/latency/p99_us"),
            f(l, "/stream/direct/events_per_stream"), status_counts(&l["closed"]["direct"])
        ));
        for (name, side, idle) in [("Keyway", "keyway", "/rss_idle_kb"), ("LiteLLM", "litellm", "/litellm/litellm_rss_idle_kb")] {
            let _ = writeln_str(w, &format!(
                "| {name} | {} ({:.3}) | **{}** | {} / {} | **{} / {}** | {} / {} | {} | {} | {} → {} MB | {} |",
                f(l, &format!("/closed/{side}/throughput_rps")), pct(l, &format!("/closed/{side}_ratio")),
                f(l, &format!("/closed/{side}/gateway/cpu_us_per_request")),
                f(l, &format!("/closed/{side}/latency/p50_us")), f(l, &format!("/closed/{side}/latency/p99_us")),
                f(l, &format!("/open/{side}_added_latency_us/p50_us")), f(l, &format!("/open/{side}_added_latency_us/p99_us")),
                f(l, &format!("/stream/{side}_added_ttfb_us/p50_us")), f(l, &format!("/stream/{side}_added_ttfb_us/p99_us")),
                f(l, &format!("/stream/{side}_added_gap_us/p50_us")), f(l, &format!("/stream/{side}/events_per_stream")),
                mb(r, idle), mb(l, &format!("/{side}_rss_end_kb")),
                [&l["closed"][side], &l["open"][side], &l["stream"][side]].iter().map(|v| status_counts(v)).collect::<Vec<_>>().join("; ")
            ));
        }
        let _ = writeln_str(w, "\nStatuses: closed; open; stream. Fewer events per stream than direct means chunks merged on the way (a negative added gap with it).\n");
    }
    if r["unpinned"].is_object() {
        let u = &r["unpinned"];
        let _ = writeln_str(w, &format!("## Pinned and unpinned, side by side\n\nUnpinned: {}. Same scenarios, fresh processes. CPU µs per request at c=64; added latencies in µs over direct.\n", f(u, "/pinning")));
        let _ = writeln_str(w, "| | pinned: floor | pinned: Keyway | unpinned: floor | unpinned: Keyway |\n|---|---|---|---|---|");
        let row = |label: &str, floor: &str, kw: &str| {
            format!("| {label} | {} | **{}** | {} | **{}** |", f(r, floor), f(r, kw), f(u, floor), f(u, kw))
        };
        let _ = writeln_str(w, &row("closed c=64: req/s", "/closed/0/floor/throughput_rps", "/closed/0/keyway/throughput_rps"));
        let _ = writeln_str(w, &row("closed c=64: CPU µs/request", "/closed/0/floor/gateway/cpu_us_per_request", "/closed/0/keyway/gateway/cpu_us_per_request"));
        let _ = writeln_str(w, &row("1,000/s: added p50", "/open/0/floor_added_latency_us/p50_us", "/open/0/added_latency_us/p50_us"));
        let _ = writeln_str(w, &row("1,000/s: added p99", "/open/0/floor_added_latency_us/p99_us", "/open/0/added_latency_us/p99_us"));
        let _ = writeln_str(w, &row("1,000/s: CPU µs/request", "/open/0/floor/gateway/cpu_us_per_request", "/open/0/keyway/gateway/cpu_us_per_request"));
        let _ = writeln_str(w, &row("stream: added time to first byte p50", "/stream/floor_added_ttfb_us/p50_us", "/stream/added_ttfb_us/p50_us"));
        let _ = writeln_str(w, &format!(
            "| RSS at the end, then 3 s later | – | {} → {} MB | – | {} → {} MB |\n",
            mb(r, "/rss_end_kb"), mb(r, "/memory_end/rss_kb"), mb(u, "/rss_end_kb"), mb(u, "/memory_end/rss_kb")
        ));
        let _ = writeln_str(w, &format!(
            "Statuses through Keyway, unpinned: closed {}; open {}; stream {}.\n",
            status_counts(&u["closed"][0]["keyway"]), status_counts(&u["open"][0]["keyway"]), status_counts(&u["stream"]["keyway"])
        ));
    }
    if r["memory_end"].is_object() {
        let _ = writeln_str(w, "## Where the gateway's memory is (RSS by mapping, and the allocator's own figures)\n");
        let _ = writeln_str(w, "| | after warm-up | after every run + 3 s | idle again (+95 s: the upstream pool's idle connections closed after 30-60 s) |\n|---|---|---|---|");
        let mut kinds: Vec<String> = Vec::new();
        for p in ["/memory_idle/by_mapping_kb", "/memory_end/by_mapping_kb"] {
            for k in r.pointer(p).and_then(Value::as_object).map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        let kb = |p: String| r.pointer(&p).and_then(Value::as_f64).map(|v| format!("{:.1} MB", v / 1024.0)).unwrap_or_else(|| "–".into());
        for k in &kinds {
            let _ = writeln_str(w, &format!(
                "| {k} | {} | {} | {} |",
                kb(format!("/memory_idle/by_mapping_kb/{k}")), kb(format!("/memory_end/by_mapping_kb/{k}")), kb(format!("/memory_idle_end/by_mapping_kb/{k}"))
            ));
        }
        let _ = writeln_str(w, &format!("| **RSS** | **{} MB** | **{} MB** | **{} MB** |", mb(r, "/memory_idle/rss_kb"), mb(r, "/memory_end/rss_kb"), mb(r, "/memory_idle_end/rss_kb")));
        for a in ["allocated", "active", "resident", "retained", "metadata"] {
            let _ = writeln_str(w, &format!(
                "| jemalloc {a} | {} | {} | {} |",
                kb(format!("/memory_idle/allocator/{a}_kb")), kb(format!("/memory_end/allocator/{a}_kb")), kb(format!("/memory_idle_end/allocator/{a}_kb"))
            ));
        }
        let _ = writeln_str(w, &format!("| threads | {} | {} | {} |\n", f(r, "/memory_idle/threads"), f(r, "/memory_end/threads"), f(r, "/memory_idle_end/threads")));
    }
    let _ = writeln_str(w, &format!("Idle RSS after warm-up: {} MB; at the end: {} MB. Run took {} s.", mb(r, "/rss_idle_kb"), mb(r, "/rss_end_kb"), f(r, "/elapsed_s")));
    m
}

fn mb(v: &Value, p: &str) -> String {
    v.pointer(p).and_then(Value::as_f64).map(|kb| format!("{:.1}", kb / 1024.0)).unwrap_or_else(|| "–".into())
}

fn writeln_str(w: &mut String, s: &str) -> std::fmt::Result {
    use std::fmt::Write as _;
    writeln!(w, "{s}")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let out = rt.block_on(run(args.clone()))?;
    std::fs::create_dir_all(&args.out)?;
    let md = markdown(&out);
    std::fs::write(args.out.join("latest.json"), serde_json::to_string_pretty(&out)?)?;
    std::fs::write(args.out.join("latest.md"), &md)?;
    std::io::stdout().write_all(md.as_bytes())?;
    Ok(())
}
