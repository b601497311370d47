//! Real `redis-server` processes for the tests (standalone, or cluster
//! nodes) on free loopback ports, killed on drop. The one Redis harness of
//! the issuer and verifier tests.
//!
//! Without `redis-server` on PATH the Redis tests are skipped with a notice,
//! except under `MCPGATE_E2E_STRICT=1` (set by tests/run), where they fail:
//! a run that lacks a prerequisite must not pass silently.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A redis-server on a loopback port; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

fn strict() -> bool {
    std::env::var("MCPGATE_E2E_STRICT").is_ok_and(|v| v == "1")
}

/// Whether `redis-server` runs here. When it does not: a skip notice, or,
/// under `MCPGATE_E2E_STRICT=1`, a panic that fails the test.
pub fn available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        assert!(
            !strict(),
            "redis-server not found on PATH (MCPGATE_E2E_STRICT=1: Redis tests must run)"
        );
        eprintln!("SKIP: redis-server not found on PATH");
    }
    found
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A port whose cluster-bus twin (+10000) is also free.
fn cluster_port() -> u16 {
    loop {
        let p = 20000 + rand::random::<u16>() % 25000;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(p) && free(p + 10000) {
            return p;
        }
    }
}

/// Whether a server on `port` answers `PING`.
fn pong(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Polls `f` (every 10 ms) until it holds; panics with `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// === impl RedisServer ===

impl RedisServer {
    /// A server on a free port; `None` (skip) without redis-server.
    pub fn start() -> Option<Self> {
        Self::start_on(free_port())
    }

    /// A server on `port` (a restart where a client expects it).
    pub fn start_on(port: u16) -> Option<Self> {
        available().then(|| Self::spawn(port, false))
    }

    fn spawn(port: u16, cluster: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        if cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
        }
        let child = cmd
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            port,
            child,
            _dir: dir,
        };
        wait_for(Duration::from_secs(10), "redis-server answers", || {
            pong(port)
        });
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli -p <port> <args>`'s output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three cluster-enabled masters joined with `redis-cli --cluster create`;
/// `None` (skip) without redis-server.
pub async fn start_cluster() -> Option<Vec<RedisServer>> {
    start_cluster_of(3, 0).await
}

/// `count` cluster-enabled nodes with `replicas` replicas per master.
pub async fn start_cluster_of(count: usize, replicas: u8) -> Option<Vec<RedisServer>> {
    if !available() {
        return None;
    }
    let nodes: Vec<RedisServer> = (0..count)
        .map(|_| RedisServer::spawn(cluster_port(), true))
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let start = Instant::now();
    loop {
        let ok = nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
        if ok {
            return Some(nodes);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "redis cluster never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
