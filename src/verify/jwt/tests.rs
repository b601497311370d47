//! Unit tests of JWT verification: tokens are built by hand (header and
//! payload JSON, signed with aws-lc-rs) so that every header field the
//! checks look at can be set or left out; time comes from a [`FixedClock`].

use super::*;
use crate::domain::clock::{Clock, FixedClock};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const ISS: &str = "https://as.example";
const T0: u64 = 1_700_000_000;

/// A private key and the public [`VerifyKey`] it pairs with.
enum Signer {
    Ed(Ed25519KeyPair),
    Es(EcdsaKeyPair),
}

impl Signer {
    fn ed25519() -> (Self, VerifyKey) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let vk = VerifyKey::ed25519(kp.public_key().as_ref()).unwrap();
        (Self::Ed(kp), vk)
    }

    fn es256() -> (Self, VerifyKey) {
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let point = kp.public_key().as_ref().to_vec();
        let vk = VerifyKey::es256(&point[1..33], &point[33..65]).unwrap();
        (Self::Es(kp), vk)
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Self::Es(k) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
        }
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A compact JWS of `header` and `claims`, signed by `key`.
fn jws(header: &Value, claims: &Value, key: &Signer) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// Keys by kid; `down` answers every lookup with `Unavailable`.
#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    down: bool,
}

#[async_trait::async_trait]
impl KeySource for Keys {
    async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Arc<VerifyKey>, KeyError> {
        assert_eq!(issuer, ISS, "keys are only asked for a trusted issuer");
        if self.down {
            return Err(KeyError::Unavailable);
        }
        self.by_kid
            .get(kid.unwrap_or_default())
            .cloned()
            .ok_or(KeyError::UnknownKid)
    }
}

fn settings(require_typ: bool) -> JwtSettings {
    JwtSettings {
        issuers: vec![ISS.into(), "https://other.example".into()],
        leeway_secs: 30,
        require_at_jwt_typ: require_typ,
        max_token_lifetime_secs: 3600,
        claims: HashMap::new(),
    }
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "u1", "aud": "https://mcp.example/mcp",
        "exp": T0 + 300, "iat": T0, "jti": "j1", "client_id": "c1", "scope": "mcp",
    })
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "at+jwt"})
}

struct Fixture {
    ed: Signer,
    es: Signer,
    keys: Keys,
}

fn fixture() -> Fixture {
    let (ed, ed_vk) = Signer::ed25519();
    let (es, es_vk) = Signer::es256();
    let mut keys = Keys::default();
    keys.by_kid.insert("ed".into(), Arc::new(ed_vk));
    keys.by_kid.insert("es".into(), Arc::new(es_vk));
    Fixture { ed, es, keys }
}

async fn verify(f: &Fixture, s: &JwtSettings, token: &str) -> Result<AccessClaims, DenyReason> {
    verify_signature(s, &f.keys, token).await
}

#[tokio::test]
async fn good_tokens_of_each_algorithm_verify() {
    let f = fixture();
    let s = settings(true);
    for (alg, kid, key) in [("EdDSA", "ed", &f.ed), ("ES256", "es", &f.es)] {
        let c = verify(&f, &s, &jws(&header(alg, kid), &claims(), key))
            .await
            .unwrap();
        assert_eq!((c.iss.as_str(), c.sub.as_str()), (ISS, "u1"));
        assert_eq!(c.exp, T0 + 300);
    }
    // RFC 9068 §2.1: `at+jwt` or its full media type, in any case.
    for typ in ["AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
        let h = json!({"alg": "EdDSA", "kid": "ed", "typ": typ});
        assert!(
            verify(&f, &s, &jws(&h, &claims(), &f.ed)).await.is_ok(),
            "{typ}"
        );
    }
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let f = fixture();
    let s = settings(false);
    let c = claims();
    // The header names another allowed algorithm than the key's.
    let t = jws(&header("ES256", "ed"), &c, &f.ed);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::BadAlgorithm)
    );
    let t = jws(&header("EdDSA", "es"), &c, &f.es);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::BadAlgorithm)
    );
    let t = jws(&header("RS256", "es"), &c, &f.es);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::BadAlgorithm)
    );
    // HMAC keyed with public material (the classic confusion): never HMAC.
    for alg in ["HS256", "HS384", "HS512"] {
        let h = header(alg, "ed");
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(c.to_string().as_bytes())
        );
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"public key bytes");
        let tag = aws_lc_rs::hmac::sign(&k, input.as_bytes());
        let t = format!("{input}.{}", b64(tag.as_ref()));
        assert_eq!(
            verify(&f, &s, &t).await.err(),
            Some(DenyReason::BadAlgorithm),
            "{alg}"
        );
    }
    // Other asymmetric algorithms the key set does not allow.
    for alg in ["RS512", "PS256", "ES384"] {
        let t = jws(&header(alg, "es"), &c, &f.es);
        assert_eq!(
            verify(&f, &s, &t).await.err(),
            Some(DenyReason::BadAlgorithm),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn alg_none_is_refused_in_every_spelling() {
    let f = fixture();
    let s = settings(false);
    let payload = b64(claims().to_string().as_bytes());
    for alg in ["none", "None", "NONE", ""] {
        let h = b64(json!({"alg": alg, "typ": "at+jwt"}).to_string().as_bytes());
        for t in [format!("{h}.{payload}."), format!("{h}.{payload}")] {
            let e = verify(&f, &s, &t).await.err();
            assert!(
                matches!(
                    e,
                    Some(DenyReason::BadAlgorithm | DenyReason::MalformedToken)
                ),
                "{alg}: {e:?}"
            );
        }
    }
    // No alg at all.
    let h = b64(json!({"kid": "ed"}).to_string().as_bytes());
    let t = format!("{h}.{payload}.{}", b64(&f.ed.sign(b"x")));
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::MalformedToken)
    );
}

#[tokio::test]
async fn any_crit_header_is_refused() {
    let f = fixture();
    let s = settings(false);
    for crit in [json!(["exp"]), json!(["x-ext"]), json!([])] {
        let h = json!({"alg": "EdDSA", "kid": "ed", "typ": "at+jwt", "crit": crit, "x-ext": 1});
        assert_eq!(
            verify(&f, &s, &jws(&h, &claims(), &f.ed)).await.err(),
            Some(DenyReason::UnknownCritical),
            "{crit}"
        );
    }
}

#[tokio::test]
async fn typ_is_checked_as_configured() {
    let f = fixture();
    let with = |typ: Option<&str>| match typ {
        Some(t) => json!({"alg": "EdDSA", "kid": "ed", "typ": t}),
        None => json!({"alg": "EdDSA", "kid": "ed"}),
    };
    let strict = settings(true);
    let lax = settings(false);
    for typ in [
        Some("JWT"),
        Some("jwt"),
        None,
        Some("id_token+jwt"),
        Some(""),
    ] {
        let t = jws(&with(typ), &claims(), &f.ed);
        assert_eq!(
            verify(&f, &strict, &t).await.err(),
            Some(DenyReason::BadType),
            "{typ:?}"
        );
    }
    for typ in [Some("JWT"), None] {
        let t = jws(&with(typ), &claims(), &f.ed);
        assert!(verify(&f, &lax, &t).await.is_ok(), "{typ:?}");
    }
    // Even lax, another type (an ID token, a logout token) is refused.
    for typ in ["id_token+jwt", "logout+jwt", "at+jwt2"] {
        let t = jws(&with(Some(typ)), &claims(), &f.ed);
        assert_eq!(
            verify(&f, &lax, &t).await.err(),
            Some(DenyReason::BadType),
            "{typ}"
        );
    }
}

#[tokio::test]
async fn keys_unknown_missing_or_unavailable() {
    let mut f = fixture();
    let s = settings(false);
    let c = claims();
    let t = jws(&header("EdDSA", "rotated-away"), &c, &f.ed);
    assert_eq!(verify(&f, &s, &t).await.err(), Some(DenyReason::UnknownKey));
    let t = jws(&json!({"alg": "EdDSA"}), &c, &f.ed);
    assert_eq!(verify(&f, &s, &t).await.err(), Some(DenyReason::UnknownKey));
    // The right kid signed by another key: a forged signature.
    let (stranger, _) = Signer::ed25519();
    let t = jws(&header("EdDSA", "ed"), &c, &stranger);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::BadSignature)
    );
    f.keys.down = true;
    let t = jws(&header("EdDSA", "ed"), &c, &f.ed);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::KeysUnavailable)
    );
}

#[tokio::test]
async fn tampering_and_malformed_tokens() {
    let f = fixture();
    let s = settings(false);
    let good = jws(&header("EdDSA", "ed"), &claims(), &f.ed);
    // Another payload under the original signature.
    let mut more = claims();
    more["scope"] = json!("mcp admin");
    let forged_payload = b64(more.to_string().as_bytes());
    let parts: Vec<&str> = good.split('.').collect();
    let t = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::BadSignature)
    );
    // A truncated signature, a signature that is not base64url, two parts.
    let t = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..12]);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::BadSignature)
    );
    let t = format!("{}.{}.not*base64", parts[0], parts[1]);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::MalformedToken)
    );
    let t = format!("{}.{}", parts[0], parts[1]);
    assert!(verify(&f, &s, &t).await.is_err());
    for t in ["", "a.b.c", "...", "eyJ.eyJ.sig"] {
        assert_eq!(
            verify(&f, &s, t).await.err(),
            Some(DenyReason::MalformedToken),
            "{t:?}"
        );
    }
    // Signed, but without the claims RFC 9068 requires.
    for drop in ["exp", "aud", "sub", "jti"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(drop);
        let t = jws(&header("EdDSA", "ed"), &c, &f.ed);
        assert_eq!(
            verify(&f, &s, &t).await.err(),
            Some(DenyReason::MalformedToken),
            "without {drop}"
        );
    }
}

#[tokio::test]
async fn issuer_must_be_trusted() {
    let f = fixture();
    let s = settings(false);
    for iss in [
        "https://evil.example",
        "https://as.example/",
        "https://AS.example",
        "http://as.example",
        "https://as.example.",
    ] {
        let mut c = claims();
        c["iss"] = json!(iss);
        let t = jws(&header("EdDSA", "ed"), &c, &f.ed);
        assert_eq!(
            verify(&f, &s, &t).await.err(),
            Some(DenyReason::UnknownIssuer),
            "{iss}"
        );
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    let t = jws(&header("EdDSA", "ed"), &c, &f.ed);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::MalformedToken)
    );
    let mut c = claims();
    c["iss"] = json!(["https://as.example"]);
    let t = jws(&header("EdDSA", "ed"), &c, &f.ed);
    assert_eq!(
        verify(&f, &s, &t).await.err(),
        Some(DenyReason::MalformedToken)
    );
}

/// The audience is the authorizer's check (per route), not this module's:
/// a token for another resource still has a good signature here.
#[tokio::test]
async fn audience_is_carried_for_the_route_check() {
    let f = fixture();
    let mut c = claims();
    c["aud"] = json!(["https://other.example/mcp", "https://mcp.example/mcp"]);
    let t = jws(&header("EdDSA", "ed"), &c, &f.ed);
    let got = verify(&f, &settings(false), &t).await.unwrap();
    assert!(got.aud.contains("https://mcp.example/mcp"));
    assert!(!got.aud.contains("https://mcp.example/mcp/"));
}

fn at(exp: u64, iat: u64, nbf: Option<u64>) -> AccessClaims {
    let mut c = claims();
    c["exp"] = json!(exp);
    c["iat"] = json!(iat);
    if let Some(n) = nbf {
        c["nbf"] = json!(n);
    }
    serde_json::from_value(c).unwrap()
}

#[test]
fn exp_with_leeway_at_the_boundary() {
    let s = settings(false);
    let clock = FixedClock::at_unix(T0);
    let c = at(T0 + 10, T0, None);
    assert_eq!(check_time(&c, clock.unix(), &s), Ok(()));
    // exp + leeway - 1 still passes; exp + leeway is expired.
    clock.advance(Duration::from_secs(10 + 30 - 1));
    assert_eq!(check_time(&c, clock.unix(), &s), Ok(()));
    clock.advance(Duration::from_secs(1));
    assert_eq!(check_time(&c, clock.unix(), &s), Err(DenyReason::Expired));
    let none = JwtSettings {
        leeway_secs: 0,
        ..settings(false)
    };
    let clock = FixedClock::at_unix(T0 + 9);
    assert_eq!(check_time(&c, clock.unix(), &none), Ok(()));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        check_time(&c, clock.unix(), &none),
        Err(DenyReason::Expired)
    );
}

#[test]
fn nbf_and_iat_with_leeway_at_the_boundary() {
    let s = settings(false);
    // Issued and valid from T0 + 100: the clock 30 s (the leeway) behind
    // is fine, 31 s behind is too early.
    let clock = FixedClock::at_unix(T0 + 69);
    for c in [
        at(T0 + 400, T0 + 100, None),
        at(T0 + 400, T0, Some(T0 + 100)),
    ] {
        assert_eq!(
            check_time(&c, clock.unix(), &s),
            Err(DenyReason::NotYetValid),
            "{c:?}"
        );
    }
    clock.advance(Duration::from_secs(1));
    for c in [
        at(T0 + 400, T0 + 100, None),
        at(T0 + 400, T0, Some(T0 + 100)),
    ] {
        assert_eq!(check_time(&c, clock.unix(), &s), Ok(()), "{c:?}");
    }
    // Saturating arithmetic at the far end of time.
    let far = at(u64::MAX, u64::MAX - 10, Some(u64::MAX));
    assert_eq!(
        check_time(&far, clock.unix(), &s),
        Err(DenyReason::NotYetValid)
    );
}

#[test]
fn lifetime_cap_at_the_boundary() {
    let s = settings(false);
    let now = FixedClock::at_unix(T0).unix();
    assert_eq!(check_time(&at(T0 + 3600, T0, None), now, &s), Ok(()));
    assert_eq!(
        check_time(&at(T0 + 3601, T0, None), now, &s),
        Err(DenyReason::LifetimeTooLong)
    );
    // An old iat cannot stretch it either (iat far in the past).
    assert_eq!(
        check_time(&at(T0 + 60, 0, None), now, &s),
        Err(DenyReason::LifetimeTooLong)
    );
    // exp before iat: no lifetime to cap; expiry decides.
    assert_eq!(
        check_time(&at(T0 + 60, T0 + 61, None), now + 30, &s),
        Err(DenyReason::NotYetValid)
    );
}
