//! The issuer under test: in-process on 127.0.0.1:0 with a memory store and
//! in-process revocations, a static user, a cookie-keeping "browser", and a
//! clock the test can move. The one way the issuer tests start an issuer.

pub use crate::browser::{client, location, query, Browser};
use mcpgate::app::issuer::{spawn, IssuerDeps, RunningIssuer, StartError};
use mcpgate::config::issuer::RawConfig;
use mcpgate::domain::clock::{Clock, SystemClock};
use mcpgate::domain::revocation::RevocationSink;
use mcpgate::infra::revocation::LocalRevocations;
use mcpgate::issue::cimd::MetadataFetcher;
use mcpgate::issue::store::Store;
use mcpgate::issue::upstream::UpstreamIdp;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const RESOURCE: &str = "http://127.0.0.1:9/mcp";
pub const OTHER_RESOURCE: &str = "http://127.0.0.1:9/other";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse";
pub const ADMIN: &str = "admin-secret-token";
pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";

/// The argon2 hash of [`PASSWORD`] (computed once).
pub fn password_hash() -> &'static str {
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

/// The issuer's clock in these tests: from a start time (the system's, or
/// a fixed one) plus however far the test advanced it. Only `advance`
/// moves a fixed clock.
#[derive(Debug)]
pub struct TestClock {
    fixed_ms: Option<u64>,
    ahead_ms: AtomicU64,
}

impl TestClock {
    /// The system time, movable forward.
    pub fn system() -> Arc<Self> {
        Arc::new(Self {
            fixed_ms: None,
            ahead_ms: AtomicU64::new(0),
        })
    }

    /// Stands still at `secs` (unix) until advanced.
    pub fn at_unix(secs: u64) -> Arc<Self> {
        Arc::new(Self {
            fixed_ms: Some(secs * 1000),
            ahead_ms: AtomicU64::new(0),
        })
    }

    pub fn advance(&self, by: Duration) {
        self.ahead_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        let start = match self.fixed_ms {
            Some(ms) => UNIX_EPOCH + Duration::from_millis(ms),
            None => SystemClock.now(),
        };
        start + Duration::from_millis(self.ahead_ms.load(Ordering::SeqCst))
    }
}

/// Where the issuer publishes revocations.
#[derive(Default)]
pub enum Sink {
    /// The harness's in-process set ([`Harness::revocations`]).
    #[default]
    Local,
    /// This sink (which may forward to the harness's set).
    Custom(Arc<dyn RevocationSink>),
    /// What the config says (e.g. Redis).
    Configured,
}

/// What a test changes about the issuer it starts; all optional.
#[derive(Default)]
pub struct Deps {
    /// Default: [`TestClock::system`].
    pub clock: Option<Arc<TestClock>>,
    /// Default: the configured store.
    pub store: Option<Arc<dyn Store>>,
    pub fetcher: Option<Arc<dyn MetadataFetcher>>,
    /// Replaces the configured upstream providers.
    pub idps: Option<Vec<Arc<dyn UpstreamIdp>>>,
    /// Default: a fresh in-process set on the issuer's clock.
    pub revocations: Option<LocalRevocations>,
    pub sink: Sink,
}

pub struct Harness {
    pub running: RunningIssuer,
    pub base: String,
    /// The internal listener (admin API, `/metrics`).
    pub admin: String,
    pub http: reqwest::Client,
    /// The in-process revocation set the issuer publishes to (unless the
    /// test chose another sink).
    pub revocations: LocalRevocations,
    /// The issuer's clock.
    pub clock: Arc<TestClock>,
}

/// Starts an issuer from `toml` with `deps`.
pub async fn try_start_with(toml: &str, deps: Deps) -> Result<Harness, StartError> {
    crate::log_capture::install();
    let config = RawConfig::from_toml(toml).unwrap().validate().unwrap();
    let clock = deps.clock.unwrap_or_else(TestClock::system);
    let revocations = deps
        .revocations
        .unwrap_or_else(|| LocalRevocations::new(clock.clone(), Duration::from_secs(7200)));
    let sink: Option<Arc<dyn RevocationSink>> = match deps.sink {
        Sink::Local => Some(Arc::new(revocations.clone())),
        Sink::Custom(s) => Some(s),
        Sink::Configured => None,
    };
    let deps = IssuerDeps {
        clock: Some(clock.clone()),
        store: deps.store,
        revocations: sink,
        idps: deps.idps,
        fetcher: deps.fetcher,
    };
    let running = spawn(config, deps).await?;
    Ok(Harness {
        base: running.issuer.clone(),
        admin: format!("http://{}", running.admin_addr),
        running,
        http: client(),
        revocations,
        clock,
    })
}

pub async fn start_with(toml: &str, deps: Deps) -> Harness {
    crate::log_capture::install();
    try_start_with(toml, deps).await.unwrap()
}

/// Starts again on what a just-stopped issuer used (its embedded store
/// file is released once the old tasks are gone): retries for a bounded
/// time.
pub async fn restart_toml(toml: &str) -> Harness {
    let start = Instant::now();
    loop {
        match try_start_with(toml, Deps::default()).await {
            Ok(h) => return h,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(10), "restart: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

pub async fn start_toml(toml: &str, fetcher: Option<Arc<dyn MetadataFetcher>>) -> Harness {
    let deps = Deps {
        fetcher,
        ..Default::default()
    };
    start_with(toml, deps).await
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
    let c = mcpgate::domain::secret::pkce_s256(&v);
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

/// The claims of a JWT (its payload, unverified).
pub fn claims(at: &str) -> Value {
    use base64::Engine;
    let p = at.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Whether the harness's revocation set denies access token `at`.
pub fn revoked(h: &Harness, at: &str) -> bool {
    use mcpgate::domain::revocation::RevocationView;
    let c = claims(at);
    h.revocations
        .is_revoked(mcpgate::domain::revocation::TokenRef {
            jti: c["jti"].as_str().unwrap(),
            sub: c["sub"].as_str().unwrap(),
            client_id: c["client_id"].as_str(),
            iat: c["iat"].as_u64().unwrap(),
        })
}
