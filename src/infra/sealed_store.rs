//! Encryption at rest of the signing keys: a [`Store`] wrapper that seals
//! every value of [`Namespace::Keys`] with AES-256-GCM (aws-lc-rs) under a
//! key the operator keeps outside the store (a Kubernetes Secret, a file),
//! so a copy of the store (a Redis dump, a backup, a replica) holds no usable
//! private key. The store key and namespace are the associated data: a
//! sealed record moved to another key does not open. Every other namespace
//! passes through (it holds hashes of secrets, never the secrets).
//!
//! A value that is not sealed, or does not open, reads as absent from
//! `list` (logged) and as corrupt from `get`/`take`: a record written into
//! the store by someone without the key is never used to sign. Turning
//! sealing on therefore replaces the stored keys with new, sealed ones.

use crate::infra::embedded_store::namespace_name;
use crate::issue::store::{batch_one_by_one, Namespace, Op, OpResult, Store, StoreError};
use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use std::sync::Arc;
use std::time::Duration;

/// Marks a sealed value (format version 1): magic, nonce, ciphertext+tag.
const MAGIC: &[u8] = b"mcpgate-sealed-1:";

/// A 32-byte AES-256 key, from base64 (standard or URL-safe, padded or not)
/// or 32 raw bytes.
pub(crate) fn parse_key(raw: &[u8]) -> Result<[u8; 32], String> {
    let text = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let decoded = engines.iter().find_map(|e| e.decode(text).ok());
    let bytes = match decoded {
        Some(d) if d.len() == 32 => d,
        _ if raw.len() == 32 => raw.to_vec(),
        _ => {
            return Err(
                "the signing-key encryption key must be 32 bytes, base64-encoded \
                 (`openssl rand -base64 32`)"
                    .into(),
            )
        }
    };
    let mut k = [0u8; 32];
    k.copy_from_slice(&bytes);
    Ok(k)
}

/// Seals [`Namespace::Keys`] of the wrapped store.
pub(crate) struct SealedKeys {
    inner: Arc<dyn Store>,
    key: LessSafeKey,
}

impl SealedKeys {
    pub(crate) fn new(inner: Arc<dyn Store>, key: &[u8; 32]) -> Result<Self, StoreError> {
        let k = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| StoreError::Unavailable("bad encryption key".into()))?;
        Ok(Self {
            inner,
            key: LessSafeKey::new(k),
        })
    }

    fn aad(ns: Namespace, key: &str) -> Vec<u8> {
        format!("{}\0{key}", namespace_name(ns)).into_bytes()
    }

    fn seal(&self, ns: Namespace, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| StoreError::Unavailable("rng failure".into()))?;
        let mut buf = value.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(ns, key)),
                &mut buf,
            )
            .map_err(|_| StoreError::Unavailable("sealing failed".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + buf.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn open(&self, ns: Namespace, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt(format!("signing key {key}: {why}"));
        let rest = value
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("not encrypted (written without the encryption key)"))?;
        if rest.len() < NONCE_LEN {
            return Err(corrupt("truncated"));
        }
        let (n, ct) = rest.split_at(NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(n);
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(ns, key)),
                &mut buf,
            )
            .map_err(|_| corrupt("does not decrypt (another encryption key?)"))?;
        Ok(plain.to_vec())
    }
}

#[async_trait]
impl Store for SealedKeys {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.inner.get(ns, key).await? {
            Some(v) if ns == Namespace::Keys => self.open(ns, key, &v).map(Some),
            other => Ok(other),
        }
    }

    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if ns == Namespace::Keys {
            let sealed = self.seal(ns, key, value)?;
            return self.inner.put(ns, key, &sealed, ttl).await;
        }
        self.inner.put(ns, key, value, ttl).await
    }

    async fn put_if_absent(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        if ns == Namespace::Keys {
            let sealed = self.seal(ns, key, value)?;
            return self.inner.put_if_absent(ns, key, &sealed, ttl).await;
        }
        self.inner.put_if_absent(ns, key, value, ttl).await
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.inner.take(ns, key).await? {
            Some(v) if ns == Namespace::Keys => self.open(ns, key, &v).map(Some),
            other => Ok(other),
        }
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(ns, key).await
    }

    async fn list(&self, ns: Namespace) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let all = self.inner.list(ns).await?;
        if ns != Namespace::Keys {
            return Ok(all);
        }
        let mut out = Vec::with_capacity(all.len());
        for (k, v) in all {
            match self.open(ns, &k, &v) {
                Ok(p) => out.push((k, p)),
                Err(e) => {
                    tracing::error!(error = %e, "ignoring a signing key that is not sealed with the configured key")
                }
            }
        }
        Ok(out)
    }

    async fn incr(&self, ns: Namespace, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.inner.incr(ns, key, window).await
    }

    async fn count(&self, ns: Namespace, key: &str) -> Result<u64, StoreError> {
        self.inner.count(ns, key).await
    }

    /// Passed through whole unless it touches the signing keys (then one
    /// by one, through the sealing above).
    async fn batch(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, StoreError> {
        if ops.iter().any(|op| op.namespace() == Namespace::Keys) {
            return batch_one_by_one(self, ops).await;
        }
        self.inner.batch(ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::memory_store::MemoryStore;

    #[tokio::test]
    async fn seals_keys_only_and_refuses_foreign_records() {
        let raw: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let s = SealedKeys::new(raw.clone(), &[7u8; 32]).unwrap();
        s.put(Namespace::Keys, "kid1", b"PRIVATE PEM", None)
            .await
            .unwrap();
        s.put(Namespace::Clients, "c", b"plain", None)
            .await
            .unwrap();
        let at_rest = raw.get(Namespace::Keys, "kid1").await.unwrap().unwrap();
        assert!(at_rest.starts_with(MAGIC));
        assert!(!at_rest.windows(7).any(|w| w == b"PRIVATE"));
        assert_eq!(
            raw.get(Namespace::Clients, "c").await.unwrap().unwrap(),
            b"plain"
        );
        assert_eq!(
            s.get(Namespace::Keys, "kid1").await.unwrap().unwrap(),
            b"PRIVATE PEM"
        );
        // Written without the key, moved to another kid, or another key.
        raw.put(Namespace::Keys, "planted", b"ATTACKER PEM", None)
            .await
            .unwrap();
        raw.put(Namespace::Keys, "moved", &at_rest, None)
            .await
            .unwrap();
        assert!(s.get(Namespace::Keys, "planted").await.is_err());
        assert!(s.get(Namespace::Keys, "moved").await.is_err());
        let other = SealedKeys::new(raw.clone(), &[8u8; 32]).unwrap();
        assert!(other.get(Namespace::Keys, "kid1").await.is_err());
        let listed = s.list(Namespace::Keys).await.unwrap();
        assert_eq!(listed, vec![("kid1".to_owned(), b"PRIVATE PEM".to_vec())]);
    }

    #[test]
    fn key_formats() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(parse_key(format!("{b64}\n").as_bytes()).unwrap(), [1u8; 32]);
        assert_eq!(parse_key(&[2u8; 32]).unwrap(), [2u8; 32]);
        assert!(parse_key(b"short").is_err());
        let b64_16 = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(parse_key(b64_16.as_bytes()).is_err());
    }
}
