//! The CLI against a real `keyway serve` (the built binary) in front of the OpenAI fake.
// Test helpers outside #[test] fns: failing loudly is their job. Children are killed and
// waited for in `Server::drop`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::zombie_processes)]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const MGMT: &str = "kw-mgmt-cli-test-0123456789abcdef0123";
const SECRET: &str = "sk-cli-test-secret-value-0000000000AbCd";

fn base_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("KEYWAY_LOG", "warn")
}

async fn start(data: &Path, fake: &str) -> Server {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    base_env(&mut cmd)
        .args(["serve", "--data-dir"])
        .arg(data)
        .env("KEYWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT)
        .env("KEYWAY_PROVIDERS__OPENAI__BASE_URL", format!("{fake}/v1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{url}/health")).await.is_ok_and(|r| r.status().is_success()) {
            return Server::new(child, url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keyway serve did not come up");
}

/// Runs the CLI off the async runtime (the fake serves on it meanwhile).
async fn cli(url: &str, key: &str, args: &[&str]) -> Output {
    let (url, key) = (url.to_owned(), key.to_owned());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        base_env(&mut cmd).env("KEYWAY_URL", url).env("KEYWAY_MANAGEMENT_KEY", key).env("CLI_TEST_SECRET", SECRET).args(&args);
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "command failed: {}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_round_trip_through_the_management_api() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data, &fake.url()).await;
    let url = server.url.clone();

    // byok add/list/show/update/test
    let added = json(&cli(&url, MGMT, &["byok", "add", "--provider", "openai", "--name", "cli-key", "--key-env", "CLI_TEST_SECRET", "-o", "json"]).await);
    let id = added["data"]["id"].as_str().unwrap().to_owned();
    let list = cli(&url, MGMT, &["byok", "list"]).await;
    let out = text(&list);
    assert!(list.status.success() && out.contains("cli-key") && out.contains("AbCd"), "{out}");
    assert!(!out.contains(SECRET));
    assert_eq!(json(&cli(&url, MGMT, &["byok", "show", &id, "-o", "json"]).await)["data"]["name"], "cli-key");
    let upd = json(&cli(&url, MGMT, &["byok", "update", &id, "--name", "renamed", "--sort-order", "3", "-o", "json"]).await);
    assert_eq!(upd["data"]["name"], "renamed");
    let tested = cli(&url, MGMT, &["byok", "test", &id]).await;
    assert!(tested.status.success(), "{}", text(&tested));
    assert!(fake.calls_with_key(SECRET) >= 1, "the test call used the stored key");

    // keys create/list/rm
    let created = json(&cli(&url, MGMT, &["keys", "create", "--name", "app", "--rpm", "60", "-o", "json"]).await);
    let raw = created["key"].as_str().unwrap();
    let hash = created["data"]["hash"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("kw-"));
    let keys = text(&cli(&url, MGMT, &["keys", "list"]).await);
    assert!(keys.contains("app") && keys.contains(&hash) && !keys.contains(raw), "{keys}");
    assert!(cli(&url, MGMT, &["keys", "rm", &hash]).await.status.success());
    assert!(!text(&cli(&url, MGMT, &["keys", "list"]).await).contains(&hash));

    // the audit log shows what was just done, never the secret
    let audit = cli(&url, MGMT, &["audit", "--action", "byok.create"]).await;
    assert!(audit.status.success() && text(&audit).contains("byok.create") && text(&audit).contains("bootstrap"), "{}", text(&audit));
    assert!(!text(&cli(&url, MGMT, &["audit", "-o", "json"]).await).contains(SECRET));

    // usage (credits + activity)
    let usage = cli(&url, MGMT, &["usage"]).await;
    assert!(usage.status.success(), "{}", text(&usage));

    // export (metadata only) -> rm -> import with a secret reference
    let file = dir.path().join("export.json");
    let exp = cli(&url, MGMT, &["export", "-f", file.to_str().unwrap()]).await;
    assert!(exp.status.success(), "{}", text(&exp));
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(exported.contains("renamed") && !exported.contains(SECRET), "{exported}");
    assert!(cli(&url, MGMT, &["byok", "rm", &id]).await.status.success());
    let refused = cli(&url, MGMT, &["import", file.to_str().unwrap()]).await;
    assert!(!refused.status.success() && text(&refused).contains("no secret for: renamed"), "{}", text(&refused));
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"renamed": "env:CLI_TEST_SECRET"}"#).unwrap();
    let imp = cli(&url, MGMT, &["import", file.to_str().unwrap(), "--secrets", secrets.to_str().unwrap()]).await;
    assert!(imp.status.success(), "{}", text(&imp));
    let after = json(&cli(&url, MGMT, &["byok", "list", "-o", "json"]).await);
    assert_eq!(after["total_count"], 1);
    assert_eq!(after["data"][0]["sort_order"], 3);
    let new_id = after["data"][0]["id"].as_str().unwrap().to_owned();

    // wrong key: a clear error, non-zero exit, no secret echoed
    let bad = cli(&url, "kw-mgmt-wrong-000000000000000000000", &["byok", "list"]).await;
    assert!(!bad.status.success() && text(&bad).contains("401"), "{}", text(&bad));

    // rotate-master-key: stop, rotate, restart, the stored secret still opens
    drop(server);
    let root = std::fs::read_to_string(data.join("master.key")).unwrap();
    let rot = rotate(&data, &[]).await;
    assert!(rot.status.success(), "{}", text(&rot));
    assert!(text(&rot).contains("re-wrapped 1 secret"), "{}", text(&rot));
    assert_eq!(std::fs::read_to_string(data.join("master.key")).unwrap(), root, "the root key is not changed by a rotation");
    assert!(!data.join("master.key.new").exists() && !data.join("master.key.old").exists(), "no side files");
    let server = start(&data, &fake.url()).await;
    let tested = cli(&server.url, MGMT, &["byok", "test", &new_id, "-o", "json"]).await;
    assert_eq!(json(&tested)["ok"], true, "{}", text(&tested));
}

async fn rotate(data: &Path, env: &[(&str, &str)]) -> Output {
    let data = data.to_owned();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || base_env(&mut Command::new(BIN)).args(["rotate-master-key", "--data-dir"]).arg(&data).envs(env).output().unwrap())
        .await
        .unwrap()
}

/// Issue #20, defect 1, as reported: a rotation that fails on a damaged row, with the master key
/// in a file and then in KEYWAY_MASTER_KEY. Before the keyring, the rows re-sealed before the
/// failure sat under a key that `serve` never loaded (file) or that was never written anywhere
/// (environment), and inference answered 404 after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_fails_on_a_bad_row_loses_no_secret() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let master = keyway_crypto::MasterKey::generate().to_base64();
    for from_env in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut env = vec![("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT), ("KEYWAY_PROVIDERS__OPENAI__BASE_URL", base.as_str())];
        if from_env {
            env.push(("KEYWAY_MASTER_KEY", master.as_str()));
        }
        let server = serve_logged(&data, &dir.path().join("1.log"), &env).await;
        let good = json(&cli(&server.url, MGMT, &["byok", "add", "--provider", "openai", "--name", "good", "--key-env", "CLI_TEST_SECRET", "-o", "json"]).await);
        let good = good["data"]["id"].as_str().unwrap().to_owned();
        let bad = json(&cli(&server.url, MGMT, &["byok", "add", "--provider", "openai", "--name", "bad", "--key-env", "CLI_TEST_SECRET", "--sort-order", "5", "-o", "json"]).await);
        let bad = bad["data"]["id"].as_str().unwrap().to_owned();
        let app = json(&cli(&server.url, MGMT, &["keys", "create", "--name", "app", "-o", "json"]).await)["key"].as_str().unwrap().to_owned();
        drop(server);

        // Damage the bad row's sealed value (one byte of its wrapped data key).
        let url = format!("sqlite://{}", data.join("keyway.db").display());
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let (sealed,): (String,) = sqlx::query_as("SELECT sealed FROM byok_credentials WHERE id = $1").bind(&bad).fetch_one(&pool).await.unwrap();
        let mut parts: Vec<String> = sealed.split('.').map(str::to_owned).collect();
        let last = parts[2].pop().unwrap();
        parts[2].push(if last == 'A' { 'B' } else { 'A' });
        sqlx::query("UPDATE byok_credentials SET sealed = $1 WHERE id = $2").bind(parts.join(".")).bind(&bad).execute(&pool).await.unwrap();
        pool.close().await;

        let rot = rotate(&data, &env).await;
        assert!(!rot.status.success(), "a row that can't be opened is an error: {}", text(&rot));
        assert!(text(&rot).contains(&bad) && !text(&rot).contains(&good), "the bad row is named by id: {}", text(&rot));
        assert!(!text(&rot).contains(SECRET) && !text(&rot).contains(master.as_str()));

        // Restart with exactly what the operator had before: inference still uses the good key.
        let server = serve_logged(&data, &dir.path().join("2.log"), &env).await;
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(&app)
            .json(&serde_json::json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "from_env={from_env}: {}", r.text().await.unwrap_or_default());
        assert_eq!(r.headers()["x-keyway-credential"], good.as_str());
        // The operator removes the damaged credential; running the rotation again finishes it.
        assert!(cli(&server.url, MGMT, &["byok", "rm", &bad]).await.status.success());
        drop(server);
        let again = rotate(&data, &env).await;
        assert!(again.status.success() && text(&again).contains("Resumed"), "{}", text(&again));
        let server = serve_logged(&data, &dir.path().join("3.log"), &env).await;
        let tested = cli(&server.url, MGMT, &["byok", "test", &good, "-o", "json"]).await;
        assert_eq!(json(&tested)["ok"], true, "{}", text(&tested));
    }
}

#[test]
fn help_and_completions() {
    for args in [&["--help"][..], &["byok", "--help"], &["byok", "add", "--help"], &["keys", "create", "--help"], &["usage", "--help"], &["import", "--help"]] {
        let o = base_env(&mut Command::new(BIN)).args(args).output().unwrap();
        assert!(o.status.success() && !o.stdout.is_empty(), "{args:?}");
    }
    let o = base_env(&mut Command::new(BIN)).args(["completions", "bash"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("_keyway"));
    // API commands without a management key say what to set.
    let o = base_env(&mut Command::new(BIN)).args(["byok", "list"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("KEYWAY_MANAGEMENT_KEY"));
}

#[test]
fn demo_once_shows_a_fallback_and_exits() {
    let o = base_env(&mut Command::new(BIN)).args(["demo", "--once"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("openai primary 429 -> openai backup 200"), "{out}");
    assert!(out.contains("bedrock (IAM)"), "{out}");
    assert!(out.contains("Management key: kw-mgmt-"), "{out}");
    assert!(!out.contains(" 502 ") && !out.contains(" 500 "), "{out}");

    // The table, row by row: "#  request  status  served-by  credential  attempts  tokens  cost".
    let row = |n: usize| -> Vec<String> {
        let line = out.lines().find(|l| l.starts_with(&format!("{n}  "))).unwrap_or_else(|| panic!("no row {n} in\n{out}"));
        line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    };
    let header: Vec<&str> = out.lines().find(|l| l.starts_with("#  ")).unwrap().split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header.last(), Some(&"COST"), "{out}");
    for n in 1..=6 {
        let r = row(n);
        assert_eq!(r.len(), header.len(), "row {n}: {r:?}");
        assert_eq!(r[2], "200", "row {n}: {r:?}");
        // Every request has a cost, in dollars, and the chat ones a non-zero one.
        let cost = r.last().unwrap();
        let dollars: f64 = cost.strip_prefix('$').unwrap_or_else(|| panic!("row {n} cost {cost:?}")).parse().unwrap();
        if n <= 5 {
            assert!(dollars > 0.0, "row {n} costs nothing: {r:?}");
        }
    }
    // Request 2: the rate-limited key is cooling, so it is not tried at all.
    assert_eq!(row(2)[4], "openai backup");
    assert_eq!(row(2)[5], "openai backup 200", "request 2 must skip the cooling key: {:?}", row(2));
    // Request 4: Claude through the BYOK Bedrock key, before the operator's Anthropic key.
    assert_eq!(row(4)[3], "amazon-bedrock");
    assert_eq!(row(4)[4], "bedrock (IAM)");
    // Request 5: provider.only=anthropic leaves the system Anthropic key.
    assert_eq!((row(5)[3].as_str(), row(5)[4].as_str()), ("anthropic", "system"));
    // The closing notes are derived from these results.
    assert!(out.contains("Request 1: `openai primary` answered 429; Keyway fell back to `openai backup`"), "{out}");
    assert!(out.contains("Request 2: `openai primary` is cooling down"), "{out}");
    assert!(out.contains("Request 4: your BYOK key `bedrock (IAM)` on amazon-bedrock"), "{out}");
    assert!(!out.contains("Request 3: `openai primary` is cooling"), "said once: {out}");
    // No dashboard is promised; the URLs printed are ones that answer.
    assert!(!out.to_lowercase().contains("dashboard:"), "{out}");
    assert!(out.contains("/metrics") && out.contains("/v1/models"), "{out}");
}

#[test]
fn migrate_on_a_fresh_dir_creates_the_schema_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = base_env(&mut Command::new(BIN)).args(["migrate", "--data-dir"]).arg(&data).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Database schema is up to date"), "{out}");
    assert!(!out.contains("kw-mgmt-"), "migrate must not bootstrap a management key: {out}");
    assert!(data.join("keyway.db").exists());
    assert!(!data.join("master.key").exists(), "migrate must not create a master key");
    // Again: nothing to do, same answer.
    let again = base_env(&mut Command::new(BIN)).args(["migrate", "--data-dir"]).arg(&data).output().unwrap();
    assert!(again.status.success() && text(&again).contains("up to date"), "{}", text(&again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_after_migrate_still_bootstraps_and_exports_traces_on_shutdown() {
    use std::sync::{Arc, Mutex};
    // A collector: counts POST /v1/traces bodies.
    let got: Arc<Mutex<Vec<usize>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body.len());
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = base_env(&mut Command::new(BIN)).args(["migrate", "--data-dir"]).arg(&data).output().unwrap();
    assert!(m.status.success(), "{}", text(&m));
    let log = dir.path().join("serve.log");
    let port = free_port();
    let mut cmd = Command::new(BIN);
    base_env(&mut cmd)
        .env("KEYWAY_LOG", "info")
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env("KEYWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYWAY_PROVIDERS__OPENAI__BASE_URL", format!("{}/v1", fake.url()))
        .env("KEYWAY_TELEMETRY__OTLP_ENDPOINT", &collector)
        // No scheduled export during the test: whatever arrives, the shutdown flush sent.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut server = Server::new(cmd.spawn().unwrap(), format!("http://127.0.0.1:{port}"));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http.get(format!("{}/health", server.url)).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first serve after migrate is still the first start: it printed the management key.
    let logged = std::fs::read_to_string(&log).unwrap();
    let mgmt = logged.split_whitespace().find(|w| w.starts_with("kw-mgmt-")).unwrap_or_else(|| panic!("no management key printed:\n{logged}")).to_owned();
    assert!(logged.contains("exporting traces over OTLP/HTTP"), "{logged}");
    let key: Value = http.post(format!("{}/api/v1/keys", server.url)).bearer_auth(&mgmt).json(&serde_json::json!({"name": "otel"})).send().await.unwrap().json().await.unwrap();
    let key = key["key"].as_str().unwrap_or_else(|| panic!("{key}")).to_owned();
    let byok = http
        .post(format!("{}/api/v1/byok", server.url))
        .bearer_auth(&mgmt)
        .json(&serde_json::json!({"provider": "openai", "key": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(byok.status(), 201);
    let r = http
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(&key)
        .json(&serde_json::json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "trace"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(got.lock().unwrap().is_empty(), "nothing exported before shutdown (schedule delay 10 min)");
    // SIGTERM: the server drains and flushes its spans before it exits.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies = got.lock().unwrap().clone();
    assert!(!bodies.is_empty() && bodies.iter().all(|n| *n > 0), "no spans reached the collector on shutdown: {bodies:?}");
    assert!(!std::fs::read_to_string(&log).unwrap().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_request_line_with_the_generation_id() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let port = free_port();
    let mut cmd = Command::new(BIN);
    base_env(&mut cmd)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("KEYWAY_LOG", "info")
        .env("KEYWAY_LOG_FORMAT", "json")
        .env("KEYWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT)
        .env("KEYWAY_PROVIDERS__OPENAI__BASE_URL", format!("{}/v1", fake.url()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let server = Server::new(cmd.spawn().unwrap(), format!("http://127.0.0.1:{port}"));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http.get(format!("{}/health", server.url)).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let byok = serde_json::json!({"provider": "openai", "name": "k", "key": SECRET});
    http.post(format!("{}/api/v1/byok", server.url)).bearer_auth(MGMT).json(&byok).send().await.unwrap();
    // Management keys can't call models: an inference key for the app.
    let created: serde_json::Value =
        http.post(format!("{}/api/v1/keys", server.url)).bearer_auth(MGMT).json(&serde_json::json!({"name": "app"})).send().await.unwrap().json().await.unwrap();
    let app = created["key"].as_str().unwrap().to_owned();
    let resp = http
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(&app)
        .json(&serde_json::json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let gen = resp.headers()["x-keyway-generation-id"].to_str().unwrap().to_owned();
    let mut found = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        found = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["generation_id"] == gen.as_str());
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = found.unwrap_or_else(|| panic!("no JSON line with {gen}:\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
    assert_eq!(line["message"], "request");
    assert_eq!(line["status"], 200);
    assert_eq!(line["provider"], "openai");
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(all.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "every line is JSON:\n{all}");
    assert!(!all.contains(SECRET) && !all.contains(MGMT));
}

/// `keyway serve --listen ADDR --data-dir DIR` with `env`, stderr into `log`; waits for /health.
async fn serve_logged(data: &Path, log: &Path, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(BIN);
    base_env(&mut cmd).args(["serve", "--listen", &addr, "--data-dir"]).arg(data).stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut server = Server::new(cmd.spawn().unwrap(), format!("http://{addr}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{}/health", server.url)).await.is_ok_and(|r| r.status().is_success()) {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("keyway serve exited ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "keyway serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

/// Runs `keyway serve` expecting it to refuse to start; returns its output.
async fn serve_fails(data: &Path, env: &[(&str, &str)]) -> String {
    let data = data.to_owned();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let o = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        base_env(&mut cmd).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).envs(env);
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!o.status.success(), "serve should have failed: {}", text(&o));
    text(&o)
}

/// Every `kw-mgmt-...` token in `s`.
fn management_keys(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace()).filter(|w| w.starts_with("kw-mgmt-")).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_management_key_once_and_restart_prints_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log1 = dir.path().join("first.log");
    let http = reqwest::Client::new();

    let server = serve_logged(&data, &log1, &[]).await;
    let out = std::fs::read_to_string(&log1).unwrap();
    let keys = management_keys(&out);
    assert_eq!(keys.len(), 1, "exactly one management key printed on first start:\n{out}");
    let key = keys[0].clone();
    let created = http
        .post(format!("{}/api/v1/byok", server.url))
        .bearer_auth(&key)
        .json(&serde_json::json!({"provider": "openai", "name": "first", "key": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "the printed key manages BYOK credentials");
    let id = created.json::<Value>().await.unwrap()["data"]["id"].as_str().unwrap().to_owned();
    let master = data.join("master.key");
    assert!(master.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&master).unwrap().permissions().mode() & 0o777, 0o600);
    }
    drop(server);

    let log2 = dir.path().join("second.log");
    let server = serve_logged(&data, &log2, &[]).await;
    let out = std::fs::read_to_string(&log2).unwrap();
    assert!(!out.contains("kw-mgmt-"), "a later start prints no key:\n{out}");
    let got = http.get(format!("{}/api/v1/byok/{id}", server.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.json::<Value>().await.unwrap()["data"]["name"], "first");
    let list: Value = http.get(format!("{}/api/v1/keys", server.url)).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total_count"], 1, "no second bootstrap key: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_from_the_environment_writes_no_file_and_reopens_data() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let base = format!("{}/v1", fake.url());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let master = keyway_crypto::MasterKey::generate().to_base64();
    let env = [("KEYWAY_MASTER_KEY", master.as_str()), ("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT), ("KEYWAY_PROVIDERS__OPENAI__BASE_URL", base.as_str())];

    let server = serve_logged(&data, &dir.path().join("1.log"), &env).await;
    let added = json(&cli(&server.url, MGMT, &["byok", "add", "--provider", "openai", "--name", "env-mk", "--key-env", "CLI_TEST_SECRET", "-o", "json"]).await);
    let id = added["data"]["id"].as_str().unwrap().to_owned();
    drop(server);
    assert!(!data.join("master.key").exists(), "KEYWAY_MASTER_KEY given: no key file");

    // Same key: the sealed secret opens (the test call reaches the fake with it).
    let server = serve_logged(&data, &dir.path().join("2.log"), &env).await;
    let tested = cli(&server.url, MGMT, &["byok", "test", &id, "-o", "json"]).await;
    assert_eq!(json(&tested)["ok"], true, "{}", text(&tested));
    assert!(fake.calls_with_key(SECRET) >= 1);
    drop(server);
    assert!(!data.join("master.key").exists());

    // Another key: refused at start with a clear message, not a decryption error later.
    let other = keyway_crypto::MasterKey::generate().to_base64();
    let out = serve_fails(&data, &[("KEYWAY_MASTER_KEY", other.as_str())]).await;
    assert!(out.contains("sealed with master key"), "{out}");
    assert!(!out.contains(other.as_str()) && !out.contains(master.as_str()), "no key material in the error: {out}");
}

#[tokio::test]
async fn malformed_keys_in_the_environment_are_refused_with_their_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_fails(&dir.path().join("a"), &[("KEYWAY_MASTER_KEY", "bm90LTMyLWJ5dGVz")]).await;
    assert!(out.contains("master key"), "{out}");
    let out = serve_fails(&dir.path().join("b"), &[("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", "kw-mgmt-short")]).await;
    assert!(out.contains("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY") && !out.contains("master key"), "{out}");
    assert!(!out.contains("kw-mgmt-short"), "the value is not echoed: {out}");
}

/// `byok add --test` runs Test key first: a key the provider refuses is not stored (non-zero exit,
/// the provider's answer named); one that passes is stored. `--provider` takes display names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byok_add_with_test_stores_only_a_key_that_passes() {
    const BAD: &str = "sk-cli-refused-key-00000000000000000000";
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    fake.set_fault_for_key(BAD, keyway_fakes::Fault::Unauthorized);
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &fake.url()).await;
    let url = server.url.clone();

    let refused = cli(&url, MGMT, &["byok", "add", "--provider", "OpenAI", "--name", "bad", "--key", BAD, "--test"]).await;
    let out = text(&refused);
    assert!(!refused.status.success(), "{out}");
    assert!(out.contains("422") && out.contains("failed its test") && out.contains("status 401"), "{out}");
    assert!(!out.contains(BAD), "{out}");
    assert_eq!(json(&cli(&url, MGMT, &["byok", "list", "-o", "json"]).await)["total_count"], 0);

    let ok = cli(&url, MGMT, &["byok", "add", "--provider", "OpenAI", "--name", "good", "--key-env", "CLI_TEST_SECRET", "--test", "-o", "json"]).await;
    assert!(ok.status.success(), "{}", text(&ok));
    let v = json(&ok);
    assert_eq!((v["data"]["provider"].as_str(), v["test"]["ok"].as_bool()), (Some("openai"), Some(true)), "{v}");
    assert_eq!(fake.calls_with_key(SECRET), 1, "tested once before it was stored");
}

/// `keyway catalog update --file` checks a catalog and installs it in the data dir; the next
/// `keyway serve` lists its models. A file that isn't a catalog is refused and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_update_installs_a_newer_catalog() {
    let fake = keyway_fakes::openai::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || base_env(&mut Command::new(BIN)).args(&args).output().unwrap())
    };
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"models": [{"id": "x/y"}]}"#).unwrap();
    let out = run(vec!["catalog".into(), "update".into(), "--file".into(), bad.display().to_string(), "--data-dir".into(), data.display().to_string()]).await.unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!data.join("catalog.json").exists());

    let good = dir.path().join("catalog.json");
    std::fs::write(&good, r#"{"source": {"data": "test"}, "models": [
      {"id": "openai/gpt-next-test", "name": "OpenAI: GPT next", "context_length": 400000, "created": 0,
       "endpoints": [{"provider": "openai", "model_id": "gpt-next-test", "input": 1000000, "output": 2000000}]}]}"#).unwrap();
    let out = run(vec!["catalog".into(), "update".into(), "--file".into(), good.display().to_string(), "--data-dir".into(), data.display().to_string()]).await.unwrap();
    assert!(out.status.success() && text(&out).contains("Installed 1 models"), "{}", text(&out));

    let server = start(&data, &fake.url()).await;
    let models: Value = reqwest::get(format!("{}/api/v1/models", server.url)).await.unwrap().json().await.unwrap();
    assert_eq!(models["total_count"], 1, "{models}");
    assert_eq!(models["data"][0]["id"], "openai/gpt-next-test");
    assert_eq!(models["data"][0]["pricing"]["prompt"], "0.000001");
}

/// `keyway admin-key create` recovers an instance whose admin keys are gone (local, like rotation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_key_create_recovers_an_instance_without_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || base_env(&mut Command::new(BIN)).args(&args).output().unwrap())
    };
    let never = run(vec!["admin-key".into(), "create".into(), "--data-dir".into(), data.display().to_string()]).await.unwrap();
    assert!(!never.status.success() && text(&never).contains("keyway serve"), "{}", text(&never));

    let server = serve_logged(&data, &dir.path().join("1.log"), &[("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT)]).await;
    drop(server);
    let out = run(vec!["admin-key".into(), "create".into(), "--name".into(), "rescue".into(), "--data-dir".into(), data.display().to_string()]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let keys = management_keys(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(keys.len(), 1, "{}", text(&out));
    let server = serve_logged(&data, &dir.path().join("2.log"), &[]).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/api/v1/keyring", server.url)).bearer_auth(&keys[0]).send().await.unwrap();
    assert_eq!(r.status(), 200, "the new key is an admin key");
    let me: Value = http.get(format!("{}/api/v1/key", server.url)).bearer_auth(&keys[0]).send().await.unwrap().json().await.unwrap();
    assert_eq!((me["data"]["role"].as_str(), me["data"]["name"].as_str()), (Some("admin"), Some("rescue")));
}

/// Files holding secrets: data dir 0700, database and WAL 0600 after a start, tightened if looser.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = serve_logged(&data, &dir.path().join("1.log"), &[("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT)]).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for f in ["master.key", "keyway.db"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    drop(server);
}
