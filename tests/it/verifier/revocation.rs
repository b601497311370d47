//! Revocation through real Redis: propagation to two verifiers, and failing
//! closed while Redis is away.

use super::support::*;
use mcpgate::domain::clock::SystemClock;
use mcpgate::domain::revocation::{Revocation, RevocationSink};
use mcpgate::infra::revocation::RedisRevocationSink;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn status(v: &mcpgate::app::verifier::RunningVerifier, auth: &str) -> u16 {
    summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", auth)]).await).0
}

async fn wait_until(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f().await {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn revocation_reaches_two_verifiers_within_a_second() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let cfg = config(&iss.url, &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())]);
    let a = start(cfg.clone()).await;
    let b = start(cfg).await;
    let c = claims(&iss.url, "mcp");
    let jti = c["jti"].as_str().unwrap().to_owned();
    let exp = c["exp"].as_u64().unwrap();
    let auth = format!("Bearer {}", key.sign(&c));
    for v in [&a, &b] {
        let ok = wait_until(Duration::from_secs(5), async || {
            status(v, &auth).await == 200
        })
        .await;
        assert!(ok.is_some(), "verifier never allowed the token");
    }
    let sink = RedisRevocationSink::connect(
        &[redis.url()],
        false,
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    sink.publish(Revocation::Jti { id: jti, exp })
        .await
        .unwrap();
    for v in [&a, &b] {
        let took = wait_until(Duration::from_secs(2), async || {
            status(v, &auth).await == 401
        })
        .await;
        assert!(took.is_some(), "revocation never arrived");
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    // Each verifier measured the propagation of that one message.
    for v in [&a, &b] {
        let m = reqwest::get(format!("http://{}/metrics", v.http_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            m.contains("mcpgate_verifier_revocation_propagation_seconds_count 1"),
            "{m}"
        );
    }
    // A verifier started later learns it from the resync.
    let c2 = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())],
    ))
    .await;
    let late = wait_until(Duration::from_secs(5), async || {
        status(&c2, &auth).await == 401
    })
    .await;
    assert!(late.is_some());
    for v in [a, b, c2] {
        v.shutdown().await;
    }
}

#[tokio::test]
async fn redis_outage_fails_closed_then_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port;
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&format!(
        r#"
issuers = ["{}"]
redis_urls = ["{}"]
revocation_staleness_secs = 1.5
[[routes]]
resource = "http://mcp.test/mcp"
required_scopes = ["mcp"]
[[routes]]
resource = "http://mcp.test/lenient"
required_scopes = ["mcp"]
fail_open_on_stale_revocation = true
"#,
        iss.url,
        redis.url()
    )))
    .await;
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let ready = format!("http://{}/readyz", v.http_addr);
    let http = reqwest::Client::new();
    assert!(
        wait_until(Duration::from_secs(5), async || status(&v, &auth).await
            == 200)
        .await
        .is_some()
    );
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 200);

    redis.kill();
    let closed = wait_until(Duration::from_secs(6), async || {
        status(&v, &auth).await == 503
    })
    .await;
    assert!(closed.is_some(), "never failed closed");
    let r = http.get(&ready).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("revocation data stale"));
    let mut lenient = claims(&iss.url, "mcp");
    lenient["aud"] = serde_json::json!("http://mcp.test/lenient");
    let lenient = format!("Bearer {}", key.sign(&lenient));
    let r = grpc_check(v.grpc_addr, "/lenient", &[("authorization", &lenient)]).await;
    assert_eq!(summarize(&r).0, 200, "fail-open route must keep allowing");
    let m = http
        .get(format!("http://{}/metrics", v.http_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("mcpgate_verifier_revocation_stale 1"), "{m}");

    let _redis2 = RedisServer::start_on(port).unwrap();
    let back = wait_until(Duration::from_secs(8), async || {
        status(&v, &auth).await == 200
    })
    .await;
    assert!(back.is_some(), "never recovered");
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 200);
    v.shutdown().await;
}

#[tokio::test]
async fn revocation_through_redis_cluster() {
    let Some(nodes) = start_cluster().await else {
        return;
    };
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &urls.join(","))],
    ))
    .await;
    let c = claims(&iss.url, "mcp");
    let auth = format!("Bearer {}", key.sign(&c));
    assert!(
        wait_until(Duration::from_secs(5), async || status(&v, &auth).await
            == 200)
        .await
        .is_some()
    );
    let sink = RedisRevocationSink::connect(
        &urls,
        false,
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    sink.publish(Revocation::Subject {
        id: "user-1".into(),
        before: c["iat"].as_u64().unwrap(),
    })
    .await
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(2), async || status(&v, &auth).await
            == 401)
        .await
        .is_some()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
    v.shutdown().await;
}
