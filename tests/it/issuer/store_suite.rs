//! One behavioural suite every `Store` backend must pass, plus helpers that
//! run real `redis-server` processes (standalone and a 3-master cluster) on
//! free loopback ports for the Redis backends.

use mcpgate::issue::store::{Namespace, Store};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Runs the whole suite against `store` (a fresh, empty store).
pub async fn run_suite(store: Arc<dyn Store>) {
    basic_crud(&*store).await;
    put_if_absent(&*store).await;
    take_once(&*store).await;
    listing(&*store).await;
    counters(&*store).await;
    concurrent_take_has_one_winner(store.clone()).await;
    concurrent_put_if_absent_has_one_winner(store.clone()).await;
    ttl_expiry(&*store).await;
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

async fn ttl_expiry(s: &dyn Store) {
    let short = Some(Duration::from_secs(1));
    s.put(Namespace::Pending, "p", b"x", short).await.unwrap();
    s.put(Namespace::Codes, "c", b"x", short).await.unwrap();
    s.put(Namespace::Clients, "tmp", b"x", short).await.unwrap();
    s.put(Namespace::Clients, "keep", b"k", None).await.unwrap();
    assert!(!s
        .put_if_absent(Namespace::Pending, "p", b"y", short)
        .await
        .unwrap());
    assert_eq!(
        s.incr(Namespace::RateLimits, "w", Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.incr(Namespace::RateLimits, "w", Duration::from_secs(1))
            .await
            .unwrap(),
        2
    );
    assert!(s.get(Namespace::Pending, "p").await.unwrap().is_some());

    tokio::time::sleep(Duration::from_millis(1300)).await;

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
    assert_eq!(
        s.incr(Namespace::RateLimits, "w", Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
}

// === real redis-server processes ===

/// A `redis-server` child, killed on drop.
pub struct RedisProcess {
    child: Child,
    pub port: u16,
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `redis-server` is on PATH; prints a skip message when not.
pub fn redis_available(test: &str) -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping {test}: redis-server not found on PATH");
    }
    ok
}

/// A free loopback port whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
        if p < 55000 {
            continue;
        }
        // Ephemeral range too high for a bus port: try a lower random one.
        let guess = 20000 + (p % 20000);
        if TcpListener::bind(("127.0.0.1", guess)).is_ok()
            && TcpListener::bind(("127.0.0.1", guess + 10000)).is_ok()
        {
            return guess;
        }
    }
}

fn ping(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
        .unwrap_or(false)
}

/// Starts one `redis-server` on a free port, persisting nothing.
pub async fn start_redis(dir: &Path, cluster: bool) -> RedisProcess {
    start_redis_on(dir, free_port(), cluster).await
}

/// Starts one `redis-server` on `port`.
pub async fn start_redis_on(dir: &Path, port: u16, cluster: bool) -> RedisProcess {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    if cluster {
        cmd.args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = RedisProcess { child, port };
    for _ in 0..100 {
        if ping(port) {
            return proc;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server on port {port} did not start");
}

/// Starts three cluster-enabled servers and joins them as three masters.
pub async fn start_cluster(dir: &Path) -> Vec<RedisProcess> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_redis(dir, true).await);
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for _ in 0..200 {
        let all_ok = nodes.iter().all(|n| {
            Command::new("redis-cli")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &n.port.to_string(),
                    "CLUSTER",
                    "INFO",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                .unwrap_or(false)
        });
        if all_ok {
            return nodes;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("redis cluster did not become ready");
}
