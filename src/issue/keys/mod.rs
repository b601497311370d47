//! Signing keys: RS256 (default), ES256 or EdDSA; from PEM files, or
//! generated with aws-lc-rs and persisted in the store ([`Namespace::Keys`]).
//!
//! Rotation (store-managed keys): a `next` key is published in the JWKS
//! before it signs anything; on rotation it becomes `current`, the old
//! current becomes `retired` and stays published until every token it
//! signed has expired (`retire_after`), and a new `next` is generated.
//!
//! Replicas agree: the first key pair is chosen by a store-side
//! compare-and-set ([`GENESIS`], written only if absent, then re-read, so
//! replicas starting together all adopt the winner's pair), and every
//! rotation bumps [`VERSION`], which each replica polls cheaply (one GET a
//! second) to reload at once after another replica rotated.

use crate::domain::claims::{AccessClaims, AT_JWT_TYP};
use crate::issue::store::{Namespace, Store, StoreError};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The JWS algorithm of issued tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    EdDSA,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key: {0}")]
    Invalid(String),
    #[error("key storage: {0}")]
    Store(#[from] StoreError),
    #[error("keys come from files; rotate them by replacing the files")]
    FileManaged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyState {
    Next,
    Current,
    Retired,
}

/// A stored key (private key as PKCS#8 PEM).
#[derive(Clone, Serialize, Deserialize)]
struct KeyRecord {
    kid: String,
    alg: SigningAlg,
    pem: String,
    state: KeyState,
    created_at: u64,
    activated_at: Option<u64>,
    retired_at: Option<u64>,
}

struct LoadedKey {
    rec: KeyRecord,
    signer: KeySigner,
    /// The JWS header of this key's tokens, base64url-encoded.
    header: String,
    dec: DecodingKey,
    jwk: Jwk,
}

/// A private key parsed once, to sign with.
///
/// Why not `jsonwebtoken::encode`: it parses the private key again for
/// every signature, and for RSA-2048 that parse (with its consistency
/// check) costs more than the signature itself, on the token endpoint's
/// hottest path. The compact serialisation written here is RFC 7515 §7.1:
/// `BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature)`.
enum KeySigner {
    Rsa(aws_lc_rs::signature::RsaKeyPair),
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
    Ed(aws_lc_rs::signature::Ed25519KeyPair),
}

impl KeySigner {
    /// From the DER that `EncodingKey` holds: what jsonwebtoken's own
    /// aws-lc signers parse.
    fn new(alg: SigningAlg, enc: &EncodingKey) -> Result<Self, KeyError> {
        use aws_lc_rs::signature as sig;
        let der = enc.as_bytes();
        Ok(match alg {
            SigningAlg::RS256 => Self::Rsa(sig::RsaKeyPair::from_der(der).map_err(invalid)?),
            SigningAlg::ES256 => Self::Ec(
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(invalid)?,
            ),
            SigningAlg::EdDSA => Self::Ed(sig::Ed25519KeyPair::from_pkcs8(der).map_err(invalid)?),
        })
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        use aws_lc_rs::signature as sig;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ok(match self {
            Self::Rsa(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut out)
                    .map_err(invalid)?;
                out
            }
            Self::Ec(k) => k.sign(&rng, msg).map_err(invalid)?.as_ref().to_vec(),
            Self::Ed(k) => k.sign(msg).as_ref().to_vec(),
        })
    }
}

/// Store key (in [`Namespace::Keys`]) of the agreed first key pair.
pub(crate) const GENESIS: &str = "meta:genesis";
/// Store key (in [`Namespace::Keys`]) of the signing-key version: the kid
/// of the latest rotation's current key.
pub(crate) const VERSION: &str = "meta:version";

/// PEM key material from files: the signing key, optionally the key to
/// pre-publish, and retired keys still to publish.
#[derive(Debug, Clone, Default)]
pub struct PemKeys {
    pub current: String,
    pub next: Option<String>,
    pub retired: Vec<String>,
}

/// The issuer's signing keys.
pub struct KeyManager {
    alg: SigningAlg,
    store: Arc<dyn Store>,
    retire_after: Duration,
    file_managed: bool,
    keys: RwLock<Vec<LoadedKey>>,
}

// === impl SigningAlg ===

impl SigningAlg {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> KeyError {
    KeyError::Invalid(e.to_string())
}

/// Generates a key pair as PKCS#8 PEM: RSA 2048, P-256 or Ed25519.
pub fn generate_pem(alg: SigningAlg) -> Result<String, KeyError> {
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let der: Vec<u8> = match alg {
        SigningAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(invalid)?;
            let der: Pkcs8V1Der<'static> = kp.as_der().map_err(invalid)?;
            der.as_ref().to_vec()
        }
        SigningAlg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(invalid)?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDSA => {
            Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
                .map_err(invalid)?
                .as_ref()
                .to_vec()
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

fn load(rec: KeyRecord) -> Result<LoadedKey, KeyError> {
    let pem = rec.pem.as_bytes();
    let enc = match rec.alg {
        SigningAlg::RS256 => EncodingKey::from_rsa_pem(pem),
        SigningAlg::ES256 => EncodingKey::from_ec_pem(pem),
        SigningAlg::EdDSA => EncodingKey::from_ed_pem(pem),
    }
    .map_err(|e| invalid(format!("{} key: {e}", rec.alg.name())))?;
    let mut jwk = Jwk::from_encoding_key(&enc, rec.alg.jwt()).map_err(invalid)?;
    jwk.common.key_id = Some(rec.kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let dec = DecodingKey::from_jwk(&jwk).map_err(invalid)?;
    let signer = KeySigner::new(rec.alg, &enc)?;
    let mut header = Header::new(rec.alg.jwt());
    header.typ = Some(AT_JWT_TYP.to_owned());
    header.kid = Some(rec.kid.clone());
    let header = serde_json::to_vec(&header).map_err(invalid)?;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
    Ok(LoadedKey {
        rec,
        signer,
        header,
        dec,
        jwk,
    })
}

/// A record for file key material; the kid is the RFC 7638 thumbprint.
fn file_record(alg: SigningAlg, pem: &str, state: KeyState) -> Result<LoadedKey, KeyError> {
    let mut rec = KeyRecord {
        kid: String::new(),
        alg,
        pem: pem.to_owned(),
        state,
        created_at: 0,
        activated_at: Some(0),
        retired_at: None,
    };
    let probe = load(rec.clone())?;
    rec.kid = probe
        .jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(invalid)?;
    load(rec)
}

fn new_record(alg: SigningAlg, state: KeyState, now: u64) -> Result<KeyRecord, KeyError> {
    let mut kid = [0u8; 12];
    aws_lc_rs::rand::fill(&mut kid).map_err(invalid)?;
    Ok(KeyRecord {
        kid: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kid),
        alg,
        pem: generate_pem(alg)?,
        state,
        created_at: now,
        activated_at: (state == KeyState::Current).then_some(now),
        retired_at: None,
    })
}

// === impl KeyManager ===

impl KeyManager {
    /// Keys from PEM files (never persisted; rotation is the operator's).
    pub fn from_pem(
        alg: SigningAlg,
        pem: &PemKeys,
        store: Arc<dyn Store>,
    ) -> Result<Self, KeyError> {
        let mut keys = vec![file_record(alg, &pem.current, KeyState::Current)?];
        if let Some(n) = &pem.next {
            keys.push(file_record(alg, n, KeyState::Next)?);
        }
        for r in &pem.retired {
            keys.push(file_record(alg, r, KeyState::Retired)?);
        }
        Ok(Self {
            alg,
            store,
            retire_after: Duration::ZERO,
            file_managed: true,
            keys: RwLock::new(keys),
        })
    }

    /// Keys from the store, generating a current and a next key on first
    /// start. `retire_after` is how long a retired key stays published.
    pub(crate) async fn from_store(
        alg: SigningAlg,
        store: Arc<dyn Store>,
        retire_after: Duration,
        now: u64,
    ) -> Result<Self, KeyError> {
        let km = Self {
            alg,
            store,
            retire_after,
            file_managed: false,
            keys: RwLock::new(Vec::new()),
        };
        let recs = km.stored().await?;
        if !recs
            .iter()
            .any(|r| r.state == KeyState::Current && r.alg == alg)
        {
            km.agree_on_first_keys(now).await?;
        }
        km.reload().await?;
        Ok(km)
    }

    /// Proposes a current and next key with put-if-absent, then adopts
    /// whatever pair won (ours or a replica's that started at the same
    /// time) and stores its records (the same bytes, whoever writes them).
    async fn agree_on_first_keys(&self, now: u64) -> Result<(), KeyError> {
        let alg = self.alg;
        let mine = vec![
            new_record(alg, KeyState::Current, now)?,
            new_record(alg, KeyState::Next, now)?,
        ];
        let bytes = serde_json::to_vec(&mine).map_err(invalid)?;
        self.store
            .put_if_absent(Namespace::Keys, GENESIS, &bytes, None)
            .await?;
        let agreed = match self.store.get(Namespace::Keys, GENESIS).await {
            Ok(Some(v)) => serde_json::from_slice::<Vec<KeyRecord>>(&v).map_err(invalid)?,
            Ok(None) => mine,
            // A genesis this replica cannot open (written before key
            // encryption was turned on, or under another encryption key)
            // is never used; ours replaces it.
            Err(StoreError::Corrupt(e)) => {
                tracing::warn!(error = %e, "replacing an unreadable first key pair");
                self.store
                    .put(Namespace::Keys, GENESIS, &bytes, None)
                    .await?;
                mine
            }
            Err(e) => return Err(e.into()),
        };
        // A genesis from another algorithm (configuration changed) does
        // not apply: start a new pair for this one.
        let agreed = if agreed.iter().all(|r| r.alg == alg) {
            agreed
        } else {
            vec![
                new_record(alg, KeyState::Current, now)?,
                new_record(alg, KeyState::Next, now)?,
            ]
        };
        for r in &agreed {
            self.put(r).await?;
        }
        // The version every replica polls names the agreed current key (it
        // also replaces a version record this replica could not open).
        if let Some(current) = agreed.iter().find(|r| r.state == KeyState::Current) {
            self.store
                .put(Namespace::Keys, VERSION, current.kid.as_bytes(), None)
                .await?;
        }
        Ok(())
    }

    /// Reloads when another replica rotated (the stored version differs
    /// from our current kid); returns whether it reloaded.
    pub(crate) async fn reload_if_rotated(&self) -> Result<bool, KeyError> {
        if self.file_managed {
            return Ok(false);
        }
        let Some(v) = self.store.get(Namespace::Keys, VERSION).await? else {
            return Ok(false);
        };
        if Some(String::from_utf8_lossy(&v).into_owned()) == self.current_kid() {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    async fn stored(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let mut out = Vec::new();
        for (kid, v) in self.store.list(Namespace::Keys).await? {
            if kid.starts_with("meta:") {
                continue;
            }
            match serde_json::from_slice::<KeyRecord>(&v) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(kid, error = %e, "skipping unreadable signing key"),
            }
        }
        Ok(out)
    }

    async fn put(&self, r: &KeyRecord) -> Result<(), KeyError> {
        let v = serde_json::to_vec(r).map_err(invalid)?;
        Ok(self.store.put(Namespace::Keys, &r.kid, &v, None).await?)
    }

    /// Re-reads the store (picks up another replica's rotation).
    pub(crate) async fn reload(&self) -> Result<(), KeyError> {
        if self.file_managed {
            return Ok(());
        }
        let mut loaded = Vec::new();
        for r in self.stored().await? {
            loaded.push(load(r)?);
        }
        // Newest current key first: it signs.
        loaded.sort_by(|a, b| {
            let rank = |k: &LoadedKey| (k.rec.state == KeyState::Current, k.rec.activated_at);
            rank(b)
                .cmp(&rank(a))
                .then_with(|| a.rec.kid.cmp(&b.rec.kid))
        });
        if !loaded.iter().any(|k| k.rec.state == KeyState::Current) {
            return Err(invalid("no current signing key in the store"));
        }
        if let Ok(mut k) = self.keys.write() {
            *k = loaded;
        }
        Ok(())
    }

    /// Promotes `next` to `current`, retires the current key, generates a
    /// new `next`, and drops retired keys whose tokens have all expired.
    /// Returns the new current `kid`.
    pub(crate) async fn rotate(&self, now: u64) -> Result<String, KeyError> {
        if self.file_managed {
            return Err(KeyError::FileManaged);
        }
        let mut promoted = None;
        for mut r in self.stored().await? {
            match r.state {
                KeyState::Current => {
                    r.state = KeyState::Retired;
                    r.retired_at = Some(now);
                    self.put(&r).await?;
                }
                KeyState::Next if r.alg == self.alg && promoted.is_none() => {
                    r.state = KeyState::Current;
                    r.activated_at = Some(now);
                    promoted = Some(r);
                }
                KeyState::Next => {}
                KeyState::Retired => {
                    let gone = r
                        .retired_at
                        .is_some_and(|t| t + self.retire_after.as_secs() < now);
                    if gone {
                        self.store.delete(Namespace::Keys, &r.kid).await?;
                    }
                }
            }
        }
        let current = match promoted {
            Some(r) => r,
            None => new_record(self.alg, KeyState::Current, now)?,
        };
        self.put(&current).await?;
        self.put(&new_record(self.alg, KeyState::Next, now)?)
            .await?;
        self.store
            .put(Namespace::Keys, VERSION, current.kid.as_bytes(), None)
            .await?;
        self.reload().await?;
        tracing::info!(kid = %current.kid, "signing key rotated");
        Ok(current.kid)
    }

    /// When the current key started signing (for automatic rotation).
    pub(crate) fn current_since(&self) -> Option<u64> {
        let keys = self.keys.read().ok()?;
        keys.first().and_then(|k| k.rec.activated_at)
    }

    pub fn current_kid(&self) -> Option<String> {
        let keys = self.keys.read().ok()?;
        keys.first().map(|k| k.rec.kid.clone())
    }

    pub(crate) fn alg(&self) -> SigningAlg {
        self.alg
    }

    pub(crate) fn is_file_managed(&self) -> bool {
        self.file_managed
    }

    /// Signs access-token claims (header `typ: at+jwt`, `kid`).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let keys = self.keys.read().map_err(|_| invalid("key lock poisoned"))?;
        let k = keys.first().ok_or_else(|| invalid("no signing key"))?;
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = serde_json::to_vec(claims).map_err(invalid)?;
        let mut jws = String::with_capacity(k.header.len() + payload.len() * 4 / 3 + 360);
        jws.push_str(&k.header);
        jws.push('.');
        b64.encode_string(payload, &mut jws);
        let signature = k.signer.sign(jws.as_bytes())?;
        jws.push('.');
        b64.encode_string(signature, &mut jws);
        Ok(jws)
    }

    /// The public JWKS (current, next and retired keys).
    pub(crate) fn jwks(&self) -> JwkSet {
        let keys = self
            .keys
            .read()
            .map(|k| k.iter().map(|k| k.jwk.clone()).collect());
        JwkSet {
            keys: keys.unwrap_or_default(),
        }
    }

    /// Verifies one of our own access tokens: signature, `typ`, `iss`.
    /// Expiry is the caller's business (it has the clock).
    pub(crate) fn decode(&self, unverified: &str, issuer: &str) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(unverified).ok()?;
        if header.typ.as_deref() != Some(AT_JWT_TYP) {
            return None;
        }
        let kid = header.kid?;
        let keys = self.keys.read().ok()?;
        let k = keys.iter().find(|k| k.rec.kid == kid)?;
        let mut v = Validation::new(k.rec.alg.jwt());
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(unverified, &k.dec, &v)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests;
