//! Graceful shutdown: the listeners close at once, the Checks and requests
//! in flight finish, and the drain is bounded by `shutdown_grace_secs`.
//!
//! Each request in flight is held inside the verifier by a JWKS fetch that
//! waits on a gate: its token names a kid the verifier has not seen, so the
//! Check fetches the JWKS again. One issuer per request, so that every
//! request's fetch is observable (fetches of one issuer are serialised).

use super::support::*;
use mcpgate::app::verifier::{build, RunningVerifier, VerifierDeps};
use mcpgate::infra::jwks::JwksFetcher;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Serves discovery and JWKS for `http://127.0.0.1:9/i<n>` issuers; once
/// `armed`, every JWKS fetch counts itself in `entered` and waits for `open`.
struct GatedFetcher {
    old: serde_json::Value,
    both: serde_json::Value,
    armed: AtomicBool,
    entered: AtomicUsize,
    open: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl JwksFetcher for GatedFetcher {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        const WK: &str = "/.well-known/oauth-authorization-server";
        if let Some(i) = url.find(WK) {
            let iss = format!("{}{}", &url[..i], &url[i + WK.len()..]);
            return Ok(json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")})
                .to_string()
                .into_bytes());
        }
        if !url.ends_with("/jwks") {
            return Err("not found".into());
        }
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(self.old.to_string().into_bytes());
        }
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|o| *o).await;
        Ok(self.both.to_string().into_bytes())
    }
}

fn issuer(n: usize) -> String {
    format!("http://127.0.0.1:9/i{n}")
}

/// A verifier trusting `n` gated issuers on `threads` serving threads.
async fn gated(
    n: usize,
    threads: usize,
    grace: &str,
) -> (
    RunningVerifier,
    Arc<GatedFetcher>,
    watch::Sender<bool>,
    TestKey,
) {
    let (old, new) = (TestKey::es256("old"), TestKey::es256("new"));
    let (open_tx, open) = watch::channel(false);
    let fetcher = Arc::new(GatedFetcher {
        old: json!({"keys": [old.jwk]}),
        both: json!({"keys": [old.jwk, new.jwk]}),
        armed: AtomicBool::new(false),
        entered: AtomicUsize::new(0),
        open,
    });
    let issuers: Vec<String> = (0..n).map(issuer).collect();
    let cfg = config(
        &issuers.join(","),
        &[("MCPGW_VERIFIER_SHUTDOWN_GRACE_SECS", grace)],
    );
    let deps = VerifierDeps {
        jwks_fetcher: Some(fetcher.clone()),
        ..Default::default()
    };
    let v = build(cfg, deps).unwrap().serve_on(threads).await.unwrap();
    poll(Duration::from_secs(10), || (v.state.jwks_loaded)()).await;
    fetcher.armed.store(true, Ordering::SeqCst);
    (v, fetcher, open_tx, new)
}

/// Polls `f` every 10 ms until it holds; panics after `limit`.
async fn poll(limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "condition not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn refused(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

async fn http_auth(addr: SocketAddr, auth: String) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{addr}/auth"))
        .header("authorization", auth)
        .header("x-forwarded-host", "mcp.test")
        .header("x-forwarded-uri", "/mcp")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn shutdown_drains_checks_and_requests_in_flight_and_refuses_new_connections() {
    for threads in [1, 2] {
        let n = 8;
        let (v, fetcher, open, key) = gated(n, threads, "10").await;
        let (http, grpc) = (v.http_addr, v.grpc_addr);
        let mut inflight = Vec::new();
        for i in 0..n {
            let auth = format!("Bearer {}", key.sign(&claims(&issuer(i), "mcp")));
            inflight.push(if i % 2 == 0 {
                tokio::spawn(async move {
                    summarize(&grpc_check(grpc, "/mcp", &[("authorization", &auth)]).await).0
                })
            } else {
                tokio::spawn(http_auth(http, auth))
            });
        }
        // Every request is inside the verifier, waiting on its JWKS fetch.
        poll(Duration::from_secs(10), || {
            fetcher.entered.load(Ordering::SeqCst) == n
        })
        .await;

        let started = Instant::now();
        let stopping = tokio::spawn(v.shutdown());
        // New connections are refused while the old ones drain, on every
        // listener of every serving thread.
        let mut closed = false;
        while !closed {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still accepting"
            );
            closed = refused(http).await && refused(grpc).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..10 {
            assert!(
                refused(http).await && refused(grpc).await,
                "accepted after shutdown"
            );
        }
        assert!(
            !stopping.is_finished(),
            "shutdown did not wait for the requests in flight"
        );

        let _ = open.send(true);
        for (i, r) in inflight.into_iter().enumerate() {
            assert_eq!(r.await.unwrap(), 200, "request {i} ({threads} threads)");
        }
        tokio::time::timeout(Duration::from_secs(5), stopping)
            .await
            .expect("shutdown finishes once drained")
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the drain took the whole grace"
        );
    }
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_period() {
    let (v, fetcher, _open, key) = gated(2, 1, "1").await;
    let (http, grpc) = (v.http_addr, v.grpc_addr);
    let auth = format!("Bearer {}", key.sign(&claims(&issuer(0), "mcp")));
    let stuck = tokio::spawn(async move {
        summarize(&grpc_check(grpc, "/mcp", &[("authorization", &auth)]).await).0
    });
    let auth = format!("Bearer {}", key.sign(&claims(&issuer(1), "mcp")));
    let stuck_http = tokio::spawn(http_auth(http, auth));
    poll(Duration::from_secs(10), || {
        fetcher.entered.load(Ordering::SeqCst) == 2
    })
    .await;
    // The gate never opens: the drain gives up after the grace.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), v.shutdown())
        .await
        .expect("shutdown is bounded");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(refused(http).await && refused(grpc).await);
    stuck.abort();
    stuck_http.abort();
}

/// A real issuer on loopback for `/i<n>` issuers whose JWKS fetches,
/// once armed, wait for the gate (for the binary, which fetches over HTTP).
async fn gated_http_issuer(
    old: &TestKey,
    new: &TestKey,
    armed: Arc<AtomicBool>,
    entered: Arc<AtomicUsize>,
    open: watch::Receiver<bool>,
) -> String {
    use axum::extract::Path;
    use axum::routing::get;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let (b2, o, both) = (
        base.clone(),
        json!({"keys": [old.jwk]}),
        json!({"keys": [old.jwk, new.jwk]}),
    );
    let app = axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server/{name}",
            get(move |Path(name): Path<String>| {
                let iss = format!("{b2}/{name}");
                async move { axum::Json(json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")})) }
            }),
        )
        .route(
            "/{name}/jwks",
            get(move || {
                let (armed, entered, mut open) = (armed.clone(), entered.clone(), open.clone());
                let (o, both) = (o.clone(), both.clone());
                async move {
                    if !armed.load(Ordering::SeqCst) {
                        return axum::Json(o);
                    }
                    entered.fetch_add(1, Ordering::SeqCst);
                    let _ = open.wait_for(|o| *o).await;
                    axum::Json(both)
                }
            }),
        );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    base
}

#[tokio::test]
async fn the_binary_drains_on_sigterm_and_exits_zero() {
    use tokio::io::AsyncBufReadExt;
    let (old, new) = (TestKey::es256("old"), TestKey::es256("new"));
    let (armed, entered) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (open_tx, open) = watch::channel(false);
    let base = gated_http_issuer(&old, &new, armed.clone(), entered.clone(), open).await;
    let n = 4;
    let issuers: Vec<String> = (0..n).map(|i| format!("{base}/i{i}")).collect();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifier"))
        .env("MCPGW_VERIFIER_ISSUERS", issuers.join(","))
        .env("MCPGW_VERIFIER_RESOURCE", "http://mcp.test/mcp")
        .env("MCPGW_VERIFIER_REQUIRED_SCOPES", "mcp")
        .env("MCPGW_VERIFIER_HTTP_ADDR", "127.0.0.1:0")
        .env("MCPGW_VERIFIER_GRPC_ADDR", "127.0.0.1:0")
        .env("MCPGW_VERIFIER_JWKS_MIN_REFETCH_SECS", "0")
        .env("MCPGW_VERIFIER_WORKER_THREADS", "2")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = |v: &serde_json::Value, k: &str| -> SocketAddr {
        let f = v.get("fields").unwrap_or(v);
        f[k].as_str().unwrap().parse().unwrap()
    };
    let (http, grpc) = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the verifier starts")
            .unwrap()
            .expect("the verifier logs `listening`");
        if line.contains("listening") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break (addr(&v, "http"), addr(&v, "grpc"));
        }
    };
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let l2 = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            l2.lock().unwrap().push_str(&l);
        }
    });
    let ready = || async move {
        reqwest::get(format!("http://{http}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    let start = Instant::now();
    while !ready().await {
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    armed.store(true, Ordering::SeqCst);
    let mut inflight = Vec::new();
    for (i, iss) in issuers.iter().enumerate() {
        let auth = format!("Bearer {}", new.sign(&claims(iss, "mcp")));
        inflight.push(if i % 2 == 0 {
            tokio::spawn(async move {
                summarize(&grpc_check(grpc, "/mcp", &[("authorization", &auth)]).await).0
            })
        } else {
            tokio::spawn(http_auth(http, auth))
        });
    }
    poll(Duration::from_secs(10), || {
        entered.load(Ordering::SeqCst) == n
    })
    .await;

    let pid = child.id().unwrap().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let start = Instant::now();
    while !(refused(http).await && refused(grpc).await) {
        assert!(start.elapsed() < Duration::from_secs(5), "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = open_tx.send(true);
    for (i, r) in inflight.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), 200, "request {i}");
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the verifier exits once drained")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        log.lock().unwrap().contains("drained"),
        "{}",
        log.lock().unwrap()
    );
}
