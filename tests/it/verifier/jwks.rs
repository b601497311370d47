//! JWKS rotation and recovery from a failed first fetch.

use super::support::*;

#[tokio::test]
async fn rotated_key_is_picked_up_without_restart() {
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::es256("k2");
    let iss = Issuer::start(&[&k1]).await;
    let v = start(config(&iss.url, &[])).await;
    let t1 = format!("Bearer {}", k1.sign(&claims(&iss.url, "mcp")));
    assert_eq!(
        summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &t1)]).await).0,
        200
    );
    iss.set_keys(&[&k2]);
    let t2 = format!("Bearer {}", k2.sign(&claims(&iss.url, "mcp")));
    assert_eq!(
        summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &t2)]).await).0,
        200
    );
    v.shutdown().await;
}

#[tokio::test]
async fn first_fetch_failure_does_not_poison_the_cache() {
    let k1 = TestKey::es256("k1");
    let iss = Issuer::start(&[&k1]).await;
    iss.set_fail(true);
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_JWKS_MIN_REFETCH_SECS", "0.2")],
    ))
    .await;
    let t1 = format!("Bearer {}", k1.sign(&claims(&iss.url, "mcp")));
    let ready = format!("http://{}/readyz", v.http_addr);
    let ready_status = || async { reqwest::get(&ready).await.unwrap().status().as_u16() };
    // No keys yet: the verifier is the one broken, so 503 without a
    // challenge (never "invalid_token"), and not ready.
    let (status, h, _) =
        summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &t1)]).await);
    assert_eq!(status, 503);
    assert!(!h.contains_key("www-authenticate"), "{h:?}");
    assert_eq!(ready_status().await, 503);
    iss.set_fail(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &t1)]).await).0;
        if s == 200 {
            break;
        }
        assert_eq!(s, 503);
        assert!(std::time::Instant::now() < deadline, "keys never loaded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready_status().await, 200);
    v.shutdown().await;
}

#[tokio::test]
async fn unknown_kids_are_rate_limited() {
    let k1 = TestKey::es256("k1");
    let stranger = TestKey::es256("zz");
    let iss = Issuer::start(&[&k1]).await;
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_JWKS_MIN_REFETCH_SECS", "60")],
    ))
    .await;
    let t1 = format!("Bearer {}", k1.sign(&claims(&iss.url, "mcp")));
    assert_eq!(
        summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &t1)]).await).0,
        200
    );
    let hits = iss.jwks_hits();
    for _ in 0..5 {
        let t = format!("Bearer {}", stranger.sign(&claims(&iss.url, "mcp")));
        assert_eq!(
            summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &t)]).await).0,
            401
        );
    }
    assert!(
        iss.jwks_hits() <= hits + 1,
        "{} fetches",
        iss.jwks_hits() - hits
    );
    v.shutdown().await;
}

#[tokio::test]
async fn an_empty_or_unreachable_jwks_keeps_the_last_good_keys() {
    let k1 = TestKey::es256("k1");
    let iss = Issuer::start(&[&k1]).await;
    let v = start(config(
        &iss.url,
        &[
            ("MCPGW_VERIFIER_JWKS_REFRESH_SECS", "0.1"),
            ("MCPGW_VERIFIER_JWKS_MIN_REFETCH_SECS", "0"),
        ],
    ))
    .await;
    let t1 = format!("Bearer {}", k1.sign(&claims(&iss.url, "mcp")));
    let check =
        async || summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &t1)]).await).0;
    assert_eq!(check().await, 200);
    for phase in ["empty", "unreachable"] {
        if phase == "empty" {
            iss.set_keys(&[]);
        } else {
            iss.set_fail(true);
        }
        // Several refreshes (and kid-miss refetches) happen meanwhile.
        let hits = iss.jwks_hits();
        let t0 = std::time::Instant::now();
        while iss.jwks_hits() < hits + 3 {
            assert_eq!(
                check().await,
                200,
                "{phase} JWKS dropped the last good keys"
            );
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(5),
                "no refresh"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(check().await, 200, "{phase}");
    }
    let m = metrics_text(&v).await;
    assert!(m.contains("jwks_fetches_total{result=\"error\"}"), "{m}");
    // What an SRE alerts on: when the keys last loaded, how long decisions
    // take, which build runs.
    let last = format!(
        "mcpgate_verifier_jwks_last_success_timestamp_seconds{{issuer=\"{}\"}} ",
        iss.url
    );
    let at: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix(last.as_str()))
        .unwrap_or_else(|| panic!("no {last} in {m}"))
        .trim()
        .parse()
        .unwrap();
    assert!(at > 1.7e9, "{at}");
    assert!(
        m.contains("mcpgate_verifier_decision_duration_seconds_count{protocol=\"grpc\"}"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "mcpgate_verifier_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{m}"
    );
    v.shutdown().await;
}
