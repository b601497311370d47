//! The issuer under test: in-process on 127.0.0.1:0 with a memory store and
//! in-process revocations, a static user, and a cookie-keeping "browser".

pub use crate::browser::{client, location, query, Browser};
use mcpgate::app::issuer::{spawn, IssuerDeps, RunningIssuer};
use mcpgate::config::issuer::RawConfig;
use mcpgate::domain::clock::SystemClock;
use mcpgate::infra::revocation::LocalRevocations;
use mcpgate::issue::cimd::MetadataFetcher;
use mcpgate::issue::pkce;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const RESOURCE: &str = "http://127.0.0.1:9/mcp";
pub const OTHER_RESOURCE: &str = "http://127.0.0.1:9/other";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse";
pub const ADMIN: &str = "admin-secret-token";
pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";

fn password_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| mcpgate::issue::users::hash_password(PASSWORD).unwrap())
}

/// The base TOML (memory store, static user, two resources).
pub fn base_toml() -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
scopes = ["mcp:read", "mcp:write"]
default_scopes = ["mcp:read"]
admin_token = "{ADMIN}"
[storage]
kind = "memory"
[[resources]]
resource = "{RESOURCE}"
[[resources]]
resource = "{OTHER_RESOURCE}"
scopes = ["mcp:read"]
[[providers]]
kind = "static"
[[providers.users]]
username = "{USER}"
password_hash = "{}"
email = "alice@example.com"
"#,
        password_hash()
    )
}

pub struct Harness {
    pub running: RunningIssuer,
    pub base: String,
    /// The internal listener (admin API, `/metrics`).
    pub admin: String,
    pub http: reqwest::Client,
    pub revocations: LocalRevocations,
}

pub async fn start_toml(toml: &str, fetcher: Option<Arc<dyn MetadataFetcher>>) -> Harness {
    let config = RawConfig::from_toml(toml).unwrap().validate().unwrap();
    let revocations = LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(7200));
    let deps = IssuerDeps {
        revocations: Some(Arc::new(revocations.clone())),
        fetcher,
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

pub async fn start() -> Harness {
    start_toml(&base_toml(), None).await
}

/// A PKCE pair.
pub fn pkce_pair() -> (String, String) {
    let v = format!(
        "{}-verifier-0123456789abcdefghijklmnopqrstuvwxyz",
        rand_suffix()
    );
    let c = pkce::s256(&v);
    (v, c)
}

pub fn rand_suffix() -> String {
    mcpgate::issue::records::random_token(8).unwrap()
}

impl super::super::browser::Origin for &Harness {
    fn issuer_url(&self) -> String {
        self.base.clone()
    }
}

/// The `/authorize` URL for a client.
pub fn authorize_url(
    h: &Harness,
    client_id: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut u = url::Url::parse(&format!("{}/authorize", h.base)).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "st-123")
            .append_pair("resource", RESOURCE);
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    u.into()
}

/// Drives login + consent from an `/authorize` URL; returns the final
/// redirect's query (code, state, iss).
pub async fn login_and_consent(b: &mut Browser, authorize: &str) -> HashMap<String, String> {
    let next = b.authorize(authorize, USER, PASSWORD, "approve").await;
    assert!(next.starts_with(REDIRECT), "{next}");
    query(&next)
}

/// Registers a client; `auth` is the token_endpoint_auth_method.
pub async fn register(h: &Harness, auth: &str) -> Value {
    let r = h
        .http
        .post(format!("{}/register", h.base))
        .json(&json!({
            "redirect_uris": [REDIRECT],
            "client_name": "Test <Client>",
            "token_endpoint_auth_method": auth,
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

/// POST /token with form pairs; `basic` = (id, secret).
pub async fn token(
    h: &Harness,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut req = h.http.post(format!("{}/token", h.base)).form(form);
    if let Some((id, s)) = basic {
        req = req.basic_auth(id, Some(s));
    }
    let r = req.send().await.unwrap();
    let (st, hd) = (r.status(), r.headers().clone());
    (st, hd, r.json().await.unwrap_or(Value::Null))
}

pub async fn post_form(
    h: &Harness,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = h.http.post(format!("{}{path}", h.base)).form(form);
    if let Some((id, s)) = basic {
        req = req.basic_auth(id, Some(s));
    }
    let r = req.send().await.unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// A confidential client, logged in: `(client_id, secret, code, verifier)`.
pub async fn confidential_code(h: &Harness) -> (String, String, String, String) {
    let c = register(h, "client_secret_basic").await;
    let id = c["client_id"].as_str().unwrap().to_owned();
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    let (v, ch) = pkce_pair();
    let mut b = Browser::new(h);
    let q = login_and_consent(&mut b, &authorize_url(h, &id, &ch, &[])).await;
    (id, secret, q["code"].clone(), v)
}

/// Exchanges a code with Basic auth.
pub async fn exchange(
    h: &Harness,
    id: &str,
    secret: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let (st, _, body) = token(
        h,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (st, body)
}

pub async fn introspect(h: &Harness, token: &str) -> Value {
    let r = h
        .http
        .post(format!("{}/introspect", h.base))
        .bearer_auth(ADMIN)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Exchanges a code for a public client (no secret).
pub async fn exchange_public(
    h: &Harness,
    id: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let (st, _, body) = token(
        h,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (st, body)
}

/// Logs in through the static form and returns the granted token response
/// for a public client and the `/authorize` extras.
pub async fn public_tokens(h: &Harness, id: &str, extra: &[(&str, &str)]) -> Value {
    let (v, ch) = pkce_pair();
    let mut b = Browser::new(h);
    let q = login_and_consent(&mut b, &authorize_url(h, id, &ch, extra)).await;
    let (st, t) = exchange_public(h, id, &q["code"], &v).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    t
}
