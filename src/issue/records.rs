//! What the issuer keeps in the [`Store`]: typed records serialized as JSON,
//! keys derived from secrets by SHA-256 (a leaked store holds no usable code,
//! refresh token, client secret or registration token).

use crate::issue::client_metadata::ClientMetadata;
use crate::issue::error::OAuthError;
use crate::issue::store::{Namespace, Store, StoreError};
use crate::issue::upstream::UpstreamUser;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a client comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// RFC 7591 dynamic registration.
    Dynamic,
    /// A Client ID Metadata Document (the `client_id` is its URL).
    MetadataDocument,
}

/// A registered (or metadata-document) client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub source: ClientSource,
    /// SHA-256 of the client secret; `None` for public clients.
    pub secret_hash: Option<String>,
    /// SHA-256 of the RFC 7592 registration access token.
    pub registration_token_hash: Option<String>,
    pub metadata: ClientMetadata,
    pub client_id_issued_at: u64,
    /// 0 = never.
    pub client_secret_expires_at: u64,
    /// When the registration itself lapses (client lifetime); `None` = never.
    pub expires_at: Option<u64>,
}

/// The identity and authorization a token is issued for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub client_id: String,
    pub user: UpstreamUser,
    /// Space-separated granted scopes.
    pub scope: String,
    /// The RFC 8707 resource (the token audience).
    pub resource: String,
    pub auth_time: u64,
}

/// An authorization code (keyed by its hash in [`Namespace::Codes`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRecord {
    pub grant: Grant,
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent on the authorization request (then it
    /// is required on the token request, RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    pub code_challenge: String,
}

/// Left behind when a code is redeemed, to revoke its tokens on replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedeemedCode {
    pub family_id: String,
}

/// A live refresh token (keyed by its hash in [`Namespace::Refresh`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub family_id: String,
    pub grant: Grant,
    pub issued_at: u64,
}

/// A rotated refresh token (keyed by its hash in
/// [`Namespace::RotatedRefresh`]): presenting it again is reuse, unless it
/// comes within the refresh grace window after `rotated_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotatedRefresh {
    pub family_id: String,
    /// When it was rotated (unix seconds); 0 in records written before the
    /// grace window existed (never in grace).
    #[serde(default)]
    pub rotated_at: u64,
    /// The rotated token's grant and issue time, to answer a retry within
    /// the grace window; `None` in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    #[serde(default)]
    pub issued_at: u64,
}

/// One grant's chain of tokens: written once, when the code is redeemed,
/// and again only when the family is revoked. Its size does not grow with
/// the chain: the access tokens of a family are found through its
/// generation counters instead (see [`derived_jti`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub client_id: String,
    pub sub: String,
    pub created_at: u64,
    pub revoked: bool,
    /// Hash of the live refresh token: kept up to date by older issuers
    /// only (revocation still deletes it). The family's tombstone is what
    /// stops its refresh tokens now.
    #[serde(default)]
    pub current_refresh: Option<String>,
    /// Access tokens issued in this family, `(jti, exp)`: filled in by
    /// older issuers only, and still revoked with the family. Always
    /// written (empty) so that an older issuer can read a new record.
    #[serde(default)]
    pub access: Vec<(String, u64)>,
    /// The grant every refresh token of the family carries (rotation keeps
    /// it unchanged), to answer a retry within the grace window. `None` in
    /// records of older issuers: their families' rotations still leave a
    /// grace record with the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
}

/// The generation bucket of time `now` (unix seconds) for buckets of
/// `width` seconds. See [`derived_jti`].
pub fn generation_bucket(now: u64, width: u64) -> u64 {
    now / width.max(1)
}

/// The key (in [`Namespace::Families`]) of a family's generation counter
/// for one bucket.
pub fn generation_key(family_id: &str, bucket: u64) -> String {
    format!("gen:{family_id}:{bucket}")
}

/// The `jti` of the `n`th access token (from 1) minted in a family during
/// generation bucket `bucket`.
///
/// Invariant that family revocation rests on: every access token minted in
/// a family gets its `jti` from this function, with `n` taken from an
/// atomic increment of [`generation_key`] for the bucket of its `iat`
/// (counters expire on their own, a few buckets later). A bucket is the
/// longest an access token is accepted for (lifetime plus clock skew), so a
/// token minted in bucket `b` is expired by the start of bucket `b + 2`;
/// revoking the family reads the counters of the buckets around now and
/// revokes every `jti` up to each count, which covers every unexpired
/// token the family has, at a cost bounded by the tokens minted in those
/// buckets and not by the chain's length. The family id is 128 random bits
/// that never leave the issuer, so these ids are as unguessable as random
/// ones; two families never share one.
pub fn derived_jti(family_id: &str, bucket: u64, n: u64) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"mcpgate-jti\0");
    ctx.update(family_id.as_bytes());
    ctx.update(&bucket.to_be_bytes());
    ctx.update(&n.to_be_bytes());
    let d = ctx.finish();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// An authorization request waiting for login and consent (keyed by its
/// random id in [`Namespace::Pending`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    /// SHA-256 of the browser's CSRF cookie that started the request.
    pub csrf_hash: String,
    /// Set once the user logged in.
    pub user: Option<UpstreamUser>,
    pub auth_time: Option<u64>,
    /// The user approved on mcpgate's consent page before being sent to an
    /// upstream provider (MCP "confused deputy" rule).
    #[serde(default)]
    pub consented: bool,
    /// The upstream provider chosen, waiting for that consent.
    #[serde(default)]
    pub upstream: Option<String>,
}

/// An upstream login in flight (keyed by `up:<state>` in
/// [`Namespace::Pending`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamPending {
    pub request_id: String,
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: String,
}

/// A browser session (keyed by the hash of its cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: UpstreamUser,
    pub auth_time: u64,
}

/// A remembered consent (keyed by `sub` + `client_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub scope: String,
    pub resources: Vec<String>,
    /// Fingerprint of the client's redirect URIs, scope and name when the
    /// user consented: a change (RFC 7592 PUT, a new metadata document)
    /// asks again. Empty in older records, which therefore ask again too.
    #[serde(default)]
    pub client: String,
}

/// A "tokens issued at or before" watermark for a subject or client (admin
/// revocation, client deletion), checked by refresh and introspection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watermark {
    pub before: u64,
}

/// SHA-256, base64url: the store key of a secret.
pub fn hash_secret(secret: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// A fresh random token: `bytes` random bytes, base64url.
pub fn random_token(bytes: usize) -> Result<String, OAuthError> {
    crate::domain::secret::random_b64(bytes).map_err(|_| OAuthError::server_error("rng failure"))
}

/// A JSON record of `ns` as read (by a single call or a batch), if any.
pub(crate) fn decode_json<T: DeserializeOwned>(
    ns: Namespace,
    v: Option<Vec<u8>>,
) -> Result<Option<T>, StoreError> {
    match v {
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("{ns:?}: {e}"))),
        None => Ok(None),
    }
}

/// Reads a JSON record.
pub async fn get_json<T: DeserializeOwned>(
    store: &dyn Store,
    ns: Namespace,
    key: &str,
) -> Result<Option<T>, StoreError> {
    decode_json(ns, store.get(ns, key).await?)
}

/// Atomically reads and deletes a JSON record.
pub async fn take_json<T: DeserializeOwned>(
    store: &dyn Store,
    ns: Namespace,
    key: &str,
) -> Result<Option<T>, StoreError> {
    decode_json(ns, store.take(ns, key).await?)
}

/// Writes a JSON record.
pub async fn put_json<T: Serialize>(
    store: &dyn Store,
    ns: Namespace,
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.put(ns, key, &bytes, ttl).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_tokens() {
        assert_eq!(hash_secret("a"), hash_secret("a"));
        assert_ne!(hash_secret("a"), hash_secret("b"));
        let t = random_token(32).unwrap();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token(32).unwrap());
    }

    #[test]
    fn derived_jtis_are_distinct_and_stable() {
        let a = derived_jti("fam", 7, 1);
        assert_eq!(a, derived_jti("fam", 7, 1));
        assert_eq!(a.len(), 22);
        assert_ne!(a, derived_jti("fam", 7, 2));
        assert_ne!(a, derived_jti("fam", 8, 1));
        assert_ne!(a, derived_jti("fan", 7, 1));
        assert_eq!(generation_bucket(3899, 3900), 0);
        assert_eq!(generation_bucket(3900, 3900), 1);
        assert_eq!(generation_key("f", 3), "gen:f:3");
    }

    #[test]
    fn family_records_of_older_issuers_still_read() {
        let old = r#"{"client_id":"c","sub":"s","created_at":1,"revoked":false,
            "current_refresh":"h","access":[["j1",10],["j2",20]]}"#;
        let f: FamilyRecord = serde_json::from_str(old).unwrap();
        assert_eq!(f.access.len(), 2);
        let bare = r#"{"client_id":"c","sub":"s","created_at":1,"revoked":true}"#;
        let f: FamilyRecord = serde_json::from_str(bare).unwrap();
        assert!(f.access.is_empty() && f.current_refresh.is_none() && f.revoked);
    }
}
