//! What the tests that run the real binary share: its path, children that never outlive a test,
//! free ports, and a PostgreSQL database of a test's own.
// Each test file uses a different part of this.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::Connection;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_keyway");

/// A child process, killed and waited for when dropped (a failing test leaves none behind).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A running `keyway serve` and its base URL.
pub struct Server {
    pub child: Proc,
    pub url: String,
}

impl Server {
    pub fn new(child: Child, url: String) -> Self {
        Self { child: Proc(child), url }
    }

    /// SIGTERM, then wait: the usage writer flushes before the process exits.
    pub fn stop(mut self) {
        assert!(Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// Exit status and both streams, for assertion messages and `contains` checks.
pub fn text(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn env_url(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the suite with scripts/test, which starts PostgreSQL and Redis"))
}

/// A database of this test's own on the test PostgreSQL (scripts/test drops `keyway_test_*`).
pub async fn fresh_database(test: &str) -> String {
    let base = env_url("KEYWAY_TEST_POSTGRES_URL");
    let name = format!("keyway_test_{test}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("PostgreSQL at KEYWAY_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}
