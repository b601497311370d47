//! Unit tests of the issuer core through its public methods, on a real
//! in-memory store and in-process revocation set that run on the same
//! [`FixedClock`]: every expiry is reached by advancing the clock, never by
//! waiting. The HTTP adapters are not involved (tests/it covers them).

mod authorize;
mod grant;
mod introspect;
mod login;
mod refresh;
mod revoke;

use crate::domain::claims::Scopes;
use crate::domain::clock::FixedClock;
use crate::domain::revocation::{RevocationView, TokenRef};
use crate::domain::secret::{ClientSecret, PkceVerifier, RefreshToken};
use crate::infra::memory_store::MemoryStore;
use crate::infra::revocation::LocalRevocations;
use crate::issue::authorize::{AuthorizeFailure, AuthorizeParams, Next};
use crate::issue::clients::{AuthMethod, ClientCredentials};
use crate::issue::error::{ErrorCode, OAuthError};
use crate::issue::grant::{TokenRequest, TokenResponse};
use crate::issue::introspect::{Introspection, Introspector};
use crate::issue::keys::{KeyManager, SigningAlg};
use crate::issue::login::LoginOutcome;
use crate::issue::redirect::PrivateUseSchemes;
use crate::issue::service::{
    CimdSettings, Issuer, RegistrationSettings, ResourceSettings, Settings,
};
use crate::issue::store::Store;
use crate::issue::users::{AllowList, StaticUser, StaticUsers};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const ISSUER: &str = "https://as.example";
pub const RESOURCE: &str = "https://mcp.example/mcp";
/// Offers only `mcp:read`.
pub const OTHER_RESOURCE: &str = "https://mcp.example/other";
pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse";
pub const CSRF: &str = "csrf-cookie-value";
pub const IP: &str = "192.0.2.10";
/// 2023-11-14: any fixed start works; the clock only moves when told.
pub const T0: u64 = 1_700_000_000;

pub const ACCESS_TTL: u64 = 300;
pub const REFRESH_TTL: u64 = 3600;
pub const MAX_LIFETIME: u64 = 4 * 3600;
pub const GRACE: u64 = 10;
pub const CODE_TTL: u64 = 60;
pub const PENDING_TTL: u64 = 600;

/// An argon2id hash with the cheapest parameters (the tests are about the
/// throttling around it, not the hash).
fn password_hash(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"mcpgate-unit-salt").unwrap();
    a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

fn users() -> StaticUsers {
    static H: OnceLock<String> = OnceLock::new();
    let hash = H.get_or_init(|| password_hash(PASSWORD)).clone();
    let user = |name: &str| StaticUser {
        username: name.into(),
        password_hash: hash.clone(),
        email: Some(format!("{name}@example.com")),
        name: None,
    };
    StaticUsers::new("local", "Local", vec![user(USER), user("bob")]).unwrap()
}

pub fn settings() -> Settings {
    let secs = Duration::from_secs;
    Settings {
        issuer: ISSUER.into(),
        resources: vec![
            ResourceSettings {
                resource: RESOURCE.into(),
                scopes: None,
                default_scopes: None,
            },
            ResourceSettings {
                resource: OTHER_RESOURCE.into(),
                scopes: Some(Scopes::parse("mcp:read")),
                default_scopes: None,
            },
        ],
        scopes: Scopes::parse("mcp:read mcp:write mcp:admin"),
        default_scopes: Scopes::parse("mcp:read"),
        default_resource: None,
        access_ttl: secs(ACCESS_TTL),
        refresh_ttl: secs(REFRESH_TTL),
        refresh_max_lifetime: secs(MAX_LIFETIME),
        refresh_grace: secs(GRACE),
        code_ttl: secs(CODE_TTL),
        pending_ttl: secs(PENDING_TTL),
        session_ttl: secs(3600),
        consent_ttl: secs(86_400),
        registration: RegistrationSettings {
            enabled: true,
            rate_limit: 0,
            rate_window: secs(60),
            client_lifetime: None,
            initial_access_token: None,
            enforce_client_scope: false,
            private_use_schemes: PrivateUseSchemes::Any,
        },
        cimd: CimdSettings {
            enabled: false,
            default_cache: secs(300),
            min_cache: secs(60),
            max_cache: secs(3600),
        },
        allow_list: AllowList::everyone(),
        admin_token: None,
    }
}

/// A registered client as the tests hold it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
}

/// The issuer core on a clock the test moves.
pub struct Fixture {
    pub iss: Issuer,
    pub clock: Arc<FixedClock>,
    pub revs: LocalRevocations,
}

/// RFC 7636 S256, computed here independently of the code under test.
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

pub const VERIFIER: &str = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

/// The error code and description of a failed call.
pub fn err<T: std::fmt::Debug>(r: Result<T, OAuthError>) -> (ErrorCode, String) {
    let e = r.expect_err("the call must fail");
    (e.code, e.description.unwrap_or_default())
}

/// The query of a redirect URL.
pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

// === impl Fixture ===

impl Fixture {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut s = settings();
        tweak(&mut s);
        let clock = Arc::new(FixedClock::at_unix(T0));
        let store: Arc<dyn Store> = Arc::new(MemoryStore::with_clock(clock.clone()));
        let max_lifetime = s.access_ttl + Duration::from_secs(300);
        let revs = LocalRevocations::new(clock.clone(), max_lifetime);
        let keys = KeyManager::from_store(SigningAlg::ES256, store.clone(), max_lifetime, T0)
            .await
            .unwrap();
        let iss = Issuer {
            settings: s,
            store,
            revocations: Arc::new(revs.clone()),
            clock: clock.clone(),
            keys,
            idps: Vec::new(),
            static_users: Some(users()),
            fetcher: None,
        };
        Self { iss, clock, revs }
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Registers a client; `auth` is its token_endpoint_auth_method.
    pub async fn client(&self, auth: &str) -> Client {
        self.client_with(auth, &[REDIRECT, "http://127.0.0.1:7777/other"])
            .await
    }

    /// The same with these redirect URIs.
    pub async fn client_with(&self, auth: &str, redirect_uris: &[&str]) -> Client {
        let body = json!({
            "redirect_uris": redirect_uris,
            "client_name": "Unit Test Client",
            "token_endpoint_auth_method": auth,
            "grant_types": ["authorization_code", "refresh_token"],
        });
        let r = self.iss.register(&body, None, IP).await.unwrap();
        Client {
            id: r.client_id,
            secret: r.client_secret,
        }
    }

    /// A confidential client (client_secret_basic).
    pub async fn confidential(&self) -> Client {
        self.client("client_secret_basic").await
    }

    pub fn creds(&self, c: &Client) -> ClientCredentials {
        ClientCredentials {
            client_id: Some(c.id.clone()),
            secret: c.secret.clone().map(ClientSecret::new),
            method: if c.secret.is_some() {
                AuthMethod::Basic
            } else {
                AuthMethod::None
            },
        }
    }

    /// An authorization request for `c` with PKCE over [`VERIFIER`].
    pub fn params(&self, c: &Client) -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some(c.id.clone()),
            redirect_uri: Some(REDIRECT.into()),
            state: Some("st-1".into()),
            scope: Some("mcp:read mcp:write".into()),
            code_challenge: Some(s256(VERIFIER)),
            code_challenge_method: Some("S256".into()),
            resource: vec![RESOURCE.into()],
            duplicated: Vec::new(),
        }
    }

    /// Starts a request; returns the pending request id.
    pub async fn start(&self, p: AuthorizeParams) -> String {
        match self.iss.authorize_start(p, CSRF).await {
            Ok(id) => id,
            Err(AuthorizeFailure::Page(e)) => panic!("authorize page error: {e:?}"),
            Err(AuthorizeFailure::Redirect(u)) => panic!("authorize error redirect: {u}"),
        }
    }

    /// Logs in as [`USER`] and approves (unless the consent is
    /// remembered); returns the client redirect.
    pub async fn login_and_consent(&self, id: &str) -> String {
        let out = self
            .iss
            .login_static(id, CSRF, USER, PASSWORD, IP)
            .await
            .unwrap();
        match out {
            LoginOutcome::Ok {
                next: Next::Consent(_),
                ..
            } => self.iss.consent_decide(id, CSRF, true).await.unwrap(),
            LoginOutcome::Ok {
                next: Next::Redirect(u),
                ..
            } => u,
            other => panic!("login did not complete: {other:?}"),
        }
    }

    /// The code of a completed authorization request.
    pub async fn code_for(&self, p: AuthorizeParams) -> String {
        let id = self.start(p).await;
        let redirect = self.login_and_consent(&id).await;
        assert!(redirect.starts_with(REDIRECT), "{redirect}");
        query(&redirect)["code"].clone()
    }

    pub async fn code(&self, c: &Client) -> String {
        self.code_for(self.params(c)).await
    }

    pub fn code_request(&self, c: &Client, code: &str, verifier: Option<&str>) -> TokenRequest {
        TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some(code.into()),
            redirect_uri: Some(REDIRECT.into()),
            code_verifier: verifier.map(PkceVerifier::new),
            refresh_token: None,
            scope: None,
            resource: Vec::new(),
            client: self.creds(c),
        }
    }

    pub async fn exchange(&self, c: &Client, code: &str) -> Result<TokenResponse, OAuthError> {
        self.iss
            .token(self.code_request(c, code, Some(VERIFIER)))
            .await
    }

    /// A logged-in client's first token response.
    pub async fn tokens(&self, c: &Client) -> TokenResponse {
        let code = self.code(c).await;
        self.exchange(c, &code).await.unwrap()
    }

    pub fn refresh_request(&self, c: &Client, rt: &str) -> TokenRequest {
        TokenRequest {
            grant_type: Some("refresh_token".into()),
            code: None,
            redirect_uri: None,
            code_verifier: None,
            refresh_token: Some(RefreshToken::new(rt)),
            scope: None,
            resource: Vec::new(),
            client: self.creds(c),
        }
    }

    pub async fn refresh(&self, c: &Client, rt: &str) -> Result<TokenResponse, OAuthError> {
        self.iss.token(self.refresh_request(c, rt)).await
    }

    pub async fn introspect(&self, token: &str) -> Introspection {
        self.iss
            .introspect(&Introspector::Admin, token)
            .await
            .unwrap()
    }

    pub async fn active(&self, token: &str) -> bool {
        self.introspect(token).await.active
    }

    /// Whether verifiers were told to drop this access token.
    pub fn published_revoked(&self, access_token: &str) -> bool {
        let c = self
            .iss
            .keys
            .decode(access_token, ISSUER)
            .expect("one of our access tokens");
        self.revs.is_revoked(TokenRef {
            jti: &c.jti,
            sub: &c.sub,
            client_id: c.client_id.as_deref(),
            iat: c.iat,
        })
    }
}

pub fn refresh_of(t: &TokenResponse) -> &str {
    t.refresh_token.as_deref().expect("a refresh token")
}
