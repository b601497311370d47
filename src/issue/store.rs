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
    /// Access-token records of older versions (by `jti`), no longer written
    /// or read: introspection reads the revocation records. Kept so that
    /// existing entries still expire and are swept.
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

    /// The current value of a counter kept by [`Store::incr`], without
    /// changing it (0 if absent or expired). The default reads the value
    /// as the 8-byte big-endian count the in-process stores keep.
    async fn count(&self, ns: Namespace, key: &str) -> Result<u64, StoreError> {
        match self.get(ns, key).await? {
            Some(v) => counter_from_be(&v),
            None => Ok(0),
        }
    }

    /// Runs `ops` in order, each as atomic as its single-operation method,
    /// and returns one result per op. A backend answers the whole batch in
    /// one round trip where it can (one Redis pipeline, one embedded write
    /// transaction and so one fsync), which is what the token endpoint
    /// leans on. Later ops see the effects of earlier ones. The batch as a
    /// whole is not atomic: after an error, some earlier ops may have been
    /// applied (as with the same calls made one by one). Defaults to
    /// [`batch_one_by_one`].
    async fn batch(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, StoreError> {
        batch_one_by_one(self, ops).await
    }
}

/// A counter stored as 8 big-endian bytes.
pub fn counter_from_be(v: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("a counter is not a u64".into()))
}

/// One step of a [`Store::batch`]: the same operations as the trait's
/// methods.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    Get {
        ns: Namespace,
        key: &'a str,
    },
    Put {
        ns: Namespace,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    },
    PutIfAbsent {
        ns: Namespace,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    },
    Take {
        ns: Namespace,
        key: &'a str,
    },
    Delete {
        ns: Namespace,
        key: &'a str,
    },
    Incr {
        ns: Namespace,
        key: &'a str,
        window: Duration,
    },
    /// Reads a counter ([`Store::count`]).
    Count {
        ns: Namespace,
        key: &'a str,
    },
}

/// What one [`Op`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `Get`, `Take`: the value, if live.
    Value(Option<Vec<u8>>),
    /// `Put` (always true), `PutIfAbsent` (whether it wrote), `Delete`
    /// (whether a live value was there).
    Written(bool),
    /// `Incr`: the new count; `Count`: the current one.
    Count(u64),
}

/// [`Store::batch`] as one call per op, in order: the default, and the
/// fallback of backends that cannot batch a given set of ops.
pub async fn batch_one_by_one<S: Store + ?Sized>(
    s: &S,
    ops: &[Op<'_>],
) -> Result<Vec<OpResult>, StoreError> {
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        out.push(match *op {
            Op::Get { ns, key } => OpResult::Value(s.get(ns, key).await?),
            Op::Put {
                ns,
                key,
                value,
                ttl,
            } => {
                s.put(ns, key, value, ttl).await?;
                OpResult::Written(true)
            }
            Op::PutIfAbsent {
                ns,
                key,
                value,
                ttl,
            } => OpResult::Written(s.put_if_absent(ns, key, value, ttl).await?),
            Op::Take { ns, key } => OpResult::Value(s.take(ns, key).await?),
            Op::Delete { ns, key } => OpResult::Written(s.delete(ns, key).await?),
            Op::Incr { ns, key, window } => OpResult::Count(s.incr(ns, key, window).await?),
            Op::Count { ns, key } => OpResult::Count(s.count(ns, key).await?),
        });
    }
    Ok(out)
}

// === impl Op ===

impl Op<'_> {
    /// The namespace the op touches.
    pub fn namespace(&self) -> Namespace {
        match *self {
            Op::Get { ns, .. }
            | Op::Put { ns, .. }
            | Op::PutIfAbsent { ns, .. }
            | Op::Take { ns, .. }
            | Op::Delete { ns, .. }
            | Op::Incr { ns, .. }
            | Op::Count { ns, .. } => ns,
        }
    }

    /// Whether the op only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. } | Op::Count { .. })
    }
}

// === impl OpResult ===

impl OpResult {
    /// The value of a `Get` or `Take` (`None` for other results).
    pub fn into_value(self) -> Option<Vec<u8>> {
        match self {
            OpResult::Value(v) => v,
            _ => None,
        }
    }

    /// The count of an `Incr` (0 for other results).
    pub fn count(&self) -> u64 {
        match self {
            OpResult::Count(n) => *n,
            _ => 0,
        }
    }

    /// Whether a write op wrote (false for other results).
    pub fn written(&self) -> bool {
        matches!(self, OpResult::Written(true))
    }
}
