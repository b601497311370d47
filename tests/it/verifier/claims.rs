//! Tokens of other authorization servers (`[[issuer_claims]]`): `scp`
//! instead of `scope`, scopes as arrays, `azp`/`appid` as the client, no
//! `jti`, roles mapped to scopes; mcpgate's defaults stay strict.

use super::support::*;
use serde_json::json;

#[tokio::test]
async fn third_party_claims_are_read_per_issuer() {
    let key = TestKey::es256("k1");
    let ours = Issuer::start(&[&key]).await;
    let entra = Issuer::start(&[&key]).await;
    let toml = format!(
        r#"
issuers = ["{ours}", "{entra}"]
resource = "http://mcp.test/mcp"
required_scopes = ["mcp"]
[[issuer_claims]]
issuer = "{entra}"
require_jti = false
scope_claims = ["scp"]
client_id_claims = ["azp", "appid"]
user_id_claim = "oid"
name_claims = ["preferred_username"]
role_scopes = {{ "MCP.Users" = ["mcp"] }}
"#,
        ours = ours.url,
        entra = entra.url
    );
    let v = start(config_toml(&toml)).await;
    let c = reqwest::Client::new();
    let auth = |tok: String| {
        c.get(format!("http://{}/auth", v.http_addr))
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "mcp.test")
            .header("x-forwarded-uri", "/mcp")
            .header("authorization", format!("Bearer {tok}"))
            .send()
    };
    let n = now();
    let entra_claims = |extra: serde_json::Value| {
        let mut c = json!({"iss": entra.url, "oid": "oid-1", "sub": "pairwise", "aud": "http://mcp.test/mcp",
                           "exp": n + 300, "iat": n, "appid": "app-1", "preferred_username": "al@corp"});
        for (k, val) in extra.as_object().unwrap() {
            c[k] = val.clone();
        }
        c
    };

    // Entra-style: scp string, no jti, appid, oid.
    let r = auth(key.sign(&entra_claims(json!({"scp": "mcp other"}))))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user-id"], "oid-1");
    assert_eq!(r.headers()["x-client-id"], "app-1");
    assert_eq!(r.headers()["x-user-name"], "al@corp");
    // A role mapped to the scope, no scp at all.
    let r = auth(key.sign(&entra_claims(json!({"roles": ["MCP.Users"]}))))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Neither: 403; `scope` is not read for this issuer.
    let r = auth(key.sign(&entra_claims(json!({"scope": "mcp", "roles": ["Other"]}))))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // mcpgate's defaults: `scope` as an array is read; no `jti` is refused.
    let mut mine = claims(&ours.url, "x");
    mine["scope"] = json!(["mcp", "x"]);
    assert_eq!(auth(key.sign(&mine)).await.unwrap().status(), 200);
    mine.as_object_mut().unwrap().remove("jti");
    assert_eq!(auth(key.sign(&mine)).await.unwrap().status(), 401);
    // `scp` means nothing for this issuer.
    let mut scp = claims(&ours.url, "");
    scp.as_object_mut().unwrap().remove("scope");
    scp["scp"] = json!("mcp");
    assert_eq!(auth(key.sign(&scp)).await.unwrap().status(), 403);
    v.shutdown().await;
}

#[test]
fn issuer_claims_config_is_checked() {
    let bad = |extra: &str| {
        let t = format!(
            "issuers = [\"https://a.example\"]\nresource = \"https://m.example/mcp\"\n{extra}"
        );
        mcpgate::config::verifier::RawConfig::from_toml(&t)
            .ok()
            .and_then(|r| r.validate().ok())
            .is_none()
    };
    assert!(bad(
        "[[issuer_claims]]\nissuer = \"https://other.example\"\n"
    ));
    assert!(bad("[[issuer_claims]]\nrequire_jti = false\n"));
    assert!(bad(
        "[[issuer_claims]]\nissuer = \"https://a.example\"\nscope_claims = []\n"
    ));
    assert!(bad("[[issuer_claims]]\nissuer = \"https://a.example\"\n[[issuer_claims]]\nissuer = \"https://a.example\"\n"));
    assert!(bad(
        "[[issuer_claims]]\nissuer = \"https://a.example\"\nscopes = [\"x\"]\n"
    ));
    assert!(!bad(
        "[[issuer_claims]]\nissuer = \"https://a.example\"\nscope_claims = [\"scp\"]\n"
    ));
}
