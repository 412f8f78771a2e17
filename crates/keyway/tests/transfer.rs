//! `keyway store export` / `keyway store import` with the real binary: a SQLite install that
//! served a BYOK request moves to PostgreSQL with its master key, and `keyway serve` on
//! PostgreSQL then accepts the same management and inference keys, lists the same credential,
//! opens its secret (the fake upstream accepts only that key) and shows the earlier generation.
//! Imports with the wrong master key, into a non-empty database or from a cut file are refused
//! and write nothing. Needs KEYWAY_TEST_POSTGRES_URL (scripts/test provides it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes, clippy::print_stderr)]

use serde_json::{json, Value};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const MGMT: &str = "kw-mgmt-transfer-test-0123456789abcdef";
const SECRET: &str = "sk-transfer-SECRET-0000AbCd";
const TABLES: [&str; 10] = ["workspaces", "keyring_keys", "api_keys", "byok_credentials", "meta", "credit_entries", "route_plans", "generations", "usage_days", "audit_log"];

/// The binary with none of the caller's KEYWAY_* settings, plus `env`.
fn keyway(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("KEYWAY_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, String)]) -> Output {
    keyway(args, env).stdin(Stdio::null()).output().unwrap()
}

async fn serve(env: &[(&str, String)], log: &Path) -> Server {
    let port = free_port();
    let mut env = env.to_vec();
    env.push(("KEYWAY_LISTEN", format!("127.0.0.1:{port}")));
    env.push(("KEYWAY_LOG", "info".into()));
    let child = keyway(&["serve"], &env).stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap()).spawn().unwrap();
    let server = Server::new(child, format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{}/health", server.url)).await.is_ok_and(|r| r.status().is_success()) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keyway serve did not come up: {}", std::fs::read_to_string(log).unwrap_or_default());
}

/// Rows in each of Keyway's tables (0 for a table the database doesn't have yet).
async fn row_counts(url: &str) -> Vec<(&'static str, i64)> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut out = Vec::new();
    for t in TABLES {
        let exists: (bool,) = sqlx::query_as("SELECT to_regclass($1) IS NOT NULL").bind(t).fetch_one(&mut conn).await.unwrap();
        let n = if exists.0 {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {t}")).fetch_one(&mut conn).await.unwrap();
            n
        } else {
            0
        };
        out.push((t, n));
    }
    conn.close().await.unwrap();
    out
}

async fn total_rows(url: &str) -> i64 {
    row_counts(url).await.iter().map(|(_, n)| n).sum()
}

async fn get(http: &reqwest::Client, url: String, bearer: &str) -> (u16, Value) {
    let r = http.get(url).bearer_auth(bearer).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: String, bearer: &str, body: Value) -> (u16, Value) {
    let r = http.post(url).bearer_auth(bearer).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A chat request answered by the BYOK credential: returns its generation id.
async fn chat_served_by(http: &reqwest::Client, server: &Server, key: &str, credential: &str) -> String {
    let body = json!({"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = http.post(format!("{}/v1/chat/completions", server.url)).bearer_auth(key).json(&body).send().await.unwrap();
    let header = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, cred, gen) = (r.status().as_u16(), header("x-keyway-credential"), header("x-keyway-generation-id"));
    assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
    assert_eq!(cred.as_deref(), Some(credential));
    gen.unwrap()
}

async fn keyring_ids(http: &reqwest::Client, server: &Server) -> Vec<String> {
    let (s, v) = get(http, format!("{}/api/v1/keyring", server.url), MGMT).await;
    assert_eq!(s, 200, "{v}");
    let mut ids: Vec<String> = v["data"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

fn body_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().skip(1).map(str::to_owned).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_install_moves_to_postgres() {
    let fake = keyway_fakes::openai::start(keyway_fakes::server::FakeOptions { keys: [SECRET.to_owned()].into(), ..Default::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_data: PathBuf = dir.path().join("sqlite-data");
    let upstream = ("KEYWAY_PROVIDERS__OPENAI__BASE_URL", format!("{}/v1", fake.url()));
    let http = reqwest::Client::new();

    // 1. A SQLite install serves a BYOK request.
    let sqlite_env = vec![("KEYWAY_DATA_DIR", sqlite_data.display().to_string()), ("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", MGMT.to_owned()), upstream.clone()];
    let server = serve(&sqlite_env, &dir.path().join("sqlite.log")).await;
    let (s, key) = post(&http, format!("{}/api/v1/keys", server.url), MGMT, json!({"name": "app"})).await;
    assert_eq!(s, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let (s, byok) = post(&http, format!("{}/api/v1/byok", server.url), MGMT, json!({"provider": "openai", "key": SECRET, "name": "moved"})).await;
    assert_eq!(s, 201, "{byok}");
    let (byok_id, label) = (byok["data"]["id"].as_str().unwrap().to_owned(), byok["data"]["label"].as_str().unwrap().to_owned());
    let generation = chat_served_by(&http, &server, &key, &byok_id).await;
    let ring = keyring_ids(&http, &server).await;
    assert!(!ring.is_empty());
    server.stop();

    // 2. Export it.
    let dump = dir.path().join("keyway.dump");
    let o = run(&["store", "export", "--file", dump.to_str().unwrap(), "--data-dir", sqlite_data.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("generations") && text(&o).contains("protect it like a database backup"), "{}", text(&o));
    let contents = std::fs::read_to_string(&dump).unwrap();
    assert!(!contents.contains(SECRET), "the secret reached the dump in the clear");
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dump).unwrap().permissions()) & 0o777, 0o600);
    let again = run(&["store", "export", "--file", dump.to_str().unwrap(), "--data-dir", sqlite_data.to_str().unwrap()], &[]);
    assert!(!again.status.success() && text(&again).contains("already exists"), "{}", text(&again));
    let sealed: Vec<String> = contents
        .lines()
        .filter_map(|l| serde_json::from_str::<Vec<Value>>(l).ok())
        .flat_map(|row| row.into_iter().filter_map(|v| v.as_str().filter(|s| s.starts_with("v1.")).map(str::to_owned)))
        .collect();
    assert!(sealed.len() >= 2, "the keyring key and the credential are sealed in the dump");

    let master_key = std::fs::read_to_string(sqlite_data.join("master.key")).unwrap().trim().to_owned();
    let pg = fresh_database("transfer").await;
    let empty_dir = dir.path().join("pg-node");
    let import = |url: &str, master: &str, file: &Path| {
        run(
            &["store", "import", "--file", file.to_str().unwrap(), "--data-dir", empty_dir.to_str().unwrap()],
            &[("KEYWAY_DATABASE_URL", url.to_owned()), ("KEYWAY_MASTER_KEY", master.to_owned())],
        )
    };

    // 3. Refused: another master key. Nothing is written, and no sealed value is shown.
    let other = keyway_crypto::MasterKey::generate().to_base64().to_string();
    let o = import(&pg, &other, &dump);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("keyring_keys row") && text(&o).contains("nothing was written"), "{}", text(&o));
    for v in &sealed {
        assert!(!text(&o).contains(v.as_str()), "a sealed value was printed: {}", text(&o));
    }
    assert!(!text(&o).contains(&master_key) && !text(&o).contains(&other), "a master key was printed");
    assert_eq!(total_rows(&pg).await, 0, "{:?}", row_counts(&pg).await);

    // Refused: a cut file (no end line), into another fresh database.
    let cut = dir.path().join("cut.dump");
    let lines: Vec<&str> = contents.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let pg_cut = fresh_database("transfer").await;
    let o = import(&pg_cut, &master_key, &cut);
    assert!(!o.status.success() && text(&o).contains("without its end line"), "{}", text(&o));
    assert_eq!(total_rows(&pg_cut).await, 0, "{:?}", row_counts(&pg_cut).await);

    // 4. Imported with the install's master key (into the database the refused import left empty).
    let o = import(&pg, &master_key, &dump);
    assert!(o.status.success(), "{}", text(&o));
    let counts = row_counts(&pg).await;
    for t in ["workspaces", "keyring_keys", "api_keys", "byok_credentials", "meta", "generations"] {
        assert!(counts.iter().any(|(c, n)| *c == t && *n > 0), "nothing imported into `{t}`: {counts:?}");
    }

    // Refused: the target now holds data; it keeps exactly what it has.
    let o = import(&pg, &master_key, &dump);
    assert!(!o.status.success() && text(&o).contains("the target already holds data"), "{}", text(&o));
    assert_eq!(row_counts(&pg).await, counts);

    // The same rows come back out of PostgreSQL.
    let pg_dump = dir.path().join("pg.dump");
    let pg_env = [("KEYWAY_DATABASE_URL", pg.clone()), ("KEYWAY_MASTER_KEY", master_key.clone())];
    let o = run(&["store", "export", "--file", pg_dump.to_str().unwrap()], &pg_env);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(body_lines(&pg_dump), body_lines(&dump));

    // 5. `keyway serve` on PostgreSQL, with no bootstrap key: the moved install works.
    let mut env = pg_env.to_vec();
    env.extend([("KEYWAY_DATA_DIR", empty_dir.display().to_string()), upstream]);
    let server = serve(&env, &dir.path().join("pg.log")).await;
    let (s, list) = get(&http, format!("{}/api/v1/byok", server.url), MGMT).await;
    assert_eq!(s, 200, "the management key no longer works: {list}");
    let listed = list["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!((listed[0]["id"].as_str(), listed[0]["label"].as_str(), listed[0]["name"].as_str()), (Some(byok_id.as_str()), Some(label.as_str()), Some("moved")));
    // The fake accepts only SECRET: an answer proves the sealed secret opened on PostgreSQL.
    let before = fake.calls_with_key(SECRET);
    chat_served_by(&http, &server, &key, &byok_id).await;
    assert_eq!(fake.calls_with_key(SECRET), before + 1);
    let (s, g) = get(&http, format!("{}/api/v1/generation?id={generation}", server.url), MGMT).await;
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["data"]["credential_id"], byok_id.as_str());
    assert_eq!(keyring_ids(&http, &server).await, ring);
    server.stop();

    // 6. And back: PostgreSQL to a fresh SQLite data dir, the same rows again.
    let back = dir.path().join("back-data");
    let o = run(
        &["store", "import", "--file", pg_dump.to_str().unwrap(), "--data-dir", back.to_str().unwrap()],
        &[("KEYWAY_MASTER_KEY", master_key.clone())],
    );
    assert!(o.status.success(), "{}", text(&o));
    let back_dump = dir.path().join("back.dump");
    let o = run(&["store", "export", "--file", back_dump.to_str().unwrap(), "--data-dir", back.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(body_lines(&back_dump), body_lines(&dump));
}
