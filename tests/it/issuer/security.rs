//! Issue 13, issuer side: nothing a client controls steers the issuer.
//! Each test tries to get around one rule.

use super::harness::*;
use mcpgate::app::issuer::{spawn, IssuerDeps};
use mcpgate::config::issuer::RawConfig;
use mcpgate::domain::clock::{FixedClock, SystemClock};
use mcpgate::infra::revocation::LocalRevocations;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn trusting_toml() -> String {
    format!("trusted_proxies = [\"127.0.0.1/32\"]\n{}", base_toml())
}

/// Starts `/authorize` in `b` and returns the pending request id.
async fn begin(h: &Harness, b: &mut Browser, client_id: &str) -> String {
    let (_, ch) = pkce_pair();
    let r = b.get(&authorize_url(h, client_id, &ch, &[])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = location(&r);
    assert!(loc.contains("/login?"), "{loc}");
    query(&format!("http://x{loc}"))["req"].clone()
}

/// A password POST from `xff` (through the trusted proxy, 127.0.0.1).
async fn login_from(
    h: &Harness,
    b: &Browser,
    req: &str,
    user: &str,
    pw: &str,
    xff: Option<&str>,
) -> reqwest::Response {
    let cookies: Vec<String> = b.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let csrf = b.csrf();
    let mut r = h
        .http
        .post(format!("{}/login", h.base))
        .header("cookie", cookies.join("; "))
        .form(&[
            ("req", req),
            ("csrf", csrf.as_str()),
            ("username", user),
            ("password", pw),
        ]);
    if let Some(x) = xff {
        r = r.header("x-forwarded-for", x);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn password_backoff_is_per_user_and_ip_and_spares_the_real_user() {
    let h = start_toml(&trusting_toml(), None).await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut attacker = Browser::new(&h);
    let req = begin(&h, &mut attacker, &id).await;
    let evil = "203.0.113.9";
    // Five free failures for (alice, evil IP), then back-off: 429 with
    // Retry-After, and no password check at all (the right password too).
    for _ in 0..5 {
        let r = login_from(&h, &attacker, &req, USER, "guess", Some(evil)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_from(&h, &attacker, &req, USER, "guess", Some(evil)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the 6th still counts");
    let r = login_from(&h, &attacker, &req, USER, PASSWORD, Some(evil)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&after), "{after}");
    // Another hop in front of the attacker's address changes nothing: the
    // nearest untrusted hop is the client.
    let spoof = format!("198.51.100.7, {evil}");
    let r = login_from(&h, &attacker, &req, USER, PASSWORD, Some(&spoof)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // The real user, elsewhere, logs in at once.
    let mut alice = Browser::new(&h);
    let req2 = begin(&h, &mut alice, &id).await;
    let r = login_from(&h, &alice, &req2, USER, PASSWORD, Some("198.51.100.7")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    h.running.shutdown().await;
}

#[tokio::test]
async fn successes_are_not_counted_and_reset_the_pair() {
    let h = start().await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // No trusted proxy: X-Forwarded-For is the client's own say and ignored,
    // so a fresh "address" per attempt does not reset anything.
    for round in 0..3 {
        let mut b = Browser::new(&h);
        let req = begin(&h, &mut b, &id).await;
        for i in 0..4 {
            let xff = format!("192.0.2.{}", round * 10 + i);
            let r = login_from(&h, &b, &req, USER, "nope", Some(&xff)).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "round {round}");
        }
        let r = login_from(&h, &b, &req, USER, PASSWORD, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "round {round}");
    }
    h.running.shutdown().await;
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_spray_of_concurrent_logins_is_bounded_by_the_cpus() {
    let h = start_toml(&trusting_toml(), None).await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = Browser::new(&h);
    let req = begin(&h, &mut b, &id).await;
    let before = vm_hwm_kib();
    let h = Arc::new(h);
    let b = Arc::new(b);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (h, b, req) = (h.clone(), b.clone(), req.clone());
            tokio::spawn(async move {
                let user = format!("user-{}", rand_suffix());
                let ip = format!("10.1.{}.{}", i / 200, i % 200 + 1);
                login_from(&h, &b, &req, &user, "pw", Some(&ip))
                    .await
                    .status()
            })
        })
        .collect();
    for t in tasks {
        let st = t.await.unwrap();
        assert!(
            st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS,
            "{st}"
        );
    }
    let users = h.running.core.static_users.as_ref().unwrap();
    assert!(users.peak_hashing() >= 1);
    assert!(
        users.peak_hashing() <= users.hash_slots(),
        "{} hashes ran at once on {} slots",
        users.peak_hashing(),
        users.hash_slots()
    );
    // Loosely (other tests share the process): 64 unbounded Argon2 runs
    // would add 64 x 19 MiB.
    if let (Some(a), Some(z)) = (before, vm_hwm_kib()) {
        assert!(
            z.saturating_sub(a) < 600 * 1024,
            "peak RSS grew {} KiB",
            z - a
        );
    }
    // The real user from another address still gets in.
    let mut alice = Browser::new(&*h);
    let req2 = begin(&h, &mut alice, &id).await;
    let r = login_from(&h, &alice, &req2, USER, PASSWORD, Some("198.51.100.7")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// Registers a client and returns the whole response.
async fn register_json(h: &Harness, body: Value) -> reqwest::Response {
    h.http
        .post(format!("{}/register", h.base))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn remembered_consent_is_dropped_when_the_client_changes() {
    let h = start().await;
    let c: Value = register_json(
        &h,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "App"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = c["client_id"].as_str().unwrap().to_owned();
    let uri = c["registration_client_uri"].as_str().unwrap().to_owned();
    let tok = c["registration_access_token"].as_str().unwrap().to_owned();
    let (_, ch) = pkce_pair();
    let url = authorize_url(&h, &id, &ch, &[]);
    let mut b = Browser::new(&h);
    login_and_consent(&mut b, &url).await;
    // Remembered: straight back.
    let r = b.get(&url).await;
    assert!(location(&r).starts_with(REDIRECT), "{}", location(&r));

    let other = "http://127.0.0.1:7777/other";
    let changes = [
        json!({"redirect_uris": [REDIRECT, other], "token_endpoint_auth_method": "none", "client_name": "App"}),
        json!({"redirect_uris": [REDIRECT, other], "token_endpoint_auth_method": "none", "client_name": "Bank"}),
        json!({"redirect_uris": [REDIRECT, other], "token_endpoint_auth_method": "none", "client_name": "Bank", "scope": "mcp:read mcp:write"}),
    ];
    for body in changes {
        let mut body = body;
        body["client_id"] = json!(id);
        let r = h
            .http
            .put(&uri)
            .bearer_auth(&tok)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let r = b.get(&url).await;
        let next = location(&r);
        assert!(next.contains("/consent?"), "{body}: {next}");
        // Approving once makes it remembered again.
        let next = b.authorize(&url, USER, PASSWORD, "approve").await;
        assert!(next.starts_with(REDIRECT), "{next}");
        let r = b.get(&url).await;
        assert!(location(&r).starts_with(REDIRECT));
    }
    h.running.shutdown().await;
}

#[tokio::test]
async fn the_registered_auth_method_is_the_only_one_accepted() {
    let h = start().await;
    // client_secret_basic sending the secret in the body.
    let (id, secret, code, v) = confidential_code(&h).await;
    let (st, _, body) = token(
        &h,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &v),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    // The code is still good through Basic.
    let (st, _) = exchange(&h, &id, &secret, &code, &v).await;
    assert_eq!(st, StatusCode::OK);

    // client_secret_post sending Basic.
    let c = register(&h, "client_secret_post").await;
    let (pid, psecret) = (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    );
    let (v, ch) = pkce_pair();
    let mut b = Browser::new(&h);
    let q = login_and_consent(&mut b, &authorize_url(&h, &pid, &ch, &[])).await;
    let (st, body) = exchange(&h, &pid, &psecret, &q["code"], &v).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let (st, _, body) = token(
        &h,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &pid),
            ("client_secret", &psecret),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &v),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // A public client sending a secret, either way.
    let pubid = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, _, body) = token(
        &h,
        Some((&pubid, "made-up")),
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (st, _, body) = token(
        &h,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &pubid),
            ("client_secret", "made-up"),
            ("refresh_token", "x"),
        ],
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    h.running.shutdown().await;
}

#[tokio::test]
async fn consent_page_shows_the_redirect_and_distrusts_names() {
    let h = start().await;
    let r = register_json(
        &h,
        json!({"redirect_uris": [format!("{REDIRECT}?app=1")], "token_endpoint_auth_method": "none", "client_name": "Trusted Bank"}),
    )
    .await;
    let id = r.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ch) = pkce_pair();
    let mut url = url::Url::parse(&authorize_url(&h, &id, &ch, &[])).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            let v = if k == "redirect_uri" {
                format!("{REDIRECT}?app=1")
            } else {
                v
            };
            (k, v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let mut b = Browser::new(&h);
    let r = b.get(url.as_str()).await;
    let login = location(&r);
    let req = query(&format!("http://x{login}"))["req"].clone();
    let csrf = b.csrf();
    let r = b
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    let consent = location(&r);
    let html = b.get(&consent).await.text().await.unwrap();
    assert!(
        html.contains("http://127.0.0.1:7777/callback?app=1"),
        "{html}"
    );
    assert!(html.contains("not verified"), "{html}");
    assert!(html.contains("on your own computer"), "{html}");

    // Names that display as something else are refused.
    for name in [
        "Bank\u{202e}lapyap",
        "Pay\u{200b}Pal",
        "x\u{2066}y",
        "a\u{feff}",
    ] {
        let r = register_json(
            &h,
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": name}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client_metadata");
    }
    h.running.shutdown().await;
}

fn admin_toml(extra_res: &str, top: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
{top}
[storage]
kind = "memory"
[[resources]]
resource = "{RESOURCE}"
scopes = ["mcp:read", "mcp:write", "mcp:admin"]
{extra_res}
[[providers]]
kind = "static"
[[providers.users]]
username = "{USER}"
password_hash = "{}"
"#,
        mcpgate::issue::users::hash_password(PASSWORD).unwrap()
    )
}

#[tokio::test]
async fn no_scope_gets_the_defaults_never_admin() {
    let h = start_toml(&admin_toml("", ""), None).await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for extra in [
        &[][..],
        &[("scope", "")][..],
        &[("scope", "openid email profile")][..],
        &[("scope", "offline_access")][..],
    ] {
        let t = public_tokens(&h, &id, extra).await;
        assert_eq!(t["scope"], "mcp:read mcp:write", "{extra:?}");
    }
    // Unoffered scopes are left out, asked-for ones kept (the user saw them).
    let t = public_tokens(&h, &id, &[("scope", "openid mcp:admin profile")]).await;
    assert_eq!(t["scope"], "mcp:admin");
    h.running.shutdown().await;

    // A resource's own defaults win.
    let h = start_toml(&admin_toml("default_scopes = [\"mcp:read\"]", ""), None).await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = public_tokens(&h, &id, &[]).await;
    assert_eq!(t["scope"], "mcp:read");
    h.running.shutdown().await;

    // Defaults outside the resource's scopes are a config error.
    let bad = admin_toml("default_scopes = [\"other\"]", "");
    let e = RawConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert_eq!(e.key, "resources[0].default_scopes");
}

#[tokio::test]
async fn default_resource_and_case_insensitive_resources() {
    // Two resources and no default: the resource is required.
    let h = start().await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ch) = pkce_pair();
    let no_res = authorize_url(&h, &id, &ch, &[]).replace(
        &format!(
            "&resource={}",
            url::form_urlencoded::byte_serialize(RESOURCE.as_bytes()).collect::<String>()
        ),
        "",
    );
    assert!(!no_res.contains("resource="));
    let mut b = Browser::new(&h);
    let r = b.get(&no_res).await;
    assert_eq!(query(&location(&r))["error"], "invalid_target");
    // Upper-case scheme and host name the same resource.
    let upper = RESOURCE.replace("http://", "HTTP://");
    let t = public_tokens(&h, &id, &[]).await;
    assert_eq!(t["token_type"], "Bearer");
    let url = authorize_url(&h, &id, &ch, &[]).replace(
        &url::form_urlencoded::byte_serialize(RESOURCE.as_bytes()).collect::<String>(),
        &url::form_urlencoded::byte_serialize(upper.as_bytes()).collect::<String>(),
    );
    let next = b.authorize(&url, USER, PASSWORD, "approve").await;
    assert!(query(&next).contains_key("code"), "{next}");
    h.running.shutdown().await;

    // With default_resource, the same request works.
    let h = start_toml(
        &format!("default_resource = \"{OTHER_RESOURCE}\"\n{}", base_toml()),
        None,
    )
    .await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let no_res = no_res.replace(&no_res[..no_res.find("/authorize").unwrap()], &h.base);
    let no_res = no_res.replace(&query(&no_res)["client_id"], &id);
    let mut b = Browser::new(&h);
    let next = b.authorize(&no_res, USER, PASSWORD, "approve").await;
    assert!(query(&next).contains_key("code"), "{next}");
    h.running.shutdown().await;
    let e = RawConfig::from_toml(&format!(
        "default_resource = \"https://nope.example/mcp\"\n{}",
        base_toml()
    ))
    .unwrap()
    .validate()
    .unwrap_err();
    assert_eq!(e.key, "default_resource");
}

#[tokio::test]
async fn refresh_families_have_an_absolute_lifetime() {
    let clock = Arc::new(FixedClock::at_unix(1_900_000_000));
    let toml = format!("refresh_token_max_lifetime_secs = 600\n{}", base_toml());
    let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
    let revocations = LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(7200));
    let running = spawn(
        config,
        IssuerDeps {
            clock: Some(clock.clone()),
            revocations: Some(Arc::new(revocations.clone())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = Harness {
        base: running.issuer.clone(),
        admin: format!("http://{}", running.admin_addr),
        running,
        http: client(),
        revocations,
    };
    let (id, secret, code, v) = confidential_code(&h).await;
    let (st, t) = exchange(&h, &id, &secret, &code, &v).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let mut rt = t["refresh_token"].as_str().unwrap().to_owned();
    // Rotating every few minutes keeps the sliding lifetime fresh...
    for _ in 0..3 {
        clock.advance(Duration::from_secs(180));
        let (st, _, t) = token(
            &h,
            Some((&id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{t}");
        rt = t["refresh_token"].as_str().unwrap().to_owned();
    }
    // ...but not past the absolute lifetime.
    clock.advance(Duration::from_secs(61));
    let (st, _, t) = token(
        &h,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(t["error"], "invalid_grant");
    h.running.shutdown().await;
}

#[tokio::test]
async fn logout_ends_the_browser_session() {
    let h = start().await;
    let meta: Value = h
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["end_session_endpoint"], format!("{}/logout", h.base));
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ch) = pkce_pair();
    let url = authorize_url(&h, &id, &ch, &[]);
    let mut b = Browser::new(&h);
    login_and_consent(&mut b, &url).await;
    let r = b.get(&url).await;
    assert!(location(&r).starts_with(REDIRECT), "session + consent");

    // GET only asks; a POST without the CSRF token is refused.
    let page = b.get("/logout").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("You are signed in"), "{html}");
    let r = b.get(&url).await;
    assert!(
        location(&r).starts_with(REDIRECT),
        "GET /logout changed nothing"
    );
    let r = b.post("/logout", &[("csrf", "forged")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = b.get(&url).await;
    assert!(location(&r).starts_with(REDIRECT));

    let csrf = b.csrf();
    let session = b.jar.get("mcpgate_session").cloned().unwrap();
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The old cookie no longer works, even replayed.
    b.jar.insert("mcpgate_session".into(), session);
    let r = b.get(&url).await;
    assert!(location(&r).contains("/login?"), "{}", location(&r));
    h.running.shutdown().await;
}

#[tokio::test]
async fn stored_signing_keys_are_encrypted_with_the_secret_key() {
    use mcpgate::infra::memory_store::MemoryStore;
    use mcpgate::issue::store::{Namespace, Store};
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("seal.key");
    std::fs::write(&keyfile, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    let toml = base_toml().replace(
        "[storage]",
        &format!(
            "[signing]\nencryption_key_file = \"{}\"\n[storage]",
            keyfile.display()
        ),
    );
    let raw: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // A key planted in the store by someone without the encryption key.
    raw.put(Namespace::Keys, "planted", br#"{"kid":"planted"}"#, None)
        .await
        .unwrap();
    let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
    let revocations = LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(7200));
    let running = spawn(
        config,
        IssuerDeps {
            store: Some(raw.clone()),
            revocations: Some(Arc::new(revocations.clone())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = Harness {
        base: running.issuer.clone(),
        admin: format!("http://{}", running.admin_addr),
        running,
        http: client(),
        revocations,
    };
    let keys = raw.list(Namespace::Keys).await.unwrap();
    assert!(keys.len() >= 3, "{}", keys.len());
    for (kid, v) in &keys {
        if kid == "planted" {
            continue;
        }
        assert!(v.starts_with(b"mcpgate-sealed-1:"), "{kid}");
        assert!(!v.windows(11).any(|w| w == b"PRIVATE KEY"), "{kid}");
    }
    let jwks: Value = h
        .http
        .get(format!("{}/jwks", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!kids.contains(&"planted"), "{kids:?}");
    // Tokens are issued as before.
    let (id, secret, code, v) = confidential_code(&h).await;
    let (st, t) = exchange(&h, &id, &secret, &code, &v).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    h.running.shutdown().await;

    // A bad key fails the start, with the fix.
    std::fs::write(&keyfile, "too short").unwrap();
    let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
    let e = spawn(config, IssuerDeps::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("openssl rand -base64 32"), "{e}");
}

/// Turning key encryption on for a store that already holds unencrypted
/// keys (and the replicas' first-pair and version records): the issuer
/// starts, never uses or publishes the old keys, and signs with new,
/// sealed ones.
#[tokio::test]
async fn key_encryption_can_be_turned_on_for_an_existing_store() {
    use mcpgate::infra::memory_store::MemoryStore;
    use mcpgate::issue::store::{Namespace, Store};
    let raw: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let start = |toml: String| {
        let raw = raw.clone();
        async move {
            let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
            let revocations =
                LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(7200));
            let running = spawn(
                config,
                IssuerDeps {
                    store: Some(raw),
                    revocations: Some(Arc::new(revocations.clone())),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            Harness {
                base: running.issuer.clone(),
                admin: format!("http://{}", running.admin_addr),
                running,
                http: client(),
                revocations,
            }
        }
    };
    let kids = |h: &Harness| {
        let (http, base) = (h.http.clone(), h.base.clone());
        async move {
            let jwks: Value = http
                .get(format!("{base}/jwks"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let h = start(base_toml()).await;
    let old = kids(&h).await;
    assert!(!old.is_empty());
    h.running.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("seal.key");
    std::fs::write(&keyfile, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    let sealed = base_toml().replace(
        "[storage]",
        &format!(
            "[signing]\nencryption_key_file = \"{}\"\n[storage]",
            keyfile.display()
        ),
    );
    let h = start(sealed).await;
    let new = kids(&h).await;
    assert!(!new.is_empty());
    assert!(new.iter().all(|k| !old.contains(k)), "{old:?} {new:?}");
    for key in ["meta:genesis", "meta:version"] {
        let v = raw.get(Namespace::Keys, key).await.unwrap().unwrap();
        assert!(v.starts_with(b"mcpgate-sealed-1:"), "{key}");
    }
    let (id, secret, code, v) = confidential_code(&h).await;
    let (st, t) = exchange(&h, &id, &secret, &code, &v).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    h.running.shutdown().await;
}
