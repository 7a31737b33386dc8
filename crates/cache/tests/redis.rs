//! The cache against the real Redis at 127.0.0.1:6379 (set `PORTCULLIS_TEST_REDIS=skip` to skip these
//! where there is none), and against sockets that misbehave: one that accepts and never answers, one
//! that is closed and later opens.

use cache::{Cache, CacheError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const REDIS: &str = "127.0.0.1:6379";

/// Whether the Redis tests run: `PORTCULLIS_TEST_REDIS=skip` skips them; otherwise a missing Redis
/// fails them, saying so.
fn redis_wanted() -> bool {
    if std::env::var("PORTCULLIS_TEST_REDIS").is_ok_and(|v| v == "skip") {
        eprintln!("PORTCULLIS_TEST_REDIS=skip: not testing against Redis");
        return false;
    }
    if std::net::TcpStream::connect_timeout(&REDIS.parse().unwrap(), Duration::from_secs(2)).is_err() {
        panic!("no Redis at {REDIS}: start one (redis-server) or set PORTCULLIS_TEST_REDIS=skip");
    }
    true
}

/// A key prefix no other test (or run) shares.
fn prefix(test: &str) -> String {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("test:{}:{nanos}:{}:{test}:", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed))
}

fn cache_at(addr: &str, prefix: &str, timeout: &str, retry_after: &str) -> Cache {
    let text = format!(
        "redis_url = \"redis://{addr}\"\nkey_prefix = \"{prefix}\"\ncommand_timeout = \"{timeout}\"\n\
         retry_after = \"{retry_after}\"\n"
    );
    let c: config::CacheConfig = toml::from_str(&text).unwrap();
    c.check().unwrap();
    Cache::from_config(&c).unwrap().expect("a redis_url makes a cache")
}

fn cache(prefix: &str) -> Cache {
    cache_at(REDIS, prefix, "2s", "200ms")
}

async fn ttl_ms(key: &str) -> i64 {
    let client = redis::Client::open(format!("redis://{REDIS}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL").arg(key).query_async(&mut c).await.unwrap()
}

#[tokio::test]
async fn hits_count_to_the_limit_in_fixed_windows() {
    if !redis_wanted() {
        return;
    }
    let p = prefix("hits");
    let c = cache(&p);
    // Long enough that a loaded machine finishes the first window's calls inside it.
    let window = Duration::from_millis(2000);
    for _ in 0..3 {
        assert!(c.hit("g:a", 3, window).await.unwrap());
    }
    assert!(!c.hit("g:a", 3, window).await.unwrap(), "the fourth is over the limit");
    assert!(!c.hit("g:a", 3, window).await.unwrap(), "refused attempts are not counted, still over");
    assert!(c.hit("g:b", 3, window).await.unwrap(), "another key counts apart");
    assert!(!c.hit("g:zero", 0, window).await.unwrap(), "a limit of 0 lets nothing through");
    let ttl = ttl_ms(&format!("{p}g:a")).await;
    assert!(ttl > 0 && ttl <= 2000, "the counter expires with its window: {ttl}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(c.hit("g:a", 3, window).await.unwrap(), "a new window");
    assert!(c.is_up());
}

/// Two clients (two nodes), many tasks each, one shared limit: exactly `limit` get through.
#[tokio::test]
async fn concurrent_callers_on_two_clients_count_exactly() {
    if !redis_wanted() {
        return;
    }
    let p = prefix("atomic");
    let (a, b) = (cache(&p), cache(&p));
    let window = Duration::from_secs(60);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { c.hit("shared", 73, window).await.unwrap() }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += u32::from(t.await.unwrap());
    }
    assert_eq!(allowed, 73);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { c.count_failure("login", 1_000, 60).await.unwrap() }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=100).collect::<Vec<u32>>(), "every failure counted once, none lost");
    assert_eq!(a.failures("login", 1_001, 60).await.unwrap(), 100);
}

/// The store's `login_throttle` and the cache's counters give the same answers to the same calls.
#[tokio::test]
async fn login_counters_match_the_store() {
    if !redis_wanted() {
        return;
    }
    use store::ThrottleScope::{Account, Address};
    #[derive(Clone, Copy)]
    enum Step {
        Fail(store::ThrottleScope, &'static str, i64),
        Read(store::ThrottleScope, &'static str, i64),
        Clear(store::ThrottleScope, &'static str),
    }
    use Step::*;
    let steps = [
        Fail(Account, "bob", 100),
        Fail(Account, "bob", 120),
        Fail(Account, "bob", 159),
        Fail(Address, "127.0.0.2", 100),
        Read(Account, "bob", 159),
        Read(Address, "bob", 159),
        Read(Account, "bob", 160),
        Fail(Account, "bob", 170),
        Fail(Account, "bob", 229),
        Read(Account, "bob", 229),
        Read(Account, "bob", 230),
        Fail(Address, "127.0.0.2", 161),
        Read(Address, "127.0.0.2", 161),
        Clear(Account, "bob"),
        Read(Account, "bob", 231),
        Fail(Account, "bob", 232),
    ];
    const WINDOW: i64 = 60;
    let store = store::Store::in_memory().await.unwrap();
    let c = cache(&prefix("throttle"));
    let key = |scope: store::ThrottleScope, k: &str| format!("{scope:?}:{k}");
    for (i, step) in steps.iter().enumerate() {
        let (from_store, from_cache) = match *step {
            Fail(s, k, now) => (
                store.throttle_fail(s, k, now, WINDOW).await.unwrap(),
                c.count_failure(&key(s, k), now, WINDOW).await.unwrap(),
            ),
            Read(s, k, now) => (
                store.throttle_failures(s, k, now, WINDOW).await.unwrap(),
                c.failures(&key(s, k), now, WINDOW).await.unwrap(),
            ),
            Clear(s, k) => {
                store.throttle_clear(s, k).await.unwrap();
                c.forget(&key(s, k)).await.unwrap();
                (0, 0)
            }
        };
        assert_eq!(from_store, from_cache, "step {i}");
    }
}

/// A Redis that accepts and never answers costs one deadline, then calls fail at once until
/// `retry_after` has passed.
#[tokio::test]
async fn a_silent_redis_costs_one_deadline() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s); // accept, keep open, never answer
        }
    });
    let c = cache_at(&addr, "t:", "150ms", "10s");
    let start = Instant::now();
    let err = c.hit("k", 1, Duration::from_secs(1)).await.unwrap_err();
    let took = start.elapsed();
    assert!(!matches!(err, CacheError::Down), "the first call waits for its deadline: {err}");
    assert!(took >= Duration::from_millis(140) && took < Duration::from_millis(1000), "{took:?}");
    assert!(!c.is_up());
    let start = Instant::now();
    for _ in 0..100 {
        assert!(matches!(c.failures("k", 1, 1).await.unwrap_err(), CacheError::Down));
    }
    assert!(start.elapsed() < Duration::from_millis(100), "no waiting while it is known to be down");
    held.abort();
}

/// Closed port first (down), then a listener forwarding to the real Redis opens there (up): the
/// cache recovers by itself after `retry_after`.
#[tokio::test]
async fn down_then_up_recovers_by_itself() {
    if !redis_wanted() {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let c = cache_at(&addr, &prefix("recover"), "500ms", "200ms");
    assert!(c.hit("k", 5, Duration::from_secs(60)).await.is_err(), "nothing listens yet");
    assert!(!c.is_up());
    let proxy = TcpListener::bind(&addr).await.unwrap();
    let forwarding = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = proxy.accept().await {
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(REDIS).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    assert!(matches!(c.hit("k", 5, Duration::from_secs(60)).await, Err(CacheError::Down)), "still paused");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(c.hit("k", 5, Duration::from_secs(60)).await.unwrap(), "after retry_after it is tried again");
    assert!(c.is_up());
    forwarding.abort();
}

#[tokio::test]
async fn model_changes_reach_subscribers_and_the_polled_key() {
    if !redis_wanted() {
        return;
    }
    let p = prefix("model");
    let (learner, server) = (cache(&p), cache(&p));
    assert_eq!(server.model_generation().await.unwrap(), 0);
    let mut changes = server.model_changes();
    // The subscription is up once it has read the current generation; wait for that to settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(learner.publish_model_changed().await.unwrap(), 1);
    tokio::time::timeout(Duration::from_secs(5), changes.wait_for(|g| *g == 1)).await.unwrap().unwrap();
    assert_eq!(learner.publish_model_changed().await.unwrap(), 2);
    tokio::time::timeout(Duration::from_secs(5), changes.wait_for(|g| *g == 2)).await.unwrap().unwrap();
    assert_eq!(server.model_generation().await.unwrap(), 2);
    let ttl = ttl_ms(&format!("{p}classifier:generation")).await;
    assert!(ttl > 0 && ttl <= cache::model::GENERATION_TTL.as_millis() as i64, "{ttl}");
    let other = cache(&prefix("model-other"));
    assert_eq!(other.model_generation().await.unwrap(), 0, "prefixes keep gateways apart");
}
