//! `TCP_NODELAY` on both sides of the gateway: connections it accepts and connections it opens
//! upstream. Without it a keep-alive client whose next request follows at once, or a stream's
//! first small chunk, waits on Nagle + delayed ACK (~40 ms).
//!
//! The exact check reads the option off the real sockets: the gateway and the fake upstream run
//! in this test's process, so every socket they hold is in `/proc/self/fd`; `pidfd_getfd` gives
//! us our own duplicate of each (safe code, same socket), and `getsockopt(TCP_NODELAY)` says how
//! it is set. A socket is the gateway's accepted one when its local address is the gateway's,
//! and an upstream one when its peer is the fake upstream. This cannot pass by luck: at least one
//! socket of each kind must be found, and each must have the option set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Sock {
    local: SocketAddr,
    peer: Option<SocketAddr>,
    nodelay: bool,
}

/// Every TCP socket this process holds, with its `TCP_NODELAY` setting.
fn own_tcp_sockets() -> Vec<Sock> {
    use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};
    let pidfd = pidfd_open(getpid(), PidfdFlags::empty()).expect("pidfd_open (Linux >= 5.3)");
    let mut out = Vec::new();
    let entries: Vec<_> = std::fs::read_dir("/proc/self/fd").unwrap().flatten().collect();
    for e in entries {
        let is_socket = std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if !is_socket {
            continue;
        }
        // Closed meanwhile, or not ours to take: skip.
        let Ok(fd) = pidfd_getfd(&pidfd, n, PidfdGetfdFlags::empty()) else { continue };
        let s = socket2::SockRef::from(&fd);
        let Some(local) = s.local_addr().ok().and_then(|a| a.as_socket()) else { continue };
        // Listeners and UDP/Unix sockets have no TCP_NODELAY or no peer; keep connected TCP ones.
        let Ok(nodelay) = s.nodelay() else { continue };
        out.push(Sock { local, peer: s.peer_addr().ok().and_then(|a| a.as_socket()), nodelay });
    }
    out
}

async fn gateway_with_fake() -> (keyway_fakes::FakeServer, Gateway, String) {
    openai_gateway(FakeOptions { record: false, ..FakeOptions::default() }, "sk-system-operator-key").await
}

fn chat() -> serde_json::Value {
    json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn accepted_and_upstream_sockets_have_nodelay() {
    let (fake, g, key) = gateway_with_fake().await;
    // Keep-alive: after these, the client->gateway and gateway->upstream connections stay open.
    for _ in 0..3 {
        let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat())).await;
        assert_eq!(s, 200, "{v}");
    }
    let socks = own_tcp_sockets();
    let accepted: Vec<&Sock> = socks.iter().filter(|s| s.local == g.addr && s.peer.is_some()).collect();
    let upstream: Vec<&Sock> = socks.iter().filter(|s| s.peer == Some(fake.addr)).collect();
    assert!(!accepted.is_empty(), "found no connection accepted by the gateway among {socks:?}");
    assert!(!upstream.is_empty(), "found no gateway->upstream connection among {socks:?}");
    for s in accepted {
        assert!(s.nodelay, "a connection the gateway accepted lacks TCP_NODELAY: {s:?}");
    }
    for s in upstream {
        assert!(s.nodelay, "a connection the gateway opened upstream lacks TCP_NODELAY: {s:?}");
    }
}

#[tokio::test]
async fn sequential_keep_alive_requests_do_not_wait_on_nagle() {
    let (_fake, g, key) = gateway_with_fake().await;
    let (s, _, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat())).await;
    assert_eq!(s, 200);
    let n = 50;
    let t0 = Instant::now();
    for _ in 0..n {
        let (s, v, _) = g.req("POST", "/v1/chat/completions", Some(&key), Some(chat())).await;
        assert_eq!(s, 200, "{v}");
    }
    let took = t0.elapsed();
    // Nagle + delayed ACK would cost ~40 ms a request (2 s for 50); even a debug build on a busy
    // machine answers these in a few ms each.
    assert!(took < Duration::from_millis(n * 20), "{n} sequential keep-alive requests took {took:?}");
}
