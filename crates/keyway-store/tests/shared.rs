//! The shared counters against a real Redis (KEYWAY_TEST_REDIS_URL), each test under a key
//! prefix of its own: two handles stand for two nodes.
#![allow(clippy::unwrap_used, clippy::panic)]

use keyway_store::shared::{Check, Shared, SharedError, Verdict};
use std::time::{Duration, Instant};

fn redis_url() -> String {
    std::env::var("KEYWAY_TEST_REDIS_URL").unwrap_or_else(|_| panic!("KEYWAY_TEST_REDIS_URL is not set: scripts/test starts Redis"))
}

async fn nodes(lease: Duration) -> (Shared, Shared) {
    let prefix = format!("kwtest-{}", uuid::Uuid::new_v4().simple());
    let a = Shared::start(&redis_url(), &prefix, lease).await.unwrap();
    let b = Shared::start(&redis_url(), &prefix, lease).await.unwrap();
    let t0 = Instant::now();
    while !(a.is_up() && b.is_up()) {
        assert!(t0.elapsed() < Duration::from_secs(5), "Redis at KEYWAY_TEST_REDIS_URL never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (a, b)
}

fn admitted(v: Verdict) -> Option<keyway_store::shared::Hold> {
    match v {
        Verdict::Admitted(h, _) => Some(h),
        Verdict::Refused { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_is_one_bucket_for_every_node() {
    let (a, b) = nodes(Duration::from_secs(30)).await;
    let check = || vec![Check::Rate { key: "rl:k:x:r".into(), per_minute: 10, cells: 1, tokens: false }];
    let mut tasks = Vec::new();
    for i in 0..30 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { admitted(node.admit(check()).await.unwrap()).is_some() }));
    }
    let mut n = 0;
    for t in tasks {
        n += usize::from(t.await.unwrap());
    }
    assert_eq!(n, 10);
    match a.admit(check()).await.unwrap() {
        Verdict::Refused { index: 0, wait, .. } => assert!(wait > Duration::from_secs(4) && wait <= Duration::from_secs(6), "{wait:?}"),
        v => panic!("{v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_and_tokens_corrected() {
    let (a, _) = nodes(Duration::from_secs(30)).await;
    let checks = |cells| {
        vec![
            Check::Rate { key: "rl:k:y:t".into(), per_minute: 1000, cells, tokens: true },
            Check::Balance { key: "cr:ws".into(), want: 40, seed: 100 },
        ]
    };
    let mut h1 = admitted(a.admit(checks(600)).await.unwrap()).unwrap();
    let h2 = admitted(a.admit(checks(300)).await.unwrap()).unwrap();
    // Tokens would fit (100 left) but the balance (20 left) refuses: nothing is taken.
    match a.admit(checks(100)).await.unwrap() {
        Verdict::Refused { index: 1, value: 20, .. } => {}
        v => panic!("{v:?}"),
    }
    // The first used 200 tokens, not 600: 400 come back, and its 40 are given back on drop.
    h1.settle_tokens(200);
    drop(h1);
    drop(h2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let h3 = admitted(a.admit(checks(500)).await.unwrap());
    assert!(h3.is_some(), "tokens and balance given back");
    // A charge is applied to the balance that exists.
    a.add(vec![("cr:ws".into(), -70)]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(h3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    match a.admit(vec![Check::Balance { key: "cr:ws".into(), want: 31, seed: 100 }]).await.unwrap() {
        Verdict::Refused { value: 30, .. } => {}
        v => panic!("{v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_slots_come_back_after_the_lease() {
    let (a, b) = nodes(Duration::from_secs(3)).await;
    let slot = || vec![Check::Slot { key: "sl:k:z".into(), max: 2 }];
    let on_a = admitted(a.admit(slot()).await.unwrap()).unwrap();
    let on_b = admitted(b.admit(slot()).await.unwrap()).unwrap();
    assert!(admitted(a.admit(slot()).await.unwrap()).is_none());
    drop(on_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = admitted(a.admit(slot()).await.unwrap()).unwrap();
    // Node b dies holding its slot: nobody renews it, so it expires.
    std::mem::forget(on_b);
    drop(b);
    let t0 = Instant::now();
    let back = loop {
        if let Some(h) = admitted(a.admit(slot()).await.unwrap()) {
            break h;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the dead node's slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(t0.elapsed() > Duration::from_secs(2), "came back before the lease ran out");
    // The live node's slots are renewed, and outlive the lease.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert!(admitted(a.admit(slot()).await.unwrap()).is_none(), "renewed slots must still be held");
    drop((again, back));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_answers_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = Shared::start(&format!("redis://127.0.0.1:{port}"), "kwtest-down", Duration::from_secs(30)).await.unwrap();
    let t0 = Instant::now();
    let r = s.admit(vec![Check::Slot { key: "sl:x".into(), max: 1 }]).await;
    assert!(matches!(r, Err(SharedError::Unavailable)), "{r:?}");
    assert!(t0.elapsed() < Duration::from_millis(20), "{:?}", t0.elapsed());
    assert!(Shared::start("not a url", "p", Duration::from_secs(1)).await.is_err());
}

/// Limits this large give each node a share (a 64th), so requests after the first are admitted
/// in memory; what a request takes and gives back settles against the share.
fn big(cells: u64, want: i64) -> Vec<Check> {
    vec![
        Check::Rate { key: "rl:k:big:r".into(), per_minute: 64_000, cells: 1, tokens: false },
        Check::Rate { key: "rl:k:big:t".into(), per_minute: 6_400_000, cells, tokens: true },
        Check::Slot { key: "sl:k:big".into(), max: 6_400 },
        Check::Capped { key: "sp:k:big:d1".into(), want, cap: 64_000_000, seed: 0, ttl: Duration::from_secs(60) },
        Check::Balance { key: "cr:big".into(), want, seed: 64_000_000 },
    ]
}

async fn get_i64(node: &Shared, key: &str) -> Option<i64> {
    let mut c = node.client().get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET").arg(node.key(key)).query_async::<Option<i64>>(&mut c).await.unwrap()
}

async fn zcard(node: &Shared, key: &str) -> i64 {
    let mut c = node.client().get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ZCARD").arg(node.key(key)).query_async::<i64>(&mut c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_limits_are_admitted_from_a_share_and_settle_exactly_when_handed_back() {
    let (a, _) = nodes(Duration::from_secs(30)).await;
    let mut holds = Vec::new();
    for _ in 0..10 {
        let mut h = admitted(a.admit(big(100, 1_000)).await.unwrap()).expect("admitted");
        h.settle_tokens(40);
        holds.push(h);
        // The real charge of each request: 300 µUSD.
        a.add(vec![("sp:k:big:d1".into(), 300), ("cr:big".into(), -300)]);
    }
    assert_eq!(a.round_trips(), 1, "after the first, every request came out of the shares: {:?}", a.shares());
    assert_eq!(zcard(&a, "sl:k:big").await, 101, "a share of 100 slots (a 64th of 6,400) plus the first request's own");
    // Each share taken from Redis at once: the first request's amounts and a 64th of each limit.
    assert_eq!(get_i64(&a, "sp:k:big:d1").await, Some(1_000 + 1_000_000));
    assert_eq!(get_i64(&a, "cr:big").await, Some(64_000_000 - 1_000 - 1_000_000));
    drop(holds);
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.hand_back_shares(true);
    let t0 = Instant::now();
    // Handed back: Redis holds what the ten requests really spent, and no slot.
    loop {
        let (spend, balance, slots) = (get_i64(&a, "sp:k:big:d1").await, get_i64(&a, "cr:big").await, zcard(&a, "sl:k:big").await);
        // The first request's own reservation was taken in Redis directly and given back there.
        if spend == Some(3_000) && balance == Some(64_000_000 - 3_000) && slots == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "spend {spend:?} balance {balance:?} slots {slots} shares {:?}", a.shares());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(a.shares().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_never_admit_more_than_the_limit_across_nodes() {
    let (a, b) = nodes(Duration::from_secs(30)).await;
    // 640 a minute, all of it at once at most: each node's share is 10.
    let check = || vec![Check::Rate { key: "rl:k:shared:r".into(), per_minute: 640, cells: 1, tokens: false }];
    let mut n = 0;
    let t0 = Instant::now();
    for i in 0..(3 * 640) {
        let node = if i % 2 == 0 { &a } else { &b };
        n += usize::from(admitted(node.admit(check()).await.unwrap()).is_some());
    }
    // The bucket refills one cell every 93.75 ms while the test runs.
    let refilled = usize::try_from(t0.elapsed().as_micros() / 93_750).unwrap() + 1;
    assert!(n <= 640 + refilled, "{n} admitted over a limit of 640 (+{refilled} refilled)");
    assert!(n >= 640 - 2 * 10, "{n} admitted: more than the two nodes' shares went unused");
    assert!(a.round_trips() + b.round_trips() < 3 * 640, "shares were used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_racing_at_the_start_make_one_share_and_leak_no_slot() {
    let (a, _) = nodes(Duration::from_secs(30)).await;
    // 64 at once, before any share exists: each may be granted slots; they become one share.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move { admitted(a.admit(big(100, 1_000)).await.unwrap()).expect("admitted") }));
    }
    let mut holds = Vec::new();
    for t in tasks {
        holds.push(t.await.unwrap());
    }
    let first = a.round_trips();
    drop(holds);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..200 {
        drop(admitted(a.admit(big(100, 1_000)).await.unwrap()).expect("admitted"));
    }
    assert_eq!(a.round_trips(), first, "the 200 after the race came from shares: {:?}", a.shares());
    a.hand_back_all().await;
    assert_eq!(zcard(&a, "sl:k:big").await, 0, "every slot of every share handed back");
    assert!(a.shares().is_empty());
}
