//! The verifier's `/metrics` is on its own listener (`metrics_addr`,
//! loopback by default), never on the ForwardAuth port proxies reach.

use super::support::*;
use std::collections::HashMap;

/// A raw HTTP/1.1 GET (no client-side path normalisation): the status.
async fn raw_status(addr: std::net::SocketAddr, target: &str) -> u16 {
    crate::raw_http::raw_status(addr, "GET", target, "mcp.test", "").await
}

#[tokio::test]
async fn metrics_are_served_on_the_metrics_listener_only() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(&iss.url, &[])).await;
    assert_ne!(v.http_addr, v.metrics_addr);
    assert!(v.metrics_addr.ip().is_loopback());
    for t in [
        "/metrics",
        "/Metrics",
        "/METRICS",
        "//metrics",
        "/metrics/",
        "/./metrics",
        "/auth/../metrics",
        "/%6detrics",
        "/%2Fmetrics",
        "http://mcp.test/metrics",
    ] {
        let st = raw_status(v.http_addr, t).await;
        assert!(st == 404 || st == 400, "{t} on the ForwardAuth port: {st}");
    }
    assert_eq!(raw_status(v.metrics_addr, "/metrics").await, 200);
    assert_eq!(raw_status(v.metrics_addr, "/healthz").await, 200);
    // Nothing of the decision surface on the metrics listener.
    assert_eq!(raw_status(v.metrics_addr, "/auth").await, 404);
    let m = metrics_text(&v).await;
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "mcpgate_verifier_build_info",
    ] {
        assert!(m.contains(&format!("\n{family}")), "{family} missing:\n{m}");
    }
    v.shutdown().await;
}

fn load(env: &[(&str, &str)]) -> Result<mcpgate::config::verifier::VerifierConfig, String> {
    let mut m: HashMap<String, String> = [
        ("MCPGW_VERIFIER_ISSUERS", "https://auth.example.com"),
        ("MCPGW_VERIFIER_RESOURCE", "https://mcp.example.com/mcp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in env {
        m.insert(k.to_string(), v.to_string());
    }
    mcpgate::config::verifier::VerifierConfig::load(&m).map_err(|e| e.to_string())
}

#[test]
fn the_metrics_listener_binds_loopback_by_default() {
    let c = load(&[]).unwrap();
    assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:8091");
    let c = load(&[("MCPGW_VERIFIER_HTTP_ADDR", "0.0.0.0:8081")]).unwrap();
    assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:8091");
    let c = load(&[("MCPGW_VERIFIER_HTTP_ADDR", "127.0.0.1:0")]).unwrap();
    assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:0");
    let c = load(&[("MCPGW_VERIFIER_METRICS_ADDR", "0.0.0.0:9464")]).unwrap();
    assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:9464");
    for same in ["127.0.0.1:8081", "0.0.0.0:8081"] {
        let e = load(&[("MCPGW_VERIFIER_METRICS_ADDR", same)]).unwrap_err();
        assert!(e.contains("metrics_addr"), "{e}");
    }
    let e = load(&[("MCPGW_VERIFIER_METRICS_ADRR", "127.0.0.1:1")]).unwrap_err();
    assert!(e.contains("MCPGW_VERIFIER_METRICS_ADDR"), "{e}");
}
