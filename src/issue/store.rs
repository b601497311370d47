//! Storage for the issuer, behind one small key-value trait so that every
//! backend (in-memory, embedded on-disk, Redis, Redis Cluster) is the same few
//! operations. Typed records are serialized as JSON by the core.
//!
//! Keys are `(Namespace, key)`. Keys that come from secrets (codes, refresh
//! tokens) are stored as SHA-256 hashes, never raw.

use async_trait::async_trait;
use std::time::Duration;

/// A family of records with its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// Registered clients, keyed by `client_id`. Listable.
    Clients,
    /// Authorization codes (hashed), short TTL, taken once.
    Codes,
    /// Refresh tokens (hashed), TTL = refresh lifetime.
    Refresh,
    /// Refresh-token families (rotation chains), keyed by family id.
    Families,
    /// Tombstones of rotated refresh tokens (hashed), for reuse detection.
    RotatedRefresh,
    /// Pending authorization requests while the user logs in upstream.
    Pending,
    /// Remembered consents, keyed by `sub` + `client_id`.
    Consents,
    /// Browser login sessions.
    Sessions,
    /// Signing keys (current, next, retired). Listable.
    Keys,
    /// Issued access tokens' metadata by `jti` (for introspection/revocation).
    AccessTokens,
    /// Cached Client ID Metadata Documents, keyed by URL.
    ClientMetadataCache,
    /// Rate-limit counters.
    RateLimits,
    /// Every revocation still in force, keyed by
    /// [`Revocation::record_key`](crate::domain::revocation::Revocation::record_key):
    /// the issuer's own copy, republished when the revocation store lost
    /// data. Listable.
    Revocations,
}

/// Errors of a storage backend. The detail is for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

/// The issuer's storage. Every write with a TTL must expire on its own.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes `value`; `ttl = None` keeps it until deleted.
    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Writes only if the key is absent; returns whether it wrote.
    async fn put_if_absent(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// Atomically reads and deletes (one-time codes, refresh rotation).
    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    async fn delete(&self, ns: Namespace, key: &str) -> Result<bool, StoreError>;

    /// All live `(key, value)` pairs of a listable namespace.
    async fn list(&self, ns: Namespace) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Increments a counter that expires `window` after its first increment;
    /// returns the new count.
    async fn incr(&self, ns: Namespace, key: &str, window: Duration) -> Result<u64, StoreError>;
}
