//! Decision logs: one structured line per decision on `mcpgate::decision`,
//! denials at info, with the request's correlation ids and never a token
//! or a query string.

use super::support::*;
use serde_json::Value;

use crate::log_capture::{capture, Buf};

trait DecisionLines {
    fn decisions(&self) -> Vec<Value>;
}

impl DecisionLines for Buf {
    /// The JSON lines written on the decision target.
    fn decisions(&self) -> Vec<Value> {
        self.on_target("mcpgate::decision")
    }
}

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_denial_is_one_info_line_with_ids_and_no_token() {
    let (buf, _g) = capture(tracing::Level::INFO);
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(&iss.url, &[])).await;
    // Valid signature, wrong scope: a 403 whose token must not be logged.
    let token = key.sign(&claims(&iss.url, "other"));
    let auth = format!("Bearer {token}");
    let r = grpc_check(
        v.grpc_addr,
        "/mcp/./x?secret=q1",
        &[
            ("authorization", &auth),
            ("x-request-id", "req-grpc-1"),
            ("traceparent", TRACE),
        ],
    )
    .await;
    assert_eq!(summarize(&r).0, 403);
    let r = reqwest::Client::new()
        .get(format!("http://{}/auth", v.http_addr))
        .header("authorization", &auth)
        .header("x-forwarded-host", "MCP.test")
        .header("x-forwarded-uri", "/mcp?secret=q2")
        .header("x-request-id", "req-http-1")
        .header("traceparent", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Allows are not logged at info by default.
    let good = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let r = grpc_check(v.grpc_addr, "/mcp", &[("authorization", &good)]).await;
    assert_eq!(summarize(&r).0, 200);
    v.shutdown().await;

    let lines = buf.decisions();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let (g, h) = (&lines[0], &lines[1]);
    for l in [g, h] {
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["decision"], "deny");
        assert_eq!(l["status"], 403);
        assert_eq!(l["reason"], "insufficient_scope");
        assert_eq!(l["host"], "mcp.test");
        assert_eq!(l["resource"], "http://mcp.test/mcp");
        // The shorthand resource is a catch-all route.
        assert_eq!(l["route"], "/");
        // The token was verified before the scope check: who was refused.
        assert_eq!(l["sub"], "user-1");
        assert_eq!(l["client_id"], "client-1");
        assert_eq!(l["jti_hash"].as_str().unwrap().len(), 12);
    }
    assert_eq!(g["protocol"], "grpc");
    assert_eq!(g["request_id"], "req-grpc-1");
    assert_eq!(g["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(g["path"], "/mcp/x");
    assert_eq!(h["protocol"], "http");
    assert_eq!(h["request_id"], "req-http-1");
    assert_eq!(h["trace_id"], "");
    assert_eq!(h["path"], "/mcp");
    let all = buf.text();
    for secret in [token.as_str(), "secret=", "q1", "q2"] {
        assert!(!all.contains(secret), "{secret} was logged: {all}");
    }
    // An unverified token says nothing about who sent it.
    let (buf2, _g2) = capture(tracing::Level::INFO);
    let v = start(config(&iss.url, &[])).await;
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let flip = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{signed}.{flip}{}", &sig[1..]);
    let r = grpc_check(
        v.grpc_addr,
        "/mcp",
        &[("authorization", &format!("Bearer {forged}"))],
    )
    .await;
    assert_eq!(summarize(&r).0, 401);
    v.shutdown().await;
    let l = &buf2.decisions()[0];
    assert_eq!(l["reason"], "bad_signature");
    assert_eq!(
        (l["sub"].as_str(), l["jti_hash"].as_str()),
        (Some(""), Some(""))
    );
    // No signature part either (a log line must not help rebuild a token).
    let sig = token.rsplit('.').next().unwrap();
    assert!(!all.contains(sig));
}

#[tokio::test]
async fn sampled_allows_carry_the_identity_and_a_jti_hash() {
    let (buf, _g) = capture(tracing::Level::INFO);
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_LOG_ALLOW_SAMPLE", "1")],
    ))
    .await;
    let c = claims(&iss.url, "mcp");
    let jti = c["jti"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {}", key.sign(&c));
    // A forged, oversized or multi-line id is dropped, not logged.
    let long = "x".repeat(200);
    let r = grpc_check(
        v.grpc_addr,
        "/mcp",
        &[("authorization", &auth), ("x-request-id", &long)],
    )
    .await;
    assert_eq!(summarize(&r).0, 200);
    v.shutdown().await;
    let lines = buf.decisions();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let l = &lines[0];
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["decision"], "allow");
    assert_eq!(l["status"], 200);
    assert_eq!(l["sub"], "user-1");
    assert_eq!(l["client_id"], "client-1");
    assert_eq!(l["request_id"], "");
    let h = l["jti_hash"].as_str().unwrap();
    assert_eq!(h.len(), 12);
    assert!(!buf.text().contains(&jti));
}

#[test]
fn a_sample_outside_zero_to_one_stops_the_start() {
    for bad in ["-0.1", "1.5", "NaN"] {
        let env: std::collections::HashMap<String, String> = [
            ("MCPGW_VERIFIER_ISSUERS", "https://as.example.com"),
            ("MCPGW_VERIFIER_RESOURCE", "https://mcp.example.com/mcp"),
            ("MCPGW_VERIFIER_LOG_ALLOW_SAMPLE", bad),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = mcpgate::config::verifier::VerifierConfig::load(&env).unwrap_err();
        assert!(err.to_string().contains("log_allow_sample"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn allows_are_at_debug_and_envoy_s_own_request_id_is_used() {
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    let (buf, _g) = capture(tracing::Level::DEBUG);
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(&iss.url, &[])).await;
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let mut c = AuthorizationClient::connect(format!("http://{}", v.grpc_addr))
        .await
        .unwrap();
    let req = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "envoy-id-7".into(),
                    method: "POST".into(),
                    host: "mcp.test".into(),
                    path: "/mcp".into(),
                    headers: [("authorization".to_string(), auth)].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let r = c.check(req).await.unwrap().into_inner();
    assert_eq!(summarize(&r).0, 200);
    v.shutdown().await;
    let lines = buf.decisions();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["level"], "DEBUG");
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[0]["request_id"], "envoy-id-7");
}
