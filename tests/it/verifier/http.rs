//! ForwardAuth / auth_request over HTTP, X-Forwarded-* trust, RFC 9728
//! metadata, health and metrics.

use super::support::*;

fn toml(issuer: &str, trusted: &str) -> String {
    format!(
        r#"
issuers = ["{issuer}"]
trusted_proxies = [{trusted}]
[[routes]]
resource = "http://mcp.test/mcp"
required_scopes = ["mcp"]
resource_name = "Test MCP"
[[routes]]
host = "open.test"
resource = "http://open.test/"
path_prefix = "/"
public = true
[[routes]]
host = "root.test"
resource = "http://root.test"
path_prefix = "/"
required_scopes = ["root", "offline_access"]
"#
    )
}

#[tokio::test]
async fn forward_auth_decisions() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&toml(&iss.url, "\"127.0.0.1/32\""))).await;
    let c = reqwest::Client::new();
    let auth_url = format!("http://{}/auth", v.http_addr);
    let fwd = |r: reqwest::RequestBuilder| {
        r.header("x-forwarded-method", "POST")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "mcp.test")
            .header("x-forwarded-uri", "/mcp")
    };

    let r = fwd(c.get(&auth_url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let ch = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        ch.contains(
            "resource_metadata=\"http://mcp.test/.well-known/oauth-protected-resource/mcp\""
        ),
        "{ch}"
    );

    let good = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let r = fwd(c.get(&auth_url))
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user-id"], "user-1");
    assert_eq!(r.headers()["x-client-id"], "client-1");

    let weak = format!("Bearer {}", key.sign(&claims(&iss.url, "other")));
    let r = fwd(c.get(&auth_url))
        .header("authorization", &weak)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));

    let r = fwd(c.get(&auth_url))
        .header("authorization", "Bearer @@@")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));

    // nginx style: X-Original-URI on a sub-path.
    let r = c
        .get(format!("{auth_url}/anything"))
        .header("x-original-uri", "/mcp/x")
        .header("host", "mcp.test")
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Trusted proxy: the forwarded host selects the public route.
    let r = c
        .get(&auth_url)
        .header("x-forwarded-host", "open.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    v.shutdown().await;
}

/// One source of truth: X-Forwarded-* and X-Original-* that disagree, any
/// fact sent twice, and several Authorization headers are refused (400);
/// a forwarded body (Traefik forwardBody) decides per-tool scopes.
#[tokio::test]
async fn forward_auth_refuses_ambiguity_and_reads_the_body() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&format!(
        r#"
issuers = ["{}"]
trusted_proxies = ["127.0.0.1/32"]
[[routes]]
resource = "http://mcp.test/mcp"
required_scopes = ["mcp"]
tool_scopes = [{{ method = "tools/call", name = "delete_file", scopes = ["files:write"] }}]
[[routes]]
host = "open.test"
resource = "http://open.test/"
path_prefix = "/"
public = true
"#,
        iss.url
    )))
    .await;
    let c = reqwest::Client::new();
    let url = format!("http://{}/auth", v.http_addr);
    let good = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let call = |n: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{n}"}}}}"#)
    };
    let base = || {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-forwarded-method", "POST".parse().unwrap());
        h.insert("x-forwarded-host", "mcp.test".parse().unwrap());
        h.insert("x-forwarded-uri", "/mcp".parse().unwrap());
        h.insert("authorization", good.parse().unwrap());
        h
    };
    let with = |extra: &[(&'static str, &str)]| {
        let mut h = base();
        for (k, v) in extra {
            h.append(*k, v.parse().unwrap());
        }
        h
    };
    let cases: Vec<(reqwest::header::HeaderMap, String, u16)> = vec![
        (base(), call("read_file"), 200),
        (base(), call("delete_file"), 403),
        (base(), String::new(), 403),
        (with(&[("x-original-uri", "/mcp")]), call("read_file"), 200),
        (
            with(&[("x-original-uri", "/public")]),
            call("read_file"),
            400,
        ),
        (
            with(&[("x-forwarded-uri", "/public")]),
            call("read_file"),
            400,
        ),
        (
            with(&[("x-original-host", "open.test")]),
            call("read_file"),
            400,
        ),
        (
            with(&[("x-forwarded-host", "open.test")]),
            call("read_file"),
            400,
        ),
        (
            with(&[("x-original-method", "GET")]),
            call("delete_file"),
            400,
        ),
        (
            with(&[("authorization", "Bearer x")]),
            call("read_file"),
            400,
        ),
        (with(&[("AUTHORIZATION", &good)]), call("read_file"), 400),
        (
            with(&[("mcp-method", "tools/call"), ("mcp-name", "read_file")]),
            call("delete_file"),
            400,
        ),
        (
            with(&[("mcp-name", "a"), ("mcp-name", "b")]),
            call("read_file"),
            400,
        ),
        (
            with(&[("mcp-protocol-version", "2025-11-25")]),
            call("delete_file"),
            403,
        ),
    ];
    for (i, (h, body, want)) in cases.into_iter().enumerate() {
        let r = c
            .post(&url)
            .headers(h.clone())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "case {i}: {h:?} {body}");
    }
    // Non-canonical targets and hosts: 400, never a weaker route.
    for (uri, host) in [
        ("/mcp/..%2fadmin", "mcp.test"),
        ("/../mcp", "mcp.test"),
        ("/mcp\\x", "mcp.test"),
        ("/mcp", "open..test"),
        ("/mcp", "open.test, mcp.test"),
    ] {
        let r = c
            .get(&url)
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{uri} {host}");
    }
    // A trailing dot, upper case and a port are the same host.
    let r = c
        .get(&url)
        .header("x-forwarded-uri", "/")
        .header("x-forwarded-host", "OPEN.test.:443")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    v.shutdown().await;
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&toml(&iss.url, "\"10.0.0.0/8\""))).await;
    let r = reqwest::Client::new()
        .get(format!("http://{}/auth/mcp", v.http_addr))
        .header("x-forwarded-host", "open.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    v.shutdown().await;
}

#[tokio::test]
async fn protected_resource_metadata_and_health() {
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&toml(&iss.url, "\"127.0.0.1/32\""))).await;
    let c = reqwest::Client::new();
    let base = format!("http://{}", v.http_addr);
    let doc: serde_json::Value = c
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .header("x-forwarded-host", "mcp.test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], "http://mcp.test/mcp");
    assert_eq!(doc["authorization_servers"][0], iss.url.as_str());
    assert_eq!(doc["bearer_methods_supported"][0], "header");
    assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp"]));
    assert_eq!(doc["resource_name"], "Test MCP");

    let root: serde_json::Value = c
        .get(format!("{base}/.well-known/oauth-protected-resource"))
        .header("x-forwarded-host", "root.test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["resource"], "http://root.test");
    assert_eq!(root["scopes_supported"], serde_json::json!(["root"]));

    let r = c
        .get(format!("{base}/.well-known/oauth-protected-resource/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let _ = c
        .get(format!("{base}/auth"))
        .header("x-forwarded-host", "mcp.test")
        .header("x-forwarded-uri", "/mcp")
        .send()
        .await
        .unwrap();
    let m = c
        .get(format!("http://{}/metrics", v.metrics_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("mcpgate_verifier_decisions_total{protocol=\"http\",decision=\"deny\",reason=\"missing_token\"} 1"), "{m}");
    v.shutdown().await;
}
