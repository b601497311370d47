//! JWT access-token verification (RFC 9068 profile): alg allow-list, issuer
//! allow-list, key lookup through [`KeySource`], injected time.

use super::decision::DenyReason;
use crate::domain::claims::{AccessClaims, AT_JWT_TYP};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::Arc;

/// Algorithms accepted; never `none`, never HMAC.
pub const ALLOWED_ALGS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// A public verification key bound to exactly one algorithm.
pub struct VerifyKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// Why a key could not be produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key with that kid")]
    UnknownKid,
    #[error("issuer keys unavailable")]
    Unavailable,
}

/// Where verification keys come from (the JWKS cache in `infra`).
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + 'static {
    async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Arc<VerifyKey>, KeyError>;
}

/// Static verification settings.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub issuers: Vec<String>,
    pub leeway_secs: u64,
    pub require_at_jwt_typ: bool,
}

#[derive(serde::Deserialize)]
struct UnverifiedIss {
    iss: String,
}

/// Checks signature, issuer and `typ`; time is checked by [`check_time`].
pub async fn verify_signature(
    s: &JwtSettings,
    keys: &dyn KeySource,
    unverified_token: &str,
) -> Result<AccessClaims, DenyReason> {
    let header =
        jsonwebtoken::decode_header(unverified_token).map_err(|_| DenyReason::MalformedToken)?;
    if !ALLOWED_ALGS.contains(&header.alg) {
        return Err(DenyReason::BadAlgorithm);
    }
    match header.typ.as_deref() {
        Some(t)
            if t.eq_ignore_ascii_case(AT_JWT_TYP)
                || t.eq_ignore_ascii_case("application/at+jwt") => {}
        Some(t) if t.eq_ignore_ascii_case("jwt") && !s.require_at_jwt_typ => {}
        None if !s.require_at_jwt_typ => {}
        _ => return Err(DenyReason::BadType),
    }
    let iss = unverified_issuer(unverified_token)?;
    if !s.issuers.contains(&iss) {
        return Err(DenyReason::UnknownIssuer);
    }
    let key = keys
        .key(&iss, header.kid.as_deref())
        .await
        .map_err(|e| match e {
            KeyError::UnknownKid => DenyReason::UnknownKey,
            KeyError::Unavailable => DenyReason::KeysUnavailable,
        })?;
    if key.alg != header.alg {
        return Err(DenyReason::BadAlgorithm);
    }
    let mut v = Validation::new(key.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v.set_issuer(&[iss.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data = jsonwebtoken::decode::<AccessClaims>(unverified_token, &key.key, &v).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => DenyReason::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => DenyReason::BadAlgorithm,
            _ => DenyReason::MalformedToken,
        },
    )?;
    Ok(data.claims)
}

/// `exp`/`nbf` against the injected `now` with `leeway`.
pub fn check_time(c: &AccessClaims, now: u64, leeway: u64) -> Result<(), DenyReason> {
    if now >= c.exp.saturating_add(leeway) {
        return Err(DenyReason::Expired);
    }
    if c.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(DenyReason::NotYetValid);
    }
    Ok(())
}

fn unverified_issuer(token: &str) -> Result<String, DenyReason> {
    let payload = token.split('.').nth(1).ok_or(DenyReason::MalformedToken)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| DenyReason::MalformedToken)?;
    serde_json::from_slice::<UnverifiedIss>(&bytes)
        .map(|u| u.iss)
        .map_err(|_| DenyReason::MalformedToken)
}
