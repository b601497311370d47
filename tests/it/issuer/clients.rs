//! The request shapes of real MCP clients, replayed against the issuer
//! (README "Clients known to work"): how each registers (or names a client
//! metadata document), which redirect URI it then uses, and how it
//! authenticates at the token endpoint. Plus the refresh grace window
//! (RFC 9700 §4.14.2) on an injected clock.

use super::harness::*;
use async_trait::async_trait;
use mcpgate::app::issuer::{spawn, IssuerDeps};
use mcpgate::config::issuer::RawConfig;
use mcpgate::domain::clock::FixedClock;
use mcpgate::infra::revocation::LocalRevocations;
use mcpgate::issue::cimd::{FetchError, FetchedDocument, MetadataFetcher};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Claude Code's client metadata document URL (its shape: a localhost
/// redirect without a port, then an ephemeral port at run time).
const CLAUDE_CODE_CIMD: &str = "https://claude.ai/oauth/claude-code-client-metadata";

/// Serves fixed client metadata documents by URL (the fetch itself, with
/// its SSRF guard, is tested in cimd_fetch_guard.rs).
struct Documents(HashMap<String, Value>);

#[async_trait]
impl MetadataFetcher for Documents {
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, FetchError> {
        let doc = self
            .0
            .get(url)
            .ok_or_else(|| FetchError::Failed(format!("no document at {url}")))?;
        Ok(FetchedDocument {
            body: serde_json::to_vec(doc).unwrap(),
            max_age: None,
        })
    }
}

fn documents() -> Arc<Documents> {
    let mut m = HashMap::new();
    m.insert(
        CLAUDE_CODE_CIMD.to_owned(),
        json!({
            "client_id": CLAUDE_CODE_CIMD,
            "client_name": "Claude Code",
            "client_uri": "https://claude.ai",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
    );
    m.insert(
        "https://bad.example/client.json".to_owned(),
        json!({
            "client_id": "https://bad.example/client.json",
            "redirect_uris": ["javascript:alert(1)", "http://localhost/cb"],
            "token_endpoint_auth_method": "none",
        }),
    );
    Arc::new(Documents(m))
}

/// The issuer on an injected clock.
async fn start_on(clock: Arc<FixedClock>) -> Harness {
    let config = RawConfig::from_toml(&base_toml())
        .unwrap()
        .validate()
        .unwrap();
    let revocations = LocalRevocations::new(clock.clone(), Duration::from_secs(7200));
    let deps = IssuerDeps {
        clock: Some(clock),
        revocations: Some(Arc::new(revocations.clone())),
        fetcher: Some(documents()),
        ..Default::default()
    };
    let running = spawn(config, deps).await.unwrap();
    Harness {
        base: running.issuer.clone(),
        admin: format!("http://{}", running.admin_addr),
        running,
        http: client(),
        revocations,
    }
}

async fn start_clients() -> (Harness, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::at_unix(1_900_000_000));
    (start_on(clock.clone()).await, clock)
}

async fn register_json(h: &Harness, body: Value) -> (StatusCode, Value) {
    let r = h
        .http
        .post(format!("{}/register", h.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

fn authorize_to(h: &Harness, client_id: &str, redirect: &str, challenge: &str) -> String {
    let mut u = url::Url::parse(&format!("{}/authorize", h.base)).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "st-1")
        .append_pair("resource", RESOURCE);
    u.into()
}

/// Login + consent with `redirect`; returns the code and the consent page.
async fn code_for(
    h: &Harness,
    client_id: &str,
    redirect: &str,
    challenge: &str,
    scope: Option<&str>,
) -> (String, String) {
    let mut url = authorize_to(h, client_id, redirect, challenge);
    if let Some(scope) = scope {
        url.push_str("&scope=");
        url.push_str(&scope.replace(' ', "%20"));
    }
    let mut b = Browser::new(h);
    let next = b.authorize(&url, USER, PASSWORD, "approve").await;
    let (base, _) = next.split_once('?').unwrap();
    assert_eq!(base, redirect, "{next}");
    let q = query(&next);
    assert_eq!(q["state"], "st-1");
    (q["code"].clone(), b.last_consent.take().unwrap_or_default())
}

/// A client shape: registration body (or a CIMD client id), the redirect
/// it uses, and its token-endpoint authentication.
struct Shape {
    name: &'static str,
    register: Option<Value>,
    cimd: Option<&'static str>,
    redirect: &'static str,
    auth: &'static str,
    /// Expected on the consent page ("you will be sent to ...").
    consent: &'static str,
    /// The `scope` it asks for, if any (scopes the resource does not offer
    /// are left out of the grant).
    scope: Option<&'static str>,
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "Cursor (private-use scheme)",
            register: Some(json!({
                "client_name": "Cursor",
                "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            })),
            cimd: None,
            redirect: "cursor://anysphere.cursor-mcp/oauth/callback",
            auth: "none",
            consent: "registered for \"cursor:\" links",
            scope: None,
        },
        Shape {
            name: "Claude Code (localhost CIMD, ephemeral port)",
            register: None,
            cimd: Some(CLAUDE_CODE_CIMD),
            redirect: "http://localhost:49731/callback",
            auth: "none",
            consent: "localhost",
            scope: None,
        },
        Shape {
            name: "VS Code (loopback + vscode.dev)",
            register: Some(json!({
                "client_name": "Visual Studio Code",
                "redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            })),
            cimd: None,
            redirect: "http://127.0.0.1:33418/",
            auth: "none",
            consent: "127.0.0.1",
            scope: None,
        },
        Shape {
            name: "Copilot CLI (registers a port, uses another)",
            register: Some(json!({
                "client_name": "GitHub Copilot CLI",
                "redirect_uris": ["http://127.0.0.1:8080/callback"],
                "token_endpoint_auth_method": "none",
            })),
            cimd: None,
            redirect: "http://127.0.0.1:53117/callback",
            auth: "none",
            consent: "127.0.0.1",
            scope: None,
        },
        Shape {
            name: "Claude.ai-style web connector (client_secret_post)",
            register: Some(json!({
                "client_name": "claudeai",
                "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_post",
            })),
            cimd: None,
            redirect: "https://claude.ai/api/mcp/auth_callback",
            auth: "client_secret_post",
            consent: "claude.ai",
            scope: None,
        },
        Shape {
            name: "mcp-remote (localhost:3334)",
            register: Some(json!({
                "client_name": "MCP CLI Proxy",
                "client_uri": "https://github.com/modelcontextprotocol/mcp-cli",
                "redirect_uris": ["http://localhost:3334/oauth/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "software_id": "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d",
                "software_version": "0.1.18",
            })),
            cimd: None,
            redirect: "http://localhost:3334/oauth/callback",
            auth: "none",
            consent: "localhost",
            scope: Some("openid email profile"),
        },
    ]
}

#[tokio::test]
async fn every_client_shape_gets_tokens_and_refreshes() {
    let (h, _) = start_clients().await;
    for s in shapes() {
        let (client_id, secret) = match (&s.register, s.cimd) {
            (Some(body), _) => {
                let (st, c) = register_json(&h, body.clone()).await;
                assert_eq!(st, StatusCode::CREATED, "{}: {c}", s.name);
                let secret = c["client_secret"].as_str().map(str::to_owned);
                (c["client_id"].as_str().unwrap().to_owned(), secret)
            }
            (None, Some(url)) => (url.to_owned(), None),
            (None, None) => unreachable!(),
        };
        assert_eq!(secret.is_some(), s.auth != "none", "{}", s.name);
        let (v, ch) = pkce_pair();
        let (code, consent) = code_for(&h, &client_id, s.redirect, &ch, s.scope).await;
        assert!(consent.contains(s.consent), "{}: {consent}", s.name);
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", s.redirect),
            ("code_verifier", v.as_str()),
            ("client_id", client_id.as_str()),
            ("resource", RESOURCE),
        ];
        if let Some(sec) = &secret {
            form.push(("client_secret", sec));
        }
        let (st, _, t) = token(&h, None, &form).await;
        assert_eq!(st, StatusCode::OK, "{}: {t}", s.name);
        // RFC 6749 §3.3: the response says what was granted; OpenID scopes
        // this resource does not offer are left out, not refused.
        let granted = t["scope"].as_str().unwrap_or_default();
        assert!(!granted.is_empty(), "{}: {t}", s.name);
        assert!(
            !granted.split(' ').any(|g| g == "openid" || g == "email"),
            "{}: {t}",
            s.name
        );
        assert_eq!(
            introspect(&h, t["access_token"].as_str().unwrap()).await["active"],
            true
        );
        let rt = t["refresh_token"].as_str().unwrap();
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id.as_str()),
        ];
        if let Some(sec) = &secret {
            form.push(("client_secret", sec));
        }
        let (st, _, t2) = token(&h, None, &form).await;
        assert_eq!(st, StatusCode::OK, "{}: {t2}", s.name);
    }
    h.running.shutdown().await;
}

#[tokio::test]
async fn unusable_redirect_uris_are_each_named_and_never_redirected_to() {
    let (h, _) = start_clients().await;
    let (st, e) = register_json(
        &h,
        json!({
            "redirect_uris": [
                "cursor://anysphere.cursor-mcp/oauth/callback",
                "JavaScript:alert(1)",
                "data:text/html,x",
                "file:///etc/passwd",
                "ws://127.0.0.1/cb",
                "http://evil.example/cb",
            ],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], "invalid_redirect_uri");
    let d = e["error_description"].as_str().unwrap();
    for bad in [
        "JavaScript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "ws://127.0.0.1/cb",
        "http://evil.example/cb",
    ] {
        assert!(d.contains(bad), "{bad} missing in {d}");
    }
    assert!(!d.contains("cursor://"), "{d}");

    // A loopback registration never lends its port leeway to another host,
    // path or spelling.
    let (_, c) = register_json(
        &h,
        json!({"redirect_uris": ["http://localhost/callback"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let id = c["client_id"].as_str().unwrap();
    let (_, ch) = pkce_pair();
    for wrong in [
        "http://127.0.0.1:5555/callback",
        "http://localhost:5555/callback/../x",
        "http://localhost:5555/Callback",
        "http://localhost.:5555/callback",
        "https://localhost:5555/callback",
        "http://localhost:5555/callback?x=1",
    ] {
        let r = h
            .http
            .get(authorize_to(&h, id, wrong, &ch))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{wrong}");
        assert!(r.headers().get("location").is_none(), "{wrong}");
    }

    // The same rules hold for metadata documents.
    let r = h
        .http
        .get(authorize_to(
            &h,
            "https://bad.example/client.json",
            "http://localhost:1/cb",
            &ch,
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.text().await.unwrap().contains("scheme not allowed"));
    h.running.shutdown().await;
}

/// A public client with a refresh token.
async fn public_tokens(h: &Harness) -> (String, Value) {
    let (_, c) = register_json(
        h,
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let id = c["client_id"].as_str().unwrap().to_owned();
    let (v, ch) = pkce_pair();
    let (code, _) = code_for(h, &id, "http://127.0.0.1:4000/cb", &ch, None).await;
    let (st, _, t) = token(
        h,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:4000/cb"),
            ("code_verifier", &v),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    (id, t)
}

async fn refresh(h: &Harness, id: &str, rt: &str) -> (StatusCode, Value) {
    let (st, _, t) = token(
        h,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", id),
        ],
    )
    .await;
    (st, t)
}

fn rt(t: &Value) -> String {
    t["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_all_get_working_pairs() {
    let (h, _) = start_clients().await;
    let (id, t0) = public_tokens(&h).await;
    let rt0 = rt(&t0);
    let (a, b, c, d) = tokio::join!(
        refresh(&h, &id, &rt0),
        refresh(&h, &id, &rt0),
        refresh(&h, &id, &rt0),
        refresh(&h, &id, &rt0),
    );
    let mut seen = std::collections::HashSet::new();
    for (st, t) in [a, b, c, d] {
        assert_eq!(st, StatusCode::OK, "{t}");
        assert_eq!(
            introspect(&h, t["access_token"].as_str().unwrap()).await["active"],
            true
        );
        assert!(
            seen.insert(rt(&t)),
            "each caller gets its own refresh token"
        );
        // Every successor keeps working.
        let (st, next) = refresh(&h, &id, &rt(&t)).await;
        assert_eq!(st, StatusCode::OK, "{next}");
    }
    assert_eq!(h.revocations.len(), 0, "nothing was revoked");
    h.running.shutdown().await;
}

#[tokio::test]
async fn lost_response_retry_and_reuse_after_the_window() {
    let (h, clock) = start_clients().await;
    let (id, t0) = public_tokens(&h).await;
    let rt0 = rt(&t0);
    let (st, lost) = refresh(&h, &id, &rt0).await;
    assert_eq!(st, StatusCode::OK);
    // The response was lost; the client retries 29 s later.
    clock.advance(Duration::from_secs(29));
    let (st, retry) = refresh(&h, &id, &rt0).await;
    assert_eq!(st, StatusCode::OK, "{retry}");
    assert_ne!(rt(&retry), rt(&lost));
    let (st, t2) = refresh(&h, &id, &rt(&retry)).await;
    assert_eq!(st, StatusCode::OK, "{t2}");

    // Past the window (30 s after the first rotation): reuse revokes the
    // whole family, including the pair the retry got and its successor.
    clock.advance(Duration::from_secs(1));
    let (st, e) = refresh(&h, &id, &rt0).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    for t in [&lost, &t2] {
        let (st, _) = refresh(&h, &id, &rt(t)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(
            introspect(&h, t["access_token"].as_str().unwrap()).await["active"],
            false
        );
    }
    h.running.shutdown().await;
}

#[tokio::test]
async fn the_grace_window_never_helps_another_client_or_a_revoked_family() {
    let (h, _) = start_clients().await;
    let (id, t0) = public_tokens(&h).await;
    let rt0 = rt(&t0);
    let (st, t1) = refresh(&h, &id, &rt0).await;
    assert_eq!(st, StatusCode::OK);
    // Another client presenting the rotated token within the window.
    let (other, _) = public_tokens(&h).await;
    let (st, _) = refresh(&h, &other, &rt0).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // The user revokes the live token: the family is gone, and the rotated
    // one gets nothing even within the window.
    let (st, _) = post_form(
        &h,
        "/revoke",
        None,
        &[("token", &rt(&t1)), ("client_id", &id)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, e) = refresh(&h, &id, &rt0).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    h.running.shutdown().await;
}

/// The verifier in front of this issuer (`as_metadata`: the
/// `authorization_server_metadata` setting, `None` = default).
#[cfg(feature = "verifier")]
async fn verifier_for(
    h: &Harness,
    as_metadata: Option<&str>,
) -> mcpgate::app::verifier::RunningVerifier {
    let mut toml = format!(
        "issuers = [\"{}\"]\nresource = \"{RESOURCE}\"\nhttp_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\n",
        h.base
    );
    if let Some(m) = as_metadata {
        toml.push_str(&format!("authorization_server_metadata = \"{m}\"\n"));
    }
    let cfg = mcpgate::config::verifier::RawConfig::from_toml(&toml)
        .unwrap()
        .validate()
        .unwrap();
    mcpgate::app::verifier::spawn(cfg, Default::default())
        .await
        .unwrap()
}

/// A browser-based client discovering from the MCP origin: CORS preflight
/// and GET on the protected-resource metadata (path and root), and the
/// authorization server's metadata served at the resource origin.
#[cfg(feature = "verifier")]
#[tokio::test]
async fn browser_discovery_from_the_mcp_origin() {
    let h = start().await;
    let v = verifier_for(&h, None).await;
    let base = format!("http://{}", v.http_addr);
    let c = client();
    let origin = "https://app.example";
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = c
            .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "mcp-protocol-version")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
        let allow = r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(allow.contains("mcp-protocol-version"), "{path}: {allow}");
    }
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = c
            .get(format!("{base}{path}"))
            .header("origin", origin)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["resource"], RESOURCE);
        assert_eq!(doc["authorization_servers"][0], h.base.as_str());
    }
    // The copy of the issuer's metadata arrives in the background.
    let issuer_doc: Value = c
        .get(format!("{}/.well-known/oauth-authorization-server", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for (path, kind) in [
        ("/.well-known/oauth-authorization-server", "oauth"),
        ("/.well-known/oauth-authorization-server/mcp", "oauth"),
        ("/.well-known/openid-configuration", "oidc"),
    ] {
        let doc: Value = loop {
            let r = c
                .get(format!("{base}{path}"))
                .header("origin", origin)
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::OK {
                assert_eq!(r.headers()["access-control-allow-origin"], "*");
                break r.json().await.unwrap();
            }
            assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT, "{path}");
            assert!(
                std::time::Instant::now() < deadline,
                "no copy of the {kind} document"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(doc["issuer"], h.base.as_str(), "{path}");
        assert_eq!(
            doc["token_endpoint"], issuer_doc["token_endpoint"],
            "{path}"
        );
    }
    v.shutdown().await;

    // Redirect mode: a 307 to the issuer's own document.
    let v = verifier_for(&h, Some("redirect")).await;
    let r = c
        .get(format!(
            "http://{}/.well-known/oauth-authorization-server",
            v.http_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"],
        format!("{}/.well-known/oauth-authorization-server", h.base).as_str()
    );
    v.shutdown().await;
    let v = verifier_for(&h, Some("off")).await;
    let r = c
        .get(format!(
            "http://{}/.well-known/openid-configuration",
            v.http_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    v.shutdown().await;

    // The issuer's own discovery, JWKS, registration and token endpoints
    // answer preflights too.
    for path in [
        "/.well-known/oauth-authorization-server",
        "/jwks",
        "/register",
        "/token",
    ] {
        let r = c
            .request(reqwest::Method::OPTIONS, format!("{}{path}", h.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, mcp-protocol-version",
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
    }
    h.running.shutdown().await;
}
