//! ext_authz Check over a real tonic client.

use super::support::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

#[tokio::test]
async fn allow_injects_identity_and_strips_authorization() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(&iss.url, &[])).await;
    let tok = key.sign(&claims(&iss.url, "mcp files:read"));
    let auth = format!("Bearer {tok}");
    let r = grpc_check(
        v.grpc_addr,
        "/mcp",
        &[("authorization", &auth), ("x-user-id", "evil")],
    )
    .await;
    let (status, set, removed) = summarize(&r);
    assert_eq!(status, 200, "{r:?}");
    assert_eq!(set["x-user-id"], "user-1");
    assert_eq!(set["x-user-name"], "alice");
    assert_eq!(set["x-user-email"], "alice@example.com");
    assert_eq!(set["x-user-scopes"], "files:read mcp");
    assert_eq!(set["x-client-id"], "client-1");
    assert!(removed.contains(&"authorization".to_string()));
    // The cached path answers the same.
    let r2 = grpc_check(v.grpc_addr, "/mcp", &[("authorization", &auth)]).await;
    assert_eq!(summarize(&r2).0, 200);
    v.shutdown().await;
}

#[tokio::test]
async fn eddsa_and_rs256_tokens_verify() {
    let ed = TestKey::ed25519("ed");
    let rs = TestKey::rs256("rs");
    let iss = Issuer::start(&[&ed, &rs]).await;
    let v = start(config(&iss.url, &[])).await;
    for key in [&ed, &rs] {
        let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
        let r = grpc_check(v.grpc_addr, "/mcp", &[("authorization", &auth)]).await;
        assert_eq!(summarize(&r).0, 200, "{:?}", key.alg);
    }
    v.shutdown().await;
}

#[tokio::test]
async fn missing_token_gets_401_with_metadata_and_scope() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(&iss.url, &[])).await;
    let (status, h, _) = summarize(&grpc_check(v.grpc_addr, "/mcp", &[]).await);
    assert_eq!(status, 401);
    assert_eq!(
        h["www-authenticate"],
        "Bearer resource_metadata=\"http://mcp.test/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
    );
    v.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_get_401_invalid_token() {
    let key = TestKey::es256("k1");
    let other = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(&iss.url, &[])).await;
    let mut expired = claims(&iss.url, "mcp");
    expired["exp"] = json!(now() - 120);
    let mut wrong_aud = claims(&iss.url, "mcp");
    wrong_aud["aud"] = json!("http://mcp.test/other");
    let wrong_iss = claims("http://127.0.0.1:1", "mcp");
    let mut hs = Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some("k1".into());
    let hs256 = jsonwebtoken::encode(
        &hs,
        &claims(&iss.url, "mcp"),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let good = key.sign(&claims(&iss.url, "mcp"));
    let body = good.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{body}.");
    let cases = [
        ("bad signature", other.sign(&claims(&iss.url, "mcp"))),
        ("expired", key.sign(&expired)),
        ("wrong aud", key.sign(&wrong_aud)),
        ("wrong iss", key.sign(&wrong_iss)),
        ("alg none", none),
        ("hs256", hs256),
        ("garbage", "a.b.c".into()),
        ("huge", "a".repeat(20_000)),
    ];
    for (name, tok) in cases {
        let auth = format!("Bearer {tok}");
        let (status, h, _) =
            summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &auth)]).await);
        assert_eq!(status, 401, "{name}");
        assert!(
            h["www-authenticate"].starts_with("Bearer error=\"invalid_token\""),
            "{name}: {h:?}"
        );
    }
    v.shutdown().await;
}

#[tokio::test]
async fn insufficient_scope_and_tool_scopes() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&format!(
        r#"
issuers = ["{}"]
jwks_min_refetch_secs = 0
[[routes]]
resource = "http://mcp.test/mcp"
required_scopes = ["mcp"]
tool_scopes = [{{ method = "tools/call", name = "delete_file", scopes = ["files:write"] }}]
"#,
        iss.url
    )))
    .await;
    // A POST that cannot be classified (no Mcp-Method, no body) on a route
    // with tool rules needs the strongest scopes those rules can require.
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "files:read")));
    let (status, h, _) =
        summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", &auth)]).await);
    assert_eq!(status, 403);
    assert_eq!(
        h["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"files:write mcp\", resource_metadata=\"http://mcp.test/.well-known/oauth-protected-resource/mcp\""
    );
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    // Headers before 2026-07-28 are not bound to the body: strongest.
    let old = [
        ("authorization", auth.as_str()),
        ("mcp-method", "tools/call"),
        ("mcp-name", "read_file"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    assert_eq!(
        summarize(&grpc_check(v.grpc_addr, "/mcp", &old).await).0,
        403
    );
    let read = [
        ("authorization", auth.as_str()),
        ("mcp-method", "tools/call"),
        ("mcp-name", "read_file"),
        ("mcp-protocol-version", "2026-07-28"),
    ];
    assert_eq!(
        summarize(&grpc_check(v.grpc_addr, "/mcp", &read).await).0,
        200
    );
    let del = [
        ("authorization", auth.as_str()),
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?ZGVsZXRlX2ZpbGU=?="),
        ("mcp-protocol-version", "2026-07-28"),
    ];
    let (status, h, _) = summarize(&grpc_check(v.grpc_addr, "/mcp", &del).await);
    assert_eq!(status, 403);
    assert!(
        h["www-authenticate"].contains("scope=\"files:write mcp\""),
        "{h:?}"
    );
    v.shutdown().await;
}

#[tokio::test]
async fn several_serving_threads_share_the_ports() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let app = mcpgate::app::verifier::build(config(&iss.url, &[]), Default::default()).unwrap();
    let v = app.serve_on(3).await.unwrap();
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    // Every call is a new connection; the kernel hands them to any of the
    // three listeners, and each answers the same.
    for _ in 0..24 {
        let r = grpc_check(v.grpc_addr, "/mcp", &[("authorization", &auth)]).await;
        assert_eq!(summarize(&r).0, 200, "{r:?}");
    }
    for _ in 0..24 {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let r = c
            .get(format!("http://{}/auth", v.http_addr))
            .header("authorization", &auth)
            .header("x-forwarded-host", "mcp.test")
            .header("x-forwarded-uri", "/mcp")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    v.shutdown().await;
}

#[tokio::test]
async fn a_taken_port_fails_the_start_with_several_threads() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let cfg = config(&iss.url, &[("MCPGW_VERIFIER_GRPC_ADDR", &addr)]);
    let app = mcpgate::app::verifier::build(cfg, Default::default()).unwrap();
    let err = app.serve_on(2).await.err().expect("the port is taken");
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test]
async fn a_second_verifier_on_the_same_ports_fails_whatever_the_threads() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let cfg = config(&iss.url, &[]);
    let first = mcpgate::app::verifier::build(cfg, Default::default())
        .unwrap()
        .serve_on(2)
        .await
        .unwrap();
    for threads in [1, 2, 4] {
        let (h, g) = (first.http_addr.to_string(), first.grpc_addr.to_string());
        let cfg = config(
            &iss.url,
            &[
                ("MCPGW_VERIFIER_HTTP_ADDR", &h),
                ("MCPGW_VERIFIER_GRPC_ADDR", &g),
            ],
        );
        let app = mcpgate::app::verifier::build(cfg, Default::default()).unwrap();
        let err = app
            .serve_on(threads)
            .await
            .err()
            .unwrap_or_else(|| panic!("a second verifier started with {threads} threads"));
        assert!(err.to_string().contains("cannot bind"), "{err}");
    }
    first.shutdown().await;
}

fn check_with(
    path: &str,
    headers: &[(&str, &str)],
    raw: bool,
    body: &[u8],
) -> envoy_types::pb::envoy::service::auth::v3::CheckRequest {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    let mut http = HttpRequest {
        method: "POST".into(),
        host: "mcp.test".into(),
        path: path.into(),
        raw_body: body.to_vec(),
        ..Default::default()
    };
    if raw {
        http.header_map = Some(HeaderMap {
            headers: headers
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: k.to_string(),
                    raw_value: v.as_bytes().to_vec(),
                    ..Default::default()
                })
                .collect(),
        });
    } else {
        for (k, v) in headers {
            http.headers.insert(k.to_string(), v.to_string());
        }
    }
    envoy_types::pb::envoy::service::auth::v3::CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The body decides per-tool scopes for every protocol version; headers
/// that disagree with it, duplicated headers (raw header_map or Envoy's
/// joined value) and non-canonical paths are refused with 400.
#[tokio::test]
async fn body_duplicates_and_canonical_paths() {
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&format!(
        r#"
issuers = ["{}"]
[[routes]]
resource = "http://mcp.test/mcp"
required_scopes = ["mcp"]
tool_scopes = [{{ method = "tools/call", name = "delete_file", scopes = ["files:write"] }}]
"#,
        iss.url
    )))
    .await;
    let mut c = AuthorizationClient::connect(format!("http://{}", v.grpc_addr))
        .await
        .unwrap();
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let a = auth.as_str();
    let call = |name: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#)
    };
    let (read, del) = (call("read_file"), call("delete_file"));
    let batch = format!("[{read},{del}]");
    let joined = format!("{a},Bearer x");
    // (path, headers, as header_map, body, status)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool, &'a str, u16);
    let cases: Vec<Case> = vec![
        ("/mcp", vec![("authorization", a)], false, &read, 200),
        ("/mcp", vec![("authorization", a)], true, &read, 200),
        ("/mcp", vec![("authorization", a)], false, &del, 403),
        ("/mcp", vec![("authorization", a)], false, &batch, 403),
        (
            "/mcp",
            vec![("authorization", a), ("mcp-protocol-version", "2025-11-25")],
            true,
            &del,
            403,
        ),
        (
            "/mcp",
            vec![
                ("authorization", a),
                ("mcp-method", "tools/call"),
                ("mcp-name", "read_file"),
            ],
            false,
            &del,
            400,
        ),
        (
            "/mcp",
            vec![("authorization", a), ("authorization", a)],
            true,
            &read,
            400,
        ),
        (
            "/mcp",
            vec![("authorization", a), ("Authorization", "Bearer x")],
            true,
            &read,
            400,
        ),
        ("/mcp", vec![("authorization", &joined)], false, &read, 400),
        (
            "/mcp",
            vec![("authorization", a), ("mcp-name", "read_file,delete_file")],
            false,
            "",
            400,
        ),
        (
            "/mcp/..%2fadmin",
            vec![("authorization", a)],
            false,
            &read,
            400,
        ),
        (
            "/mcp/../../mcp",
            vec![("authorization", a)],
            false,
            &read,
            400,
        ),
        ("/x/../mcp", vec![("authorization", a)], false, &read, 200),
    ];
    for (i, (path, headers, raw, body, want)) in cases.into_iter().enumerate() {
        let r = c
            .check(check_with(path, &headers, raw, body.as_bytes()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(summarize(&r).0, want, "case {i}: {path} {headers:?} {body}");
    }
    v.shutdown().await;
}
