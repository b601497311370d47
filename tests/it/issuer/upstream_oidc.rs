//! `OidcIdp` against a minimal local OpenID provider: discovery, JWKS and a
//! token endpoint issuing ES256 ID tokens whose claims each test controls.

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcpgate::domain::clock::FixedClock;
use mcpgate::domain::secret::{ClientSecret, PkceVerifier};
use mcpgate::infra::oidc::{ClientAuthMethod, LazyOidc, OidcIdp, OidcSettings};
use mcpgate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamIdp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const NOW: u64 = 1_900_000_000;
const VERIFIER: &str = "oidc-test-verifier-0123456789-0123456789-abcdef";

struct SigningKey {
    kid: String,
    enc: EncodingKey,
    jwk: Value,
}

fn gen_key(kid: &str) -> SigningKey {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65);
    SigningKey {
        kid: kid.into(),
        enc: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

/// What the next ID token looks like.
#[derive(Clone)]
struct Plan {
    claims: Value,
    /// Which key signs: index into `keys`, or `None` for the rogue key.
    signer: Option<usize>,
    /// Header kid override (defaults to the signer's kid).
    kid: Option<String>,
}

struct Provider {
    issuer: String,
    keys: Mutex<Vec<SigningKey>>,
    published: Mutex<usize>,
    rogue: SigningKey,
    plan: Mutex<Option<Plan>>,
    discovery_issuer: Mutex<Option<String>>,
}

type Shared = Arc<Provider>;

async fn discovery(State(p): State<Shared>) -> Json<Value> {
    let iss = p
        .discovery_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(p.issuer.clone());
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{}/authorize?tenant=t1", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "jwks_uri": format!("{}/jwks", p.issuer),
        "userinfo_endpoint": format!("{}/userinfo", p.issuer),
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(p): State<Shared>) -> Json<Value> {
    let n = *p.published.lock().unwrap();
    let keys: Vec<Value> = p
        .keys
        .lock()
        .unwrap()
        .iter()
        .take(n)
        .map(|k| k.jwk.clone())
        .collect();
    Json(json!({ "keys": keys }))
}

fn client_authenticated(h: &HeaderMap, f: &HashMap<String, String>) -> bool {
    let basic = format!("Basic {}", STANDARD.encode("rp-client:rp%2Fsecret"));
    let by_header = h.get("authorization").and_then(|v| v.to_str().ok()) == Some(basic.as_str());
    let by_form = f.get("client_id").map(String::as_str) == Some("rp-client")
        && f.get("client_secret").map(String::as_str) == Some("rp/secret");
    by_header != by_form
}

async fn token(
    State(p): State<Shared>,
    h: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let bad = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": e })));
    if !client_authenticated(&h, &f) {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        ));
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code")
        || f.get("code").map(String::as_str) != Some("the-code")
        || f.get("code_verifier").map(String::as_str) != Some(VERIFIER)
    {
        return Err(bad("invalid_grant"));
    }
    let plan = p
        .plan
        .lock()
        .unwrap()
        .clone()
        .ok_or_else(|| bad("invalid_grant"))?;
    let keys = p.keys.lock().unwrap();
    let signer = match plan.signer {
        Some(i) => &keys[i],
        None => &p.rogue,
    };
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(plan.kid.unwrap_or(signer.kid.clone()));
    let id_token = jsonwebtoken::encode(&header, &plan.claims, &signer.enc).unwrap();
    Ok(Json(
        json!({"access_token": "at-1", "token_type": "Bearer", "id_token": id_token}),
    ))
}

async fn userinfo(h: HeaderMap) -> Result<Json<Value>, StatusCode> {
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer at-1") {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(Json(
        json!({"sub": "user-1", "preferred_username": "from-userinfo", "name": "Info Name"}),
    ))
}

async fn provider() -> Shared {
    provider_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
}

fn provider_on(listener: tokio::net::TcpListener) -> Shared {
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let p = Arc::new(Provider {
        issuer,
        keys: Mutex::new(vec![gen_key("k1"), gen_key("k2")]),
        published: Mutex::new(1),
        rogue: gen_key("k1"),
        plan: Mutex::new(None),
        discovery_issuer: Mutex::new(None),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    p
}

fn settings(p: &Provider) -> OidcSettings {
    let mut s = OidcSettings::new(
        "corp",
        &p.issuer,
        "rp-client",
        Some(ClientSecret::new("rp/secret")),
    );
    s.display_name = "Corp SSO".into();
    s
}

async fn idp(_p: &Provider, s: OidcSettings) -> Result<OidcIdp, UpstreamError> {
    OidcIdp::discover_with_clock(
        s,
        reqwest::Client::new(),
        Arc::new(FixedClock::at_unix(NOW)),
    )
    .await
}

fn auth_request() -> UpstreamAuthRequest {
    UpstreamAuthRequest {
        state: "st".into(),
        redirect_uri: "https://as.example/callback/corp".into(),
        pkce_verifier: PkceVerifier::new(VERIFIER),
        nonce: "n-0S6_WzA2Mj".into(),
    }
}

fn good_claims(p: &Provider) -> Value {
    json!({
        "iss": p.issuer, "aud": "rp-client", "sub": "user-1", "nonce": "n-0S6_WzA2Mj",
        "iat": NOW - 5, "exp": NOW + 300,
        "preferred_username": "jdoe", "email": "jdoe@corp.example", "email_verified": true,
        "name": "Jane Doe",
    })
}

fn plan(p: &Provider, edit: impl FnOnce(&mut Value)) {
    let mut claims = good_claims(p);
    edit(&mut claims);
    *p.plan.lock().unwrap() = Some(Plan {
        claims,
        signer: Some(0),
        kid: None,
    });
}

#[tokio::test]
async fn oidc_authorize_url_has_pkce_nonce_and_keeps_endpoint_query() {
    let p = provider().await;
    let idp = idp(&p, settings(&p)).await.unwrap();
    assert_eq!((idp.id(), idp.display_name()), ("corp", "Corp SSO"));
    let url = url::Url::parse(&idp.authorize_url(&auth_request()).unwrap()).unwrap();
    let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["tenant"], "t1");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "rp-client");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(q["state"], "st");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["code_challenge"],
        mcpgate::domain::secret::pkce_s256(VERIFIER)
    );
}

#[tokio::test]
async fn oidc_exchange_validates_id_token() {
    let p = provider().await;
    plan(&p, |_| {});
    for method in [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
    ] {
        let mut s = settings(&p);
        s.auth_method = method;
        let user = idp(&p, s)
            .await
            .unwrap()
            .exchange("the-code", &auth_request())
            .await
            .unwrap();
        assert_eq!(user.subject, "corp:user-1");
        assert_eq!(user.username.as_deref(), Some("jdoe"));
        assert_eq!(user.email.as_deref(), Some("jdoe@corp.example"));
        assert!(user.email_verified);
        assert_eq!(user.name.as_deref(), Some("Jane Doe"));
    }
}

#[tokio::test]
async fn oidc_userinfo_fills_missing_claims() {
    let p = provider().await;
    plan(&p, |c| {
        let o = c.as_object_mut().unwrap();
        o.remove("preferred_username");
        o.remove("name");
        o.insert("email_verified".into(), json!("false"));
    });
    let mut s = settings(&p);
    s.use_userinfo = true;
    let user = idp(&p, s)
        .await
        .unwrap()
        .exchange("the-code", &auth_request())
        .await
        .unwrap();
    assert_eq!(user.username.as_deref(), Some("from-userinfo"));
    assert_eq!(user.name.as_deref(), Some("Info Name"));
    assert!(!user.email_verified);
}

type ClaimEdit = dyn Fn(&mut Value);

#[tokio::test]
async fn oidc_rejects_bad_id_tokens() {
    let p = provider().await;
    let idp = idp(&p, settings(&p)).await.unwrap();
    let cases: Vec<(&str, Box<ClaimEdit>)> = vec![
        ("wrong nonce", Box::new(|c| c["nonce"] = json!("other"))),
        (
            "missing nonce",
            Box::new(|c| drop(c.as_object_mut().unwrap().remove("nonce"))),
        ),
        ("wrong aud", Box::new(|c| c["aud"] = json!("someone-else"))),
        (
            "wrong iss",
            Box::new(|c| c["iss"] = json!("https://evil.example")),
        ),
        ("expired", Box::new(|c| c["exp"] = json!(NOW - 120))),
        ("future iat", Box::new(|c| c["iat"] = json!(NOW + 3600))),
        (
            "foreign azp",
            Box::new(|c| c["azp"] = json!("other-client")),
        ),
    ];
    for (name, edit) in cases {
        plan(&p, |c| edit(c));
        let err = idp.exchange("the-code", &auth_request()).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Rejected(_)), "{name}: {err:?}");
    }
    // Within the leeway an expired token is still accepted.
    plan(&p, |c| c["exp"] = json!(NOW - 30));
    idp.exchange("the-code", &auth_request()).await.unwrap();

    // Signed by a key that is not the provider's, under the provider's kid.
    plan(&p, |_| {});
    p.plan.lock().unwrap().as_mut().unwrap().signer = None;
    let err = idp.exchange("the-code", &auth_request()).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Rejected(_)),
        "bad signature: {err:?}"
    );

    // Wrong PKCE verifier: the provider refuses the grant.
    plan(&p, |_| {});
    let mut req = auth_request();
    req.pkce_verifier = PkceVerifier::new("not-the-verifier");
    let err = idp.exchange("the-code", &req).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Rejected(_)), "pkce: {err:?}");
}

#[tokio::test]
async fn oidc_refetches_jwks_on_unknown_kid() {
    let p = provider().await;
    let idp = idp(&p, settings(&p)).await.unwrap();
    // The provider rotates to k2 after we discovered it.
    *p.published.lock().unwrap() = 2;
    plan(&p, |_| {});
    p.plan.lock().unwrap().as_mut().unwrap().signer = Some(1);
    let user = idp.exchange("the-code", &auth_request()).await.unwrap();
    assert_eq!(user.subject, "corp:user-1");
    // A kid the provider never published is rejected.
    p.plan.lock().unwrap().as_mut().unwrap().kid = Some("k9".into());
    let err = idp.exchange("the-code", &auth_request()).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn oidc_discovery_issuer_must_match() {
    let p = provider().await;
    *p.discovery_issuer.lock().unwrap() = Some("https://elsewhere.example".into());
    let err = idp(&p, settings(&p)).await.err().unwrap();
    assert!(matches!(err, UpstreamError::Config(_)), "{err:?}");
}

/// A provider that is down when the issuer starts: the issuer starts
/// anyway, logins through it answer "unavailable", and it comes into use
/// once discovery succeeds in the background.
#[tokio::test]
async fn oidc_provider_down_at_start_is_retried() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut s = OidcSettings::new(
        "corp",
        format!("http://{addr}"),
        "rp-client",
        Some(ClientSecret::new("rp/secret")),
    );
    s.display_name = "Corp SSO".into();
    let clock = Arc::new(FixedClock::at_unix(NOW));
    let lazy = LazyOidc::start(s, reqwest::Client::new(), clock)
        .await
        .unwrap();
    assert_eq!(lazy.display_name(), "Corp SSO");
    let err = lazy.authorize_url(&auth_request()).unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable(_)), "{err:?}");

    let _p = provider_on(tokio::net::TcpListener::bind(addr).await.unwrap());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match lazy.authorize_url(&auth_request()) {
            Ok(url) => {
                assert!(url.contains("code_challenge_method=S256"), "{url}");
                break;
            }
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("discovery never succeeded: {e:?}"),
        }
    }
}

#[tokio::test]
async fn oidc_misconfigured_provider_still_fails_start() {
    let p = provider().await;
    *p.discovery_issuer.lock().unwrap() = Some("https://elsewhere.example".into());
    let clock = Arc::new(FixedClock::at_unix(NOW));
    let err = LazyOidc::start(settings(&p), reqwest::Client::new(), clock)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, UpstreamError::Config(_)), "{err:?}");
}

#[test]
fn google_preset() {
    let s = OidcSettings::google("gid", ClientSecret::new("gsecret"));
    assert_eq!(s.issuer, "https://accounts.google.com");
    assert_eq!(s.id, "google");
    assert_eq!(s.display_name, "Google");
}
