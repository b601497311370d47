//! [`MemoryStore`]: the issuer's [`Store`] in process memory, with TTLs
//! (monotonic time). For tests and throwaway dev runs: nothing survives a
//! restart.

use crate::issue::store::{Namespace, Store, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Entry = (Vec<u8>, Option<Instant>);

/// An in-memory store. Expired entries are dropped lazily and on writes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<(Namespace, String), Entry>>,
}

fn live(e: &Entry, now: Instant) -> bool {
    e.1.is_none_or(|t| t > now)
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("memory store lock poisoned".into())
}

// === impl MemoryStore ===

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<(Namespace, String), Entry>, Instant) -> T,
    ) -> Result<T, StoreError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        if m.len() > 10_000 {
            m.retain(|_, e| live(e, now));
        }
        Ok(f(&mut m, now))
    }

    /// Number of live entries (for tests).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.map
            .lock()
            .map(|m| m.values().filter(|e| live(e, now)).count())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m, now| {
            m.get(&(ns, key.to_owned()))
                .filter(|e| live(e, now))
                .map(|e| e.0.clone())
        })
    }

    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with(|m, now| {
            m.insert((ns, key.to_owned()), (value.to_vec(), ttl.map(|t| now + t)));
        })
    }

    async fn put_if_absent(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.with(|m, now| {
            let k = (ns, key.to_owned());
            if m.get(&k).is_some_and(|e| live(e, now)) {
                return false;
            }
            m.insert(k, (value.to_vec(), ttl.map(|t| now + t)));
            true
        })
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m, now| {
            m.remove(&(ns, key.to_owned()))
                .filter(|e| live(e, now))
                .map(|e| e.0)
        })
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<bool, StoreError> {
        self.with(|m, now| {
            m.remove(&(ns, key.to_owned()))
                .is_some_and(|e| live(&e, now))
        })
    }

    async fn list(&self, ns: Namespace) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|m, now| {
            let mut v: Vec<_> = m
                .iter()
                .filter(|((n, _), e)| *n == ns && live(e, now))
                .map(|((_, k), e)| (k.clone(), e.0.clone()))
                .collect();
            v.sort();
            v
        })
    }

    async fn incr(&self, ns: Namespace, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.with(|m, now| {
            let k = (ns, key.to_owned());
            let current = m
                .get(&k)
                .filter(|e| live(e, now))
                .and_then(|e| <[u8; 8]>::try_from(e.0.as_slice()).ok())
                .map(u64::from_be_bytes);
            let (n, exp) = match current {
                Some(n) => (n + 1, m.get(&k).and_then(|e| e.1)),
                None => (1, Some(now + window)),
            };
            m.insert(k, (n.to_be_bytes().to_vec(), exp));
            n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ttl_take_and_incr() {
        let s = MemoryStore::new();
        s.put(Namespace::Codes, "a", b"1", Some(Duration::from_millis(30)))
            .await
            .unwrap();
        assert!(!s
            .put_if_absent(Namespace::Codes, "a", b"2", None)
            .await
            .unwrap());
        assert_eq!(
            s.take(Namespace::Codes, "a").await.unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(s.take(Namespace::Codes, "a").await.unwrap(), None);
        s.put(Namespace::Codes, "b", b"1", Some(Duration::from_millis(10)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(s.get(Namespace::Codes, "b").await.unwrap(), None);
        let w = Duration::from_secs(60);
        assert_eq!(s.incr(Namespace::RateLimits, "ip", w).await.unwrap(), 1);
        assert_eq!(s.incr(Namespace::RateLimits, "ip", w).await.unwrap(), 2);
        s.put(Namespace::Clients, "c", b"x", None).await.unwrap();
        assert_eq!(s.list(Namespace::Clients).await.unwrap().len(), 1);
        assert!(s.delete(Namespace::Clients, "c").await.unwrap());
    }
}
