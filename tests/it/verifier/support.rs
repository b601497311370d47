//! Verifier test support: signing keys, a local issuer serving discovery +
//! JWKS, token minting, spawning the verifier and a gRPC Check helper (the
//! Redis servers come from `crate::redis`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{
    check_response, AttributeContext, CheckRequest, CheckResponse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcpgate::app::verifier::{spawn, RunningVerifier, VerifierDeps};
use mcpgate::config::verifier::VerifierConfig;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    enc: EncodingKey,
    pub jwk: Value,
}

/// One DER TLV at the start of `d`: (tag, contents, rest).
fn der_tlv(d: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (d[0], d[1] as usize);
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        (
            d[2..2 + n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    (tag, &d[hdr..hdr + len], &d[hdr + len..])
}

/// The RFC 8017 `RSAPrivateKey` inside a PKCS #8 `PrivateKeyInfo` (the
/// OCTET STRING after version and algorithm).
fn pkcs1_of_pkcs8(pkcs8: &[u8]) -> &[u8] {
    let (_, mut body, _) = der_tlv(pkcs8);
    loop {
        let (tag, contents, rest) = der_tlv(body);
        if tag == 0x04 {
            return contents;
        }
        body = rest;
    }
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let pubk = kp.public_key().as_ref();
        let (x, y) = (&pubk[1..33], &pubk[33..65]);
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            enc: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": kid, "use": "sig", "alg": "ES256"}),
        }
    }

    pub fn rs256(kid: &str) -> Self {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der = kp.as_der().unwrap();
        let pk = kp.public_key();
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            enc: EncodingKey::from_rsa_der(pkcs1_of_pkcs8(der.as_ref())),
            jwk: json!({"kty": "RSA", "n": b64(pk.modulus().big_endian_without_leading_zero()),
                "e": b64(pk.exponent().big_endian_without_leading_zero()), "kid": kid, "alg": "RS256"}),
        }
    }

    pub fn ed25519(kid: &str) -> Self {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            enc: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref()), "kid": kid, "alg": "EdDSA"}),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }
}

/// A local issuer: RFC 8414 metadata + JWKS whose keys and failure mode
/// tests change at will.
pub struct Issuer {
    pub url: String,
    pub state: Arc<Mutex<IssuerState>>,
}

#[derive(Default)]
pub struct IssuerState {
    pub keys: Vec<Value>,
    pub fail: bool,
    pub jwks_hits: usize,
    pub url: String,
}

async fn meta(State(s): State<Arc<Mutex<IssuerState>>>) -> Json<Value> {
    let url = s.lock().unwrap().url.clone();
    Json(json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}))
}

async fn jwks(
    State(s): State<Arc<Mutex<IssuerState>>>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    let mut s = s.lock().unwrap();
    s.jwks_hits += 1;
    if s.fail {
        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(Json(json!({"keys": s.keys})))
}

impl Issuer {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let state = Arc::new(Mutex::new(IssuerState {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
            url: url.clone(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(meta))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Self { url, state }
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.state.lock().unwrap().keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn set_fail(&self, fail: bool) {
        self.state.lock().unwrap().fail = fail;
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.lock().unwrap().jwks_hits
    }
}

pub fn now() -> u64 {
    std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()
}

/// Claims for a valid token on `http://mcp.test/mcp`.
pub fn claims(iss: &str, scope: &str) -> Value {
    let n = now();
    json!({
        "iss": iss, "sub": "user-1", "aud": "http://mcp.test/mcp", "exp": n + 300, "iat": n,
        "jti": format!("jti-{}", rand::random::<u64>()), "client_id": "client-1", "scope": scope,
        "username": "alice", "email": "alice@example.com",
    })
}

/// Verifier config on port 0 for `http://mcp.test/mcp`; `extra` overrides.
pub fn config(issuer: &str, extra: &[(&str, &str)]) -> VerifierConfig {
    let mut env: HashMap<String, String> = [
        ("MCPGW_VERIFIER_HTTP_ADDR", "127.0.0.1:0"),
        ("MCPGW_VERIFIER_GRPC_ADDR", "127.0.0.1:0"),
        ("MCPGW_VERIFIER_ISSUERS", issuer),
        ("MCPGW_VERIFIER_RESOURCE", "http://mcp.test/mcp"),
        ("MCPGW_VERIFIER_REQUIRED_SCOPES", "mcp"),
        ("MCPGW_VERIFIER_JWKS_MIN_REFETCH_SECS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    VerifierConfig::load(&env).unwrap()
}

/// Same, from a TOML file body plus the listen addresses.
pub fn config_toml(toml: &str) -> VerifierConfig {
    let full = format!("http_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\n{toml}");
    mcpgate::config::verifier::RawConfig::from_toml(&full)
        .unwrap()
        .validate()
        .unwrap()
}

pub async fn start(config: VerifierConfig) -> RunningVerifier {
    crate::log_capture::install();
    spawn(config, VerifierDeps::default()).await.unwrap()
}

/// One ext_authz Check over a real gRPC connection.
/// The verifier's `/metrics` page (its internal listener).
pub async fn metrics_text(v: &RunningVerifier) -> String {
    reqwest::get(format!("http://{}/metrics", v.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub async fn grpc_check(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> CheckResponse {
    grpc_check_host(addr, "mcp.test", path, headers).await
}

/// The same, for another `host`.
pub async fn grpc_check_host(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CheckResponse {
    let mut c = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    host: host.into(),
                    path: path.into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    c.check(req).await.unwrap().into_inner()
}

/// (HTTP status, headers set or `www-authenticate`, headers removed).
pub fn summarize(r: &CheckResponse) -> (u16, HashMap<String, String>, Vec<String>) {
    match r.http_response.as_ref().unwrap() {
        check_response::HttpResponse::OkResponse(ok) => {
            let set = ok
                .headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect();
            (200, set, ok.headers_to_remove.clone())
        }
        check_response::HttpResponse::DeniedResponse(d) => {
            let set = d
                .headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect();
            (d.status.as_ref().unwrap().code as u16, set, vec![])
        }
        check_response::HttpResponse::ErrorResponse(_) => (500, HashMap::new(), vec![]),
    }
}

pub use crate::redis::{start_cluster, start_cluster_of, RedisServer};
