//! Checks an issued access token as a resource server would: RFC 9068
//! `typ: at+jwt`, the signature against the issuer's `/jwks`, `aud`, `iss`.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use mcpgate::domain::claims::AccessClaims;

pub async fn verify(
    http: &reqwest::Client,
    issuer: &str,
    resource: &str,
    token: &str,
) -> AccessClaims {
    let jwks: JwkSet = http
        .get(format!("{issuer}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut v = Validation::new(header.alg);
    v.set_audience(&[resource]);
    v.set_issuer(&[issuer]);
    jsonwebtoken::decode::<AccessClaims>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}
