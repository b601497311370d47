//! JWT access-token verification (RFC 9068 profile): alg allow-list, issuer
//! allow-list, key lookup through [`KeySource`], injected time.

use super::decision::DenyReason;
use crate::domain::claim_map::ClaimMapping;
use crate::domain::claims::{AccessClaims, AT_JWT_TYP};
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use std::sync::Arc;

/// Algorithms accepted; never `none`, never HMAC.
pub(crate) const ALLOWED_ALGS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// A public verification key bound to exactly one algorithm, parsed once
/// (an RSA key's Montgomery setup is most of a verification's cost, so it
/// is not redone per token).
pub(crate) struct VerifyKey {
    pub alg: Algorithm,
    key: ParsedPublicKey,
}

impl VerifyKey {
    /// An RS256 key from its modulus and exponent (big-endian bytes).
    pub(crate) fn rs256(n: &[u8], e: &[u8]) -> Option<Self> {
        let key = RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .ok()?;
        Some(Self {
            alg: Algorithm::RS256,
            key,
        })
    }

    /// An ES256 key from its P-256 point coordinates (32 bytes each).
    pub(crate) fn es256(x: &[u8], y: &[u8]) -> Option<Self> {
        if x.len() != 32 || y.len() != 32 {
            return None;
        }
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).ok()?;
        Some(Self {
            alg: Algorithm::ES256,
            key,
        })
    }

    /// An EdDSA (Ed25519) key from its 32 raw bytes.
    pub(crate) fn ed25519(x: &[u8]) -> Option<Self> {
        let key = ParsedPublicKey::new(&ED25519, x).ok()?;
        Some(Self {
            alg: Algorithm::EdDSA,
            key,
        })
    }

    /// Whether `sig` is this key's signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        self.key.verify_sig(message, sig).is_ok()
    }
}

/// Why a key could not be produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("no key with that kid")]
    UnknownKid,
    #[error("issuer keys unavailable")]
    Unavailable,
}

/// Where verification keys come from (the JWKS cache in `infra`).
#[async_trait::async_trait]
pub(crate) trait KeySource: Send + Sync + 'static {
    async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Arc<VerifyKey>, KeyError>;
}

/// Static verification settings.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub issuers: Vec<String>,
    pub(crate) leeway_secs: u64,
    pub(crate) require_at_jwt_typ: bool,
    /// Longest accepted `exp - iat` (`max_token_lifetime_secs`): the
    /// revocation mirror keeps subject/client watermarks this long, so a
    /// token may never outlive them.
    pub(crate) max_token_lifetime_secs: u64,
    /// How each issuer's tokens carry their claims; an issuer not listed
    /// gets [`ClaimMapping::default`] (mcpgate's own tokens).
    pub claims: std::collections::HashMap<String, ClaimMapping>,
}

#[derive(serde::Deserialize)]
struct UnverifiedIss {
    iss: String,
}

/// Checks signature, issuer and `typ`; time is checked by [`check_time`].
pub(crate) async fn verify_signature(
    s: &JwtSettings,
    keys: &dyn KeySource,
    unverified_token: &str,
) -> Result<AccessClaims, DenyReason> {
    let header =
        jsonwebtoken::decode_header(unverified_token).map_err(|_| DenyReason::MalformedToken)?;
    if !ALLOWED_ALGS.contains(&header.alg) {
        return Err(DenyReason::BadAlgorithm);
    }
    // RFC 7515 §4.1.11: no extension is understood here, so any `crit`
    // makes the token unacceptable.
    if header.crit.is_some() {
        return Err(DenyReason::UnknownCritical);
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
    let (signing_input, sig) = unverified_token
        .rsplit_once('.')
        .ok_or(DenyReason::MalformedToken)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| DenyReason::MalformedToken)?;
    if !key.verifies(signing_input.as_bytes(), &sig) {
        return Err(DenyReason::BadSignature);
    }
    // Signed: now the claims (exp, iss and aud are required by the type).
    let payload = signing_input
        .split_once('.')
        .map(|(_, p)| p)
        .ok_or(DenyReason::MalformedToken)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| DenyReason::MalformedToken)?;
    static DEFAULT: std::sync::LazyLock<ClaimMapping> = std::sync::LazyLock::new(Default::default);
    let claims: AccessClaims = s
        .claims
        .get(&iss)
        .unwrap_or(&DEFAULT)
        .read(&bytes)
        .map_err(|_| DenyReason::MalformedToken)?;
    if claims.iss != iss {
        return Err(DenyReason::MalformedToken);
    }
    Ok(claims)
}

/// `exp`/`nbf`/`iat` against the injected `now` with the leeway, and the
/// token's lifetime (`exp - iat`) against `max_token_lifetime_secs`.
pub(crate) fn check_time(c: &AccessClaims, now: u64, s: &JwtSettings) -> Result<(), DenyReason> {
    check_times(c.exp, c.iat, c.nbf, now, s)
}

/// [`check_time`] on the time claims alone (a cached token's).
pub(crate) fn check_times(
    exp: u64,
    iat: u64,
    nbf: Option<u64>,
    now: u64,
    s: &JwtSettings,
) -> Result<(), DenyReason> {
    let leeway = s.leeway_secs;
    if now >= exp.saturating_add(leeway) {
        return Err(DenyReason::Expired);
    }
    let soon = now.saturating_add(leeway);
    if nbf.is_some_and(|nbf| nbf > soon) || iat > soon {
        return Err(DenyReason::NotYetValid);
    }
    if exp.saturating_sub(iat) > s.max_token_lifetime_secs {
        return Err(DenyReason::LifetimeTooLong);
    }
    Ok(())
}

fn unverified_issuer(token: &str) -> Result<String, DenyReason> {
    let payload = token.split('.').nth(1).ok_or(DenyReason::MalformedToken)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| DenyReason::MalformedToken)?;
    serde_json::from_slice::<UnverifiedIss>(&bytes)
        .map(|u| u.iss)
        .map_err(|_| DenyReason::MalformedToken)
}

#[cfg(test)]
mod tests;
