//! One behavioural suite every `Store` backend must pass.

use mcpgate::domain::clock::FixedClock;
use mcpgate::issue::store::{Namespace, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the suite makes TTLs run out.
pub enum Expiry {
    /// Advance the store's injected clock past them.
    Clock(Arc<FixedClock>),
    /// The store keeps time itself (a Redis server): short TTLs, then poll
    /// until they are gone.
    Server,
}

/// Runs the whole suite against `store` (a fresh, empty store).
pub async fn run_suite(store: Arc<dyn Store>, expiry: Expiry) {
    basic_crud(&*store).await;
    put_if_absent(&*store).await;
    take_once(&*store).await;
    listing(&*store).await;
    counters(&*store).await;
    concurrent_take_has_one_winner(store.clone()).await;
    concurrent_put_if_absent_has_one_winner(store.clone()).await;
    ttl_expiry(&*store, expiry).await;
}

async fn basic_crud(s: &dyn Store) {
    let ns = Namespace::Sessions;
    assert_eq!(s.get(ns, "missing").await.unwrap(), None);
    s.put(ns, "a", b"one", None).await.unwrap();
    assert_eq!(s.get(ns, "a").await.unwrap().as_deref(), Some(&b"one"[..]));
    s.put(ns, "a", b"two", None).await.unwrap();
    assert_eq!(s.get(ns, "a").await.unwrap().as_deref(), Some(&b"two"[..]));
    // Namespaces are separate key spaces.
    assert_eq!(s.get(Namespace::Consents, "a").await.unwrap(), None);
    // Arbitrary bytes and key characters survive.
    let bin: Vec<u8> = (0..=255u8).collect();
    s.put(ns, "k:with/odd {chars}", &bin, None).await.unwrap();
    assert_eq!(s.get(ns, "k:with/odd {chars}").await.unwrap(), Some(bin));
    assert!(s.delete(ns, "a").await.unwrap());
    assert!(!s.delete(ns, "a").await.unwrap());
    assert_eq!(s.get(ns, "a").await.unwrap(), None);
}

async fn put_if_absent(s: &dyn Store) {
    let ns = Namespace::Families;
    assert!(s.put_if_absent(ns, "f", b"1", None).await.unwrap());
    assert!(!s.put_if_absent(ns, "f", b"2", None).await.unwrap());
    assert_eq!(s.get(ns, "f").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert!(s.delete(ns, "f").await.unwrap());
    assert!(s
        .put_if_absent(ns, "f", b"3", Some(Duration::from_secs(60)))
        .await
        .unwrap());
    assert_eq!(s.get(ns, "f").await.unwrap().as_deref(), Some(&b"3"[..]));
}

async fn take_once(s: &dyn Store) {
    let ns = Namespace::Codes;
    s.put(ns, "code", b"grant", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        s.take(ns, "code").await.unwrap().as_deref(),
        Some(&b"grant"[..])
    );
    assert_eq!(s.take(ns, "code").await.unwrap(), None);
    assert_eq!(s.get(ns, "code").await.unwrap(), None);
    assert_eq!(s.take(ns, "never").await.unwrap(), None);
}

async fn listing(s: &dyn Store) {
    for ns in [Namespace::Clients, Namespace::Keys] {
        assert!(s.list(ns).await.unwrap().is_empty());
        s.put(ns, "c1", b"v1", None).await.unwrap();
        s.put(ns, "c2", b"v2", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(s.put_if_absent(ns, "c3", b"v3", None).await.unwrap());
        let mut all = s.list(ns).await.unwrap();
        all.sort();
        assert_eq!(
            all,
            vec![
                ("c1".to_string(), b"v1".to_vec()),
                ("c2".to_string(), b"v2".to_vec()),
                ("c3".to_string(), b"v3".to_vec()),
            ]
        );
        assert!(s.delete(ns, "c1").await.unwrap());
        assert_eq!(s.take(ns, "c3").await.unwrap().as_deref(), Some(&b"v3"[..]));
        let all = s.list(ns).await.unwrap();
        assert_eq!(all, vec![("c2".to_string(), b"v2".to_vec())]);
        assert!(s.delete(ns, "c2").await.unwrap());
    }
}

async fn counters(s: &dyn Store) {
    let ns = Namespace::RateLimits;
    let w = Duration::from_secs(60);
    assert_eq!(s.incr(ns, "ip", w).await.unwrap(), 1);
    assert_eq!(s.incr(ns, "ip", w).await.unwrap(), 2);
    assert_eq!(s.incr(ns, "ip", w).await.unwrap(), 3);
    assert_eq!(s.incr(ns, "other", w).await.unwrap(), 1);
}

async fn concurrent_take_has_one_winner(s: Arc<dyn Store>) {
    let ns = Namespace::Codes;
    s.put(ns, "race", b"prize", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take(ns, "race").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if let Some(v) = t.await.unwrap() {
            assert_eq!(v, b"prize");
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent take must win");
}

async fn concurrent_put_if_absent_has_one_winner(s: Arc<dyn Store>) {
    let ns = Namespace::RotatedRefresh;
    let tasks: Vec<_> = (0..20u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.put_if_absent(ns, "once", &[i], None).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one concurrent put_if_absent must win");
}

async fn ttl_expiry(s: &dyn Store, expiry: Expiry) {
    let ttl = Duration::from_secs(1);
    let short = Some(ttl);
    s.put(Namespace::Pending, "p", b"x", short).await.unwrap();
    s.put(Namespace::Codes, "c", b"x", short).await.unwrap();
    s.put(Namespace::Clients, "tmp", b"x", short).await.unwrap();
    s.put(Namespace::Clients, "keep", b"k", None).await.unwrap();
    assert!(!s
        .put_if_absent(Namespace::Pending, "p", b"y", short)
        .await
        .unwrap());
    assert_eq!(s.incr(Namespace::RateLimits, "w", ttl).await.unwrap(), 1);
    assert_eq!(s.incr(Namespace::RateLimits, "w", ttl).await.unwrap(), 2);
    // Written last, so expires last.
    s.put(Namespace::Sessions, "last", b"x", short)
        .await
        .unwrap();
    assert!(s.get(Namespace::Pending, "p").await.unwrap().is_some());

    match expiry {
        Expiry::Clock(clock) => clock.advance(ttl),
        Expiry::Server => {
            let start = Instant::now();
            while s.get(Namespace::Sessions, "last").await.unwrap().is_some() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "TTL never ran out"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    assert_eq!(s.get(Namespace::Pending, "p").await.unwrap(), None);
    assert_eq!(s.take(Namespace::Codes, "c").await.unwrap(), None);
    assert!(!s.delete(Namespace::Codes, "c").await.unwrap());
    assert_eq!(
        s.list(Namespace::Clients).await.unwrap(),
        vec![("keep".to_string(), b"k".to_vec())]
    );
    // An expired key is absent for put_if_absent, and a new window starts.
    assert!(s
        .put_if_absent(Namespace::Pending, "p", b"y", None)
        .await
        .unwrap());
    assert_eq!(
        s.get(Namespace::Pending, "p").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(s.incr(Namespace::RateLimits, "w", ttl).await.unwrap(), 1);
}
