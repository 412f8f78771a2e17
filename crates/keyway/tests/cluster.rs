//! Several real `keyway serve` processes on one PostgreSQL database (each test's own) and one
//! Redis (each test's own key prefix, or a private redis-server) act as one gateway: limits,
//! balances, cooldowns and changes hold across nodes; Redis and PostgreSQL outages are survived.
//! Needs KEYWAY_TEST_POSTGRES_URL and KEYWAY_TEST_REDIS_URL (scripts/test provides both) and
//! nginx (scripts/test installs it): without them these tests fail rather than skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes, clippy::print_stderr)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const MGMT: &str = "kw-mgmt-cluster-test-0123456789abcdef";

struct Node {
    _proc: Proc,
    url: String,
    log: PathBuf,
}

/// What every node of one test shares.
struct Cluster {
    dir: tempfile::TempDir,
    database_url: String,
    redis_url: String,
    prefix: String,
    master_key: String,
    fake: String,
}

impl Cluster {
    async fn new(fake: &str, redis_url: Option<String>) -> Self {
        let redis_url = redis_url.unwrap_or_else(|| env_url("KEYWAY_TEST_REDIS_URL"));
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: fresh_database("cluster").await,
            redis_url,
            prefix: format!("kwtest-{}", uuid::Uuid::new_v4().simple()),
            master_key: keyway_crypto::MasterKey::generate().to_base64().to_string(),
            fake: fake.to_owned(),
        }
    }

    fn command(&self, n: usize, port: u16, extra: &[(&str, String)]) -> (Command, PathBuf) {
        let data = self.dir.path().join(format!("node{n}"));
        let log = self.dir.path().join(format!("node{n}.log"));
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYWAY_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("KEYWAY_LOG", "info")
            .env("KEYWAY_DATA_DIR", &data)
            .env("KEYWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("KEYWAY_DATABASE_URL", &self.database_url)
            .env("KEYWAY_REDIS_URL", &self.redis_url)
            .env("KEYWAY_CLUSTER__KEY_PREFIX", &self.prefix)
            .env("KEYWAY_MASTER_KEY", &self.master_key)
            .env("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT)
            .env("KEYWAY_PROVIDERS__OPENAI__BASE_URL", format!("{}/v1", self.fake))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        (cmd, log)
    }

    /// Starts `n` nodes at once (they migrate and bootstrap the same database concurrently).
    async fn start(&self, first: usize, n: usize, extra: &[(&str, String)]) -> Vec<Node> {
        let mut pending = Vec::new();
        for i in first..first + n {
            let port = free_port();
            let (mut cmd, log) = self.command(i, port, extra);
            pending.push((Proc(cmd.spawn().unwrap()), format!("http://127.0.0.1:{port}"), log));
        }
        let mut nodes = Vec::new();
        for (proc, url, log) in pending {
            wait_healthy(&url, &log).await;
            nodes.push(Node { _proc: proc, url, log });
        }
        nodes
    }
}

async fn wait_healthy(url: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{url}/health")).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keyway serve did not come up: {}", std::fs::read_to_string(log).unwrap_or_default());
}

async fn mgmt(http: &reqwest::Client, method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(MGMT);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create_key(http: &reqwest::Client, node: &Node, body: Value) -> (String, String) {
    let (s, v) = mgmt(http, reqwest::Method::POST, format!("{}/api/v1/keys", node.url), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    (v["key"].as_str().unwrap().to_owned(), v["data"]["hash"].as_str().unwrap().to_owned())
}

async fn create_byok(http: &reqwest::Client, node: &Node, body: Value) -> String {
    let (s, v) = mgmt(http, reqwest::Method::POST, format!("{}/api/v1/byok", node.url), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["data"]["id"].as_str().unwrap().to_owned()
}

fn chat_body(max_tokens: u64) -> Value {
    json!({"model": "openai/gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

async fn chat(http: &reqwest::Client, node: &str, key: &str) -> reqwest::Response {
    http.post(format!("{node}/v1/chat/completions")).bearer_auth(key).json(&chat_body(16)).send().await.unwrap()
}

/// Sends `per_node` requests to each node at once; returns the statuses and the generation ids
/// of the answered ones with the node that answered.
async fn burst(http: &reqwest::Client, nodes: &[&str], key: &str, per_node: usize, body: Value) -> (Vec<u16>, Vec<(String, String)>) {
    let mut tasks = Vec::new();
    for node in nodes {
        for _ in 0..per_node {
            let (http, node, key, body) = (http.clone(), node.to_string(), key.to_owned(), body.clone());
            tasks.push(tokio::spawn(async move {
                let r = http.post(format!("{node}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
                let id = r.headers().get("x-keyway-generation-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let status = r.status().as_u16();
                (status, id.filter(|_| status == 200).map(|id| (node, id)))
            }));
        }
    }
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for t in tasks {
        let (s, id) = t.await.unwrap();
        statuses.push(s);
        ids.extend(id);
    }
    (statuses, ids)
}

fn count(statuses: &[u16], s: u16) -> usize {
    statuses.iter().filter(|x| **x == s).count()
}

/// Polls `node` with `key` until the answer's status is `want`; returns how long it took.
async fn time_until(http: &reqwest::Client, node: &str, key: &str, want: impl Fn(u16) -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if want(chat(http, node, key).await.status().as_u16()) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the change never reached {node}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_act_as_one_gateway() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let c = Cluster::new(&fake.url(), None).await;
    let extra = [
        // The default workspace (slug `default`): 20 a minute for all its keys; others unlimited.
        ("KEYWAY_LIMITS__WORKSPACES__DEFAULT__REQUESTS_PER_MINUTE", "20".to_owned()),
        ("KEYWAY_BILLING__CREDITS_ENABLED", "true".to_owned()),
        ("KEYWAY_BILLING__BYOK_FEE_PERCENT", "100".to_owned()),
        ("KEYWAY_BILLING__BYOK_FREE_REQUESTS_PER_MONTH", "0".to_owned()),
    ];
    // Started together: migrations and the first-start bootstrap must not race.
    let nodes = c.start(0, 3, &extra).await;
    let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    let http = reqwest::Client::new();
    let (s, _) = mgmt(&http, reqwest::Method::POST, format!("{}/api/v1/credits", urls[0]), Some(json!({"amount_micros": 1_000_000_000}))).await;
    assert_eq!(s, 201);
    create_byok(&http, &nodes[0], json!({"provider": "openai", "key": "sk-cluster-main-0000AbCd"})).await;

    // Per key: 10 a minute, 30 sent across three nodes at once.
    let (key, _) = create_key(&http, &nodes[1], json!({"name": "rpm10", "limits": {"requests_per_minute": 10}})).await;
    let (statuses, mut generations) = burst(&http, &urls, &key, 10, chat_body(16)).await;
    let key_admitted = count(&statuses, 200);
    eprintln!("per key: limit 10 (burst 10), 30 sent over 3 nodes, admitted {key_admitted}, refused {}", count(&statuses, 429));
    assert!((10..=11).contains(&key_admitted), "{statuses:?}");
    assert_eq!(count(&statuses, 200) + count(&statuses, 429), 30, "{statuses:?}");

    // Per workspace: 20 a minute for all its keys; the first key took 10 of them.
    let (k2, _) = create_key(&http, &nodes[2], json!({"name": "free-a"})).await;
    let (k3, _) = create_key(&http, &nodes[0], json!({"name": "free-b"})).await;
    let (s2, g2) = burst(&http, &urls, &k2, 10, chat_body(16)).await;
    let (s3, g3) = burst(&http, &urls, &k3, 10, chat_body(16)).await;
    let ws_admitted = key_admitted + count(&s2, 200) + count(&s3, 200);
    eprintln!("per workspace: limit 20 (burst 20), 70 sent over 3 nodes, admitted {ws_admitted}");
    assert!((20..=21).contains(&ws_admitted), "{s2:?} {s3:?}");
    generations.extend(g2);
    generations.extend(g3);

    // Every node's generations are readable from every node (the usage writer batches).
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, (node, id)) in generations.iter().enumerate() {
        let other = urls[(urls.iter().position(|u| u == node).unwrap() + 1 + i % 2) % urls.len()];
        loop {
            let (s, v) = mgmt(&http, reqwest::Method::GET, format!("{other}/api/v1/generation?id={id}"), None).await;
            if s == 200 {
                assert_eq!(v["data"]["id"], *id);
                break;
            }
            assert!(Instant::now() < deadline, "generation {id} from {node} not visible from {other}: {s} {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    changes_reach_every_node_within_a_second(&http, &nodes).await;
    cooldowns_are_shared(&http, &nodes, &fake).await;
    credits_are_never_overspent(&http, &nodes).await;
}

async fn changes_reach_every_node_within_a_second(http: &reqwest::Client, nodes: &[Node]) {
    let (a, b) = (&nodes[0].url, &nodes[1].url);
    let mut worst = Duration::ZERO;
    // Its own workspace: the default one's rate limit is spent by now.
    let ws = {
        let (s, v) = mgmt(http, reqwest::Method::POST, format!("{a}/api/v1/workspaces"), Some(json!({"name": "invalidation"}))).await;
        assert_eq!(s, 201, "{v}");
        v["data"]["id"].as_str().unwrap().to_owned()
    };
    let (s, _) = mgmt(http, reqwest::Method::POST, format!("{a}/api/v1/credits"), Some(json!({"amount_micros": 1_000_000_000, "workspace_id": ws}))).await;
    assert_eq!(s, 201);
    let cred = create_byok(http, &nodes[0], json!({"provider": "openai", "key": "sk-cluster-ws-0000AbCd", "workspace_id": ws})).await;
    for round in 0..5 {
        // A key, cached on B, disabled through A; then deleted.
        let (key, hash) = create_key(http, &nodes[round % 3], json!({"name": format!("inv-{round}"), "workspace_id": ws})).await;
        assert_eq!(chat(http, b, &key).await.status(), 200);
        let (s, _) = mgmt(http, reqwest::Method::PATCH, format!("{a}/api/v1/keys/{hash}"), Some(json!({"disabled": true}))).await;
        assert_eq!(s, 200);
        worst = worst.max(time_until(http, b, &key, |s| s == 401).await);
        let (s, _) = mgmt(http, reqwest::Method::PATCH, format!("{a}/api/v1/keys/{hash}"), Some(json!({"disabled": false}))).await;
        assert_eq!(s, 200);
        worst = worst.max(time_until(http, b, &key, |s| s == 200).await);
        let (s, _) = mgmt(http, reqwest::Method::DELETE, format!("{a}/api/v1/keys/{hash}"), None).await;
        assert_eq!(s, 200);
        worst = worst.max(time_until(http, b, &key, |s| s == 401).await);
    }
    // A credential, cached on B, disabled through A: B stops using it.
    let (wkey, _) = create_key(http, &nodes[0], json!({"name": "inv-ws", "workspace_id": ws})).await;
    assert_eq!(chat(http, b, &wkey).await.status(), 200);
    let (s, _) = mgmt(http, reqwest::Method::PATCH, format!("{a}/api/v1/byok/{cred}"), Some(json!({"disabled": true}))).await;
    assert_eq!(s, 200);
    worst = worst.max(time_until(http, b, &wkey, |s| s != 200).await);
    eprintln!("invalidation across nodes: worst {worst:?} over 16 changes");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
}

async fn cooldowns_are_shared(http: &reqwest::Client, nodes: &[Node], fake: &keyway_fakes::server::FakeServer) {
    let (a, b) = (&nodes[0].url, &nodes[2].url);
    let (s, v) = mgmt(http, reqwest::Method::POST, format!("{a}/api/v1/workspaces"), Some(json!({"name": "cooldown"}))).await;
    assert_eq!(s, 201, "{v}");
    let ws = v["data"]["id"].as_str().unwrap().to_owned();
    let (s, _) = mgmt(http, reqwest::Method::POST, format!("{a}/api/v1/credits"), Some(json!({"amount_micros": 1_000_000_000, "workspace_id": ws}))).await;
    assert_eq!(s, 201);
    let first = "sk-cluster-cool-first-0000AbCd";
    let second = "sk-cluster-cool-second-0000AbCd";
    create_byok(http, &nodes[0], json!({"provider": "openai", "key": first, "workspace_id": ws, "sort_order": 0})).await;
    let second_id = create_byok(http, &nodes[0], json!({"provider": "openai", "key": second, "workspace_id": ws, "sort_order": 1})).await;
    let (key, _) = create_key(http, &nodes[0], json!({"name": "cool", "workspace_id": ws})).await;
    fake.set_fault_for_key(first, keyway_fakes::server::Fault::RateLimit { retry_after_secs: 120 });
    // A learns the 429 (Retry-After: 120) and falls back to the second key.
    let r = chat(http, a, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keyway-credential"], second_id.as_str());
    let calls = fake.calls_with_key(first);
    assert!(calls >= 1);
    // B never tried the first key yet; it goes straight to the second one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let r = chat(http, b, &key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-keyway-credential"], second_id.as_str());
    }
    assert_eq!(fake.calls_with_key(first), calls, "node B called the key node A saw rate-limited");
    fake.clear_faults();
}

async fn credits_are_never_overspent(http: &reqwest::Client, nodes: &[Node]) {
    let a = &nodes[0].url;
    let (s, v) = mgmt(http, reqwest::Method::POST, format!("{a}/api/v1/workspaces"), Some(json!({"name": "credits"}))).await;
    assert_eq!(s, 201, "{v}");
    let ws = v["data"]["id"].as_str().unwrap().to_owned();
    let credits: i64 = 3000;
    let (s, _) = mgmt(http, reqwest::Method::POST, format!("{a}/api/v1/credits"), Some(json!({"amount_micros": credits, "workspace_id": ws}))).await;
    assert_eq!(s, 201);
    create_byok(http, &nodes[1], json!({"provider": "openai", "key": "sk-cluster-credits-0000AbCd", "workspace_id": ws})).await;
    let (key, _) = create_key(http, &nodes[2], json!({"name": "credits", "workspace_id": ws})).await;
    let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    // ~400 tokens in and out: each costs ~300 micros and holds ~630 while it runs, so the
    // balance runs out over a few waves of concurrent requests on every node.
    let body = json!({"model": "openai/gpt-4o-mini", "max_tokens": 1000, "messages": [{"role": "user", "content": "w ".repeat(400)}]});
    let (mut statuses, mut ids) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (s, i) = burst(http, &urls, &key, 7, body.clone()).await;
        statuses.extend(s);
        ids.extend(i);
        // The real charges reach the shared balance just after the answers.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(count(&statuses, 402) > 0 && !ids.is_empty(), "{statuses:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut charged = 0;
    for (_, id) in &ids {
        loop {
            let (s, v) = mgmt(http, reqwest::Method::GET, format!("{a}/api/v1/generation?id={id}"), None).await;
            if s == 200 {
                charged += v["data"]["fee_micros"].as_i64().unwrap();
                break;
            }
            assert!(Instant::now() < deadline, "generation {id} not recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!("credits: {credits} micros, 5 waves of 21 requests over 3 nodes: {} admitted, charged {charged}, overspend {}", ids.len(), (charged - credits).max(0));
    assert!(charged <= credits, "overspent: charged {charged} of {credits}");
    assert!(charged > credits / 2, "the balance was not used up, so nothing was tested: {charged} of {credits}");
}

/// A private redis-server on an ephemeral port (this test stops and restarts it).
fn redis_server(port: u16, dir: &Path) -> Proc {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/test installs it)");
    Proc(child)
}

async fn wait_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("port {port} never opened");
}

async fn metric(http: &reqwest::Client, node: &str, name: &str) -> Option<f64> {
    let text = http.get(format!("{node}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' ')).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn wait_metric(http: &reqwest::Client, node: &str, name: &str, want: f64) {
    let t0 = Instant::now();
    while metric(http, node, name).await != Some(want) {
        assert!(t0.elapsed() < Duration::from_secs(10), "{name} never became {want} on {node}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_fails_open_then_shared_counting_resumes() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let port = free_port();
    let rdir = tempfile::tempdir().unwrap();
    let mut redis = Some(redis_server(port, rdir.path()));
    wait_port(port).await;
    let c = Cluster::new(&fake.url(), Some(format!("redis://127.0.0.1:{port}"))).await;
    let mut nodes = c.start(0, 2, &[]).await;
    nodes.extend(c.start(2, 1, &[("KEYWAY_CLUSTER__FAIL_CLOSED", "true".to_owned())]).await);
    let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    let open = &urls[..2];
    let http = reqwest::Client::new();
    for u in &urls {
        wait_metric(&http, u, "keyway_shared_up", 1.0).await;
    }
    create_byok(&http, &nodes[0], json!({"provider": "openai", "key": "sk-cluster-redis-0000AbCd"})).await;
    let (key, _) = create_key(&http, &nodes[0], json!({"name": "r1", "limits": {"requests_per_minute": 5}})).await;
    let (s, _) = burst(&http, open, &key, 5, chat_body(16)).await;
    assert_eq!(count(&s, 200), 5, "shared before the outage: {s:?}");

    drop(redis.take());
    let (key2, _) = create_key(&http, &nodes[0], json!({"name": "r2", "limits": {"requests_per_minute": 5}})).await;
    let t0 = Instant::now();
    let (s, _) = burst(&http, open, &key2, 8, chat_body(16)).await;
    let took = t0.elapsed();
    // Each node admits on its own counters: 5 each.
    eprintln!("Redis down: 16 sent to 2 fail-open nodes (limit 5 each, per node): admitted {} in {took:?}", count(&s, 200));
    assert_eq!(count(&s, 200), 10, "{s:?}");
    assert_eq!(count(&s, 429), 6, "{s:?}");
    let (closed_key, _) = create_key(&http, &nodes[0], json!({"name": "r3", "limits": {"requests_per_minute": 5}})).await;
    let r = chat(&http, urls[2], &closed_key).await;
    assert_eq!(r.status(), 503, "fail_closed node while Redis is down");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    // Unlimited keys need no shared counter: served by the fail-closed node too.
    let (free, _) = create_key(&http, &nodes[0], json!({"name": "free"})).await;
    assert_eq!(chat(&http, urls[2], &free).await.status(), 200);
    assert!(metric(&http, urls[0], "keyway_shared_unavailable_total").await.unwrap_or(0.0) >= 1.0);
    assert_eq!(metric(&http, urls[0], "keyway_shared_up").await, Some(0.0));
    assert!(std::fs::read_to_string(&nodes[0].log).unwrap().contains("Redis unreachable"));

    redis = Some(redis_server(port, rdir.path()));
    wait_port(port).await;
    let t0 = Instant::now();
    for u in &urls {
        wait_metric(&http, u, "keyway_shared_up", 1.0).await;
    }
    eprintln!("Redis back: shared counting resumed on every node after {:?}", t0.elapsed());
    let (key4, _) = create_key(&http, &nodes[0], json!({"name": "r4", "limits": {"requests_per_minute": 5}})).await;
    let (s, _) = burst(&http, &urls, &key4, 5, chat_body(16)).await;
    assert_eq!(count(&s, 200), 5, "shared again after the restart: {s:?}");
    drop(redis);
}

/// A TCP relay to PostgreSQL that the test can cut and restore.
struct Relay {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let (c, cs) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if c.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                cs.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        Self { port, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_nginx_and_through_a_postgres_outage() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let mut c = Cluster::new(&fake.url(), None).await;
    let direct = c.database_url.clone();
    let nodes = c.start(0, 1, &[]).await;
    // The second node reaches PostgreSQL through a relay the test cuts.
    let pg = direct.split('@').nth(1).unwrap().split('/').next().unwrap().to_owned();
    let relay = Relay::start(pg.clone()).await;
    c.database_url = direct.replace(&pg, &format!("127.0.0.1:{}", relay.port));
    let mut nodes = nodes;
    nodes.extend(c.start(1, 1, &[]).await);
    let http = reqwest::Client::new();

    // nginx in front of both.
    let nginx_port = free_port();
    let ndir = c.dir.path().join("nginx");
    std::fs::create_dir_all(ndir.join("logs")).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream keyway {{ server {a}; server {b}; keepalive 16; }}\n\
         server {{ listen 127.0.0.1:{p};\n    location / {{ proxy_pass http://keyway; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; proxy_set_header X-Forwarded-For $remote_addr; }} }}\n}}\n",
        d = ndir.display(),
        a = nodes[0].url.trim_start_matches("http://"),
        b = nodes[1].url.trim_start_matches("http://"),
        p = nginx_port
    );
    std::fs::write(ndir.join("nginx.conf"), conf).unwrap();
    let nginx_bin = ["/usr/sbin/nginx", "nginx"].into_iter().find(|b| Command::new(b).arg("-v").stderr(Stdio::null()).status().is_ok()).expect("nginx (scripts/test installs nginx-light)");
    let _nginx = Proc(Command::new(nginx_bin).arg("-p").arg(&ndir).arg("-c").arg(ndir.join("nginx.conf")).stderr(Stdio::null()).spawn().unwrap());
    wait_port(nginx_port).await;
    let lb = format!("http://127.0.0.1:{nginx_port}");
    create_byok(&http, &nodes[0], json!({"provider": "openai", "key": "sk-cluster-lb-0000AbCd"})).await;
    let (key, _) = create_key(&http, &nodes[0], json!({"name": "lb", "limits": {"requests_per_minute": 10}})).await;
    let (s, _) = burst(&http, &[lb.as_str()], &key, 30, chat_body(16)).await;
    eprintln!("behind nginx (2 nodes): limit 10, 30 sent, admitted {}", count(&s, 200));
    assert!((10..=11).contains(&count(&s, 200)), "{s:?}");

    // PostgreSQL out of reach for node 1: inference on cached keys goes on, management is 503.
    let (k2, _) = create_key(&http, &nodes[0], json!({"name": "pg"})).await;
    let n1 = nodes[1].url.clone();
    assert_eq!(chat(&http, &n1, &k2).await.status(), 200);
    relay.cut();
    for _ in 0..5 {
        assert_eq!(chat(&http, &n1, &k2).await.status(), 200, "inference needs no database round trip");
    }
    let t0 = Instant::now();
    let (s, v) = mgmt(&http, reqwest::Method::POST, format!("{n1}/api/v1/keys"), Some(json!({"name": "during-outage"}))).await;
    eprintln!("PostgreSQL cut: management answered {s} in {:?}", t0.elapsed());
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], 503, "{v}");
    relay.restore();
    let t0 = Instant::now();
    loop {
        let (s, v) = mgmt(&http, reqwest::Method::POST, format!("{n1}/api/v1/keys"), Some(json!({"name": "after-outage"}))).await;
        if s == 201 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "management never recovered: {s} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing half-written: only the key created after the outage exists.
    let (_, list) = mgmt(&http, reqwest::Method::GET, format!("{}/api/v1/keys", nodes[0].url), None).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|k| k["name"].as_str()).collect();
    assert!(!names.contains(&"during-outage") && names.contains(&"after-outage"), "{names:?}");
}
