//! The issuer's internal listener (`admin_listen`): the admin API and
//! `/metrics` are served there and nowhere on the public OAuth port, in
//! any spelling; it binds loopback by default. And the audit events: one
//! `mcpgate::audit` line per security event, never a token or a secret.

use super::harness::*;
use mcpgate::config::issuer::RawConfig;
use reqwest::StatusCode;
use serde_json::Value;

use crate::log_capture::Buf;

trait AuditLines {
    fn audit(&self) -> Vec<Value>;
    fn events(&self, event: &str) -> Vec<Value>;
}

impl AuditLines for Buf {
    /// The JSON lines written on the audit target.
    fn audit(&self) -> Vec<Value> {
        self.on_target("mcpgate::audit")
    }
    fn events(&self, event: &str) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|v| v["event"] == event)
            .collect()
    }
}

/// JSON logs at info into a buffer for this thread (the test's
/// current-thread runtime runs the issuer too).
fn capture() -> (Buf, crate::log_capture::Guard) {
    crate::log_capture::capture(tracing::Level::INFO)
}

/// A raw HTTP/1.1 request with the admin token (no client-side path
/// normalisation), returning the status code.
async fn raw_status(addr: std::net::SocketAddr, method: &str, target: &str) -> u16 {
    let auth = format!("Authorization: Bearer {ADMIN}\r\n");
    crate::raw_http::raw_status(addr, method, target, &addr.to_string(), &auth).await
}

#[tokio::test]
async fn metrics_and_admin_are_not_on_the_public_port_in_any_spelling() {
    let h = start().await;
    let public = h.running.http_addr;
    assert_ne!(public, h.running.admin_addr);
    for (method, target) in [
        ("GET", "/metrics"),
        ("GET", "/Metrics"),
        ("GET", "/METRICS"),
        ("GET", "//metrics"),
        ("GET", "/metrics/"),
        ("GET", "/./metrics"),
        ("GET", "/admin/../metrics"),
        ("GET", "/%6detrics"),
        ("GET", "/admin/clients"),
        ("GET", "/Admin/clients"),
        ("GET", "//admin/clients"),
        ("GET", "/admin//clients"),
        ("GET", "/%2Fadmin/clients"),
        ("GET", "/%2fadmin%2fclients"),
        ("GET", "/admin%2Fclients"),
        ("GET", "/register/../admin/clients"),
        ("POST", "/admin/revoke"),
        ("POST", "/admin/keys/rotate"),
        ("DELETE", "/admin/clients/x"),
        ("GET", "http://127.0.0.1/admin/clients"),
    ] {
        let st = raw_status(public, method, target).await;
        assert!(
            st == 404 || st == 400 || st == 405,
            "{method} {target} on the public port: {st}"
        );
        assert_ne!(st, 200, "{method} {target}");
    }
    // The admin listener serves them (with the token), and nothing of the
    // OAuth surface.
    let admin = h.running.admin_addr;
    assert_eq!(raw_status(admin, "GET", "/admin/clients").await, 200);
    assert_eq!(raw_status(admin, "GET", "/metrics").await, 200);
    assert_eq!(raw_status(admin, "POST", "/token").await, 404);
    assert_eq!(raw_status(admin, "GET", "/authorize").await, 404);
    let r = h
        .http
        .get(format!("{}/admin/clients", h.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    h.running.shutdown().await;
}

#[tokio::test]
async fn a_path_issuer_keeps_admin_at_the_admin_listeners_root() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = base_toml().replace(
        "listen = \"127.0.0.1:0\"",
        &format!(
            "listen = \"127.0.0.1:{port}\"\nissuer = \"http://127.0.0.1:{port}/tenant\"\nadmin_listen = \"127.0.0.1:0\""
        ),
    );
    let h = start_toml(&toml, None).await;
    for t in ["/tenant/admin/clients", "/tenant/metrics", "/metrics"] {
        assert_eq!(raw_status(h.running.http_addr, "GET", t).await, 404, "{t}");
    }
    assert_eq!(
        raw_status(h.running.admin_addr, "GET", "/admin/clients").await,
        200
    );
    h.running.shutdown().await;
}

#[tokio::test]
async fn metrics_have_process_families_and_route_templates() {
    let h = start().await;
    // A client-chosen path segment must not become a label value.
    let r = h
        .http
        .get(format!("{}/register/attacker-chosen-id-123", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let _ = h
        .http
        .get(format!("{}/no-such-path-456", h.base))
        .send()
        .await
        .unwrap();
    let _ = h
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", h.base))
        .send()
        .await
        .unwrap();
    let m = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "mcpgate_issuer_build_info",
    ] {
        assert!(m.contains(&format!("\n{family}")), "{family} missing:\n{m}");
    }
    assert!(
        m.contains("mcpgate_issuer_request_duration_seconds_bucket{"),
        "{m}"
    );
    assert!(
        m.contains("route=\"/register/{client_id}\",method=\"GET\",status=\"4xx\""),
        "{m}"
    );
    assert!(
        m.contains(
            "route=\"/.well-known/oauth-authorization-server\",method=\"GET\",status=\"2xx\""
        ),
        "{m}"
    );
    assert!(m.contains("route=\"unmatched\""), "{m}");
    assert!(
        !m.contains("attacker-chosen") && !m.contains("no-such-path"),
        "{m}"
    );
    h.running.shutdown().await;
}

fn validated(toml: &str) -> Result<mcpgate::config::issuer::IssuerConfig, String> {
    RawConfig::from_toml(toml)
        .map_err(|e| e.to_string())?
        .validate()
        .map_err(|e| e.to_string())
}

#[test]
fn the_admin_listener_binds_loopback_by_default() {
    let fixed = base_toml().replace("127.0.0.1:0", "0.0.0.0:8080");
    let fixed = format!("issuer = \"https://auth.example.com\"\n{fixed}");
    let c = validated(&fixed).unwrap();
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8090");
    assert!(c.admin_listen.ip().is_loopback());
    // A public listener on a free port: a free loopback port.
    let c = validated(&base_toml()).unwrap();
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:0");
    // Chosen explicitly (the chart binds a cluster-internal port).
    let c = validated(&format!("admin_listen = \"0.0.0.0:9090\"\n{fixed}")).unwrap();
    assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9090");
    // Never the public listener itself.
    for same in ["0.0.0.0:8080", "127.0.0.1:8080"] {
        let e = validated(&format!("admin_listen = \"{same}\"\n{fixed}")).unwrap_err();
        assert!(e.contains("admin_listen"), "{e}");
    }
    let e = validated(&format!("admin_listen = \"nope\"\n{fixed}")).unwrap_err();
    assert!(e.contains("admin_listen"), "{e}");
}

#[test]
fn the_admin_listener_env_variable_is_known() {
    use mcpgate::config::issuer::{Strings, ENV_ADMIN_LISTEN};
    struct Map(Vec<(String, String)>);
    impl Strings for Map {
        fn get(&self, k: &str) -> Option<String> {
            self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        }
        fn names(&self) -> Vec<String> {
            self.0.iter().map(|(n, _)| n.clone()).collect()
        }
    }
    assert_eq!(ENV_ADMIN_LISTEN, "MCPGW_ISSUER_ADMIN_LISTEN");
    let env = Map(vec![(ENV_ADMIN_LISTEN.into(), "127.0.0.1:9999".into())]);
    let mut raw = RawConfig::from_toml(&base_toml()).unwrap();
    raw.apply_env(&env);
    assert_eq!(
        raw.validate().unwrap().admin_listen.to_string(),
        "127.0.0.1:9999"
    );
    assert!(mcpgate::config::issuer::ENV_NAMES.contains(&ENV_ADMIN_LISTEN));
}

#[tokio::test]
async fn audit_events_name_who_did_what_and_never_a_secret() {
    let (buf, _g) = capture();
    let h = start().await;

    // A failed password login, then a good one, a code exchange, a refresh.
    let c = register(&h, "client_secret_basic").await;
    let id = c["client_id"].as_str().unwrap().to_owned();
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    let reg_token = c["registration_access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (v, ch) = pkce_pair();
    let mut b = Browser::new(&h);
    let url = authorize_url(&h, &id, &ch, &[]);
    let r = b.get(&url).await;
    let login = location(&r);
    let _ = b.get(&login).await;
    let full = if login.starts_with('/') {
        format!("{}{login}", h.base)
    } else {
        login.clone()
    };
    let req = query(&full)["req"].clone();
    let csrf = b.csrf();
    let wrong = "wrong-password-XYZZY";
    let r = b
        .post(
            "/login",
            &[
                ("req", req.as_str()),
                ("csrf", &csrf),
                ("username", USER),
                ("password", wrong),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the login form again");
    let q = login_and_consent(&mut Browser::new(&h), &url).await;
    let (st, t) = exchange(&h, &id, &secret, &q["code"], &v).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let at = t["access_token"].as_str().unwrap().to_owned();
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let (st, _, t2) = token(
        &h,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    // A client revokes its refresh token (RFC 7009).
    let (st, _) = post_form(
        &h,
        "/revoke",
        Some((&id, &secret)),
        &[("token", &rt2), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // Admin calls: one unauthorized, then a revocation and a deletion.
    let r = h
        .http
        .post(format!("{}/admin/revoke", h.admin))
        .bearer_auth("not-the-admin-token")
        .json(&serde_json::json!({"sub": "local:alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = h
        .http
        .post(format!("{}/admin/revoke", h.admin))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"sub": "local:alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = h
        .http
        .delete(format!("{}/admin/clients/{id}", h.admin))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    h.running.shutdown().await;

    let logins = buf.events("login");
    assert!(
        logins.iter().any(|l| l["result"] == "access_denied"
            && l["user"] == USER
            && l["provider"] == "static"
            && l["remote_ip"] == "127.0.0.1"),
        "{logins:?}"
    );
    assert!(logins
        .iter()
        .any(|l| l["result"] == "ok" && l["user"] == USER));
    let reg = buf.events("client_registered");
    assert_eq!(reg.len(), 1, "{reg:?}");
    assert_eq!(reg[0]["client_id"], id.as_str());
    assert_eq!(reg[0]["result"], "ok");
    let issued = buf.events("token_issued");
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert_eq!(issued[0]["grant_type"], "authorization_code");
    assert_eq!(issued[1]["grant_type"], "refresh_token");
    for i in &issued {
        assert_eq!(i["client_id"], id.as_str());
        assert_eq!(i["sub"], "local:alice");
        assert_eq!(i["resource"], RESOURCE);
        assert_eq!(i["scopes"], "mcp:read");
        assert_eq!(i["remote_ip"], "127.0.0.1");
    }
    let rev = buf.events("token_revoked");
    assert_eq!(rev.len(), 1, "{rev:?}");
    assert_eq!(rev[0]["client_id"], id.as_str());
    assert_eq!(rev[0]["token_type_hint"], "refresh_token");
    let admin = buf.events("admin_call");
    assert_eq!(admin.len(), 3, "{admin:?}");
    assert_eq!(admin[0]["actor"], "none");
    assert_eq!(admin[0]["result"], "unauthorized");
    assert_eq!(admin[1]["actor"], "admin_token");
    assert_eq!(admin[1]["action"], "revoke");
    assert_eq!(admin[1]["object"], "sub:local:alice");
    assert_eq!(admin[1]["result"], "ok");
    assert_eq!(admin[2]["action"], "delete_client");
    assert_eq!(admin[2]["object"], format!("client_id:{id}"));
    assert!(admin.iter().all(|a| a["remote_ip"] == "127.0.0.1"));

    // No token, secret or password anywhere in the log.
    let text = buf.text();
    for s in [
        at.as_str(),
        rt.as_str(),
        rt2.as_str(),
        secret.as_str(),
        ADMIN,
        PASSWORD,
        wrong,
        "not-the-admin-token",
        &q["code"],
        &v,
    ] {
        assert!(!text.contains(s), "a secret is in the log: {s}");
    }
    if !reg_token.is_empty() {
        assert!(!text.contains(&reg_token));
    }
    // The access token's signature part alone must not be there either.
    let sig = at.rsplit('.').next().unwrap();
    assert!(!text.contains(sig));
}

#[tokio::test]
async fn a_reused_refresh_token_is_an_audit_warning() {
    let (buf, _g) = capture();
    let toml = base_toml().replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\nrefresh_grace_secs = 0",
    );
    let h = start_toml(&toml, None).await;
    let (id, secret, code, v) = confidential_code(&h).await;
    let (_, t) = exchange(&h, &id, &secret, &code, &v).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
    ];
    let (st, _, _) = token(&h, Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = token(&h, Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    h.running.shutdown().await;
    let reuse = buf.events("refresh_reuse_detected");
    assert_eq!(reuse.len(), 1, "{:?}", buf.audit());
    assert_eq!(reuse[0]["level"], "WARN");
    assert_eq!(reuse[0]["client_id"], id.as_str());
    assert_eq!(reuse[0]["sub"], "local:alice");
    let refused = buf.events("token_refused");
    assert!(refused
        .iter()
        .any(|r| r["result"] == "invalid_grant" && r["grant_type"] == "refresh_token"));
    assert!(!buf.text().contains(&rt));
}

#[tokio::test]
async fn the_audit_remote_ip_follows_the_trusted_proxy_rule() {
    let (buf, _g) = capture();
    let send = |h: &Harness| {
        h.http
            .post(format!("{}/register", h.base))
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.9")
            .json(&serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
            .send()
    };
    // Not behind a trusted proxy: the header is the client's word, ignored.
    let h = start().await;
    assert_eq!(send(&h).await.unwrap().status(), StatusCode::CREATED);
    h.running.shutdown().await;
    // Behind one: the nearest untrusted hop.
    let toml = base_toml().replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
    );
    let h = start_toml(&toml, None).await;
    assert_eq!(send(&h).await.unwrap().status(), StatusCode::CREATED);
    h.running.shutdown().await;
    let reg = buf.events("client_registered");
    assert_eq!(reg.len(), 2, "{reg:?}");
    assert_eq!(reg[0]["remote_ip"], "127.0.0.1");
    assert_eq!(reg[1]["remote_ip"], "203.0.113.9");
}
