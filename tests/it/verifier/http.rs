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
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("mcpgate_verifier_decisions_total{protocol=\"http\",decision=\"deny\",reason=\"missing_token\"} 1"), "{m}");
    v.shutdown().await;
}
