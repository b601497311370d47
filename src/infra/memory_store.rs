//! [`MemoryStore`]: the issuer's [`Store`] in process memory, with TTLs
//! measured on the injected [`Clock`]. For tests and throwaway dev runs:
//! nothing survives a restart.
//!
//! Expired entries are found through an index ordered by expiry, so each
//! operation drops only what has expired since the last one (amortised
//! O(log n) per entry ever written) instead of scanning the whole map.
//! The map and the index share each key (one allocation per entry): a
//! refresh leaves a tombstone for the refresh lifetime, so the number of
//! entries grows with the refreshes served.

use crate::domain::clock::{unix_millis, Clock, SystemClock};
use crate::issue::store::{Namespace, Store, StoreError};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A value and when it expires (unix milliseconds; `None` = never).
#[derive(Debug)]
struct Entry {
    value: Box<[u8]>,
    expires: Option<u64>,
}

/// The maps behind the lock. Invariant: `expiry` holds exactly one
/// `(expires, ns, key)` for every entry of `map` that has an expiry.
#[derive(Debug, Default)]
struct Inner {
    /// One map per namespace, so `list` reads only its namespace and
    /// lookups need no owned key.
    map: HashMap<Namespace, HashMap<Arc<str>, Entry>>,
    expiry: BTreeSet<(u64, Namespace, Arc<str>)>,
}

/// An in-memory store.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("memory store lock poisoned".into())
}

fn deadline(now: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|t| now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)))
}

// === impl Inner ===

impl Inner {
    /// Drops every entry whose expiry is at or before `now`.
    fn purge(&mut self, now: u64) {
        while let Some(first) = self.expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, ns, key)) = self.expiry.pop_first() {
                if let Some(m) = self.map.get_mut(&ns) {
                    m.remove(&key);
                }
            }
        }
    }

    fn get(&self, ns: Namespace, key: &str) -> Option<&Entry> {
        self.map.get(&ns).and_then(|m| m.get(key))
    }

    /// Removes an entry and its expiry; returns it with its key.
    fn remove_entry(&mut self, ns: Namespace, key: &str) -> Option<(Arc<str>, Entry)> {
        let (k, e) = self.map.get_mut(&ns)?.remove_entry(key)?;
        let Some(t) = e.expires else {
            return Some((k, e));
        };
        let indexed = (t, ns, k);
        self.expiry.remove(&indexed);
        Some((indexed.2, e))
    }

    fn remove(&mut self, ns: Namespace, key: &str) -> Option<Entry> {
        self.remove_entry(ns, key).map(|(_, e)| e)
    }

    fn insert(&mut self, ns: Namespace, key: &str, value: &[u8], expires: Option<u64>) {
        // An overwrite reuses the key; its old expiry goes.
        let key = match self.remove_entry(ns, key) {
            Some((k, _)) => k,
            None => Arc::from(key),
        };
        if let Some(t) = expires {
            self.expiry.insert((t, ns, key.clone()));
        }
        let value = Box::from(value);
        self.map
            .entry(ns)
            .or_default()
            .insert(key, Entry { value, expires });
    }

    fn len(&self) -> usize {
        self.map.values().map(HashMap::len).sum()
    }
}

// === impl MemoryStore ===

impl MemoryStore {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A store whose TTLs run on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            clock,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner, u64) -> T) -> Result<T, StoreError> {
        let mut m = self.inner.lock().map_err(|_| poisoned())?;
        let now = unix_millis(self.clock.now());
        m.purge(now);
        Ok(f(&mut m, now))
    }

    /// Number of live entries (for tests).
    pub fn len(&self) -> usize {
        self.with(|m, _| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m, _| m.get(ns, key).map(|e| e.value.to_vec()))
    }

    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with(|m, now| m.insert(ns, key, value, deadline(now, ttl)))
    }

    async fn put_if_absent(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.with(|m, now| {
            if m.get(ns, key).is_some() {
                return false;
            }
            m.insert(ns, key, value, deadline(now, ttl));
            true
        })
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m, _| m.remove(ns, key).map(|e| e.value.into_vec()))
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<bool, StoreError> {
        self.with(|m, _| m.remove(ns, key).is_some())
    }

    async fn list(&self, ns: Namespace) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|m, _| {
            let mut v: Vec<_> = m
                .map
                .get(&ns)
                .into_iter()
                .flatten()
                .map(|(k, e)| (k.to_string(), e.value.to_vec()))
                .collect();
            v.sort();
            v
        })
    }

    async fn incr(&self, ns: Namespace, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.with(|m, now| {
            let current = m.get(ns, key).and_then(|e| {
                let n = <[u8; 8]>::try_from(&e.value[..]).ok()?;
                Some((u64::from_be_bytes(n), e.expires))
            });
            let (n, exp) = match current {
                Some((n, exp)) => (n.saturating_add(1), exp),
                None => (1, deadline(now, Some(window))),
            };
            m.insert(ns, key, &n.to_be_bytes(), exp);
            n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::FixedClock;

    fn store() -> (MemoryStore, Arc<FixedClock>) {
        let clock = Arc::new(FixedClock::at_unix(1_000_000));
        (MemoryStore::with_clock(clock.clone()), clock)
    }

    fn index_consistent(s: &MemoryStore) {
        let m = s.inner.lock().unwrap();
        let with_ttl: usize = m
            .map
            .values()
            .flat_map(HashMap::values)
            .filter(|e| e.expires.is_some())
            .count();
        assert_eq!(m.expiry.len(), with_ttl, "expiry index out of step");
        for (t, ns, k) in &m.expiry {
            assert_eq!(m.get(*ns, k).and_then(|e| e.expires), Some(*t));
        }
    }

    #[tokio::test]
    async fn ttl_take_and_incr_on_the_clock() {
        let (s, clock) = store();
        let ms = Duration::from_millis;
        s.put(Namespace::Codes, "a", b"1", Some(ms(30)))
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
        s.put(Namespace::Codes, "b", b"1", Some(ms(10)))
            .await
            .unwrap();
        clock.advance(ms(9));
        assert!(s.get(Namespace::Codes, "b").await.unwrap().is_some());
        clock.advance(ms(1));
        // Expired exactly at its deadline, like Redis.
        assert_eq!(s.get(Namespace::Codes, "b").await.unwrap(), None);
        let w = Duration::from_secs(60);
        assert_eq!(s.incr(Namespace::RateLimits, "ip", w).await.unwrap(), 1);
        clock.advance(Duration::from_secs(59));
        // Increments keep the first one's window.
        assert_eq!(s.incr(Namespace::RateLimits, "ip", w).await.unwrap(), 2);
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.incr(Namespace::RateLimits, "ip", w).await.unwrap(), 1);
        s.put(Namespace::Clients, "c", b"x", None).await.unwrap();
        assert_eq!(s.list(Namespace::Clients).await.unwrap().len(), 1);
        assert!(s.delete(Namespace::Clients, "c").await.unwrap());
        assert!(!s.delete(Namespace::Clients, "c").await.unwrap());
        index_consistent(&s);
    }

    #[tokio::test]
    async fn overwrites_move_the_expiry() {
        let (s, clock) = store();
        let secs = Duration::from_secs;
        s.put(Namespace::Sessions, "k", b"1", Some(secs(10)))
            .await
            .unwrap();
        // A longer TTL replaces the shorter one, and no TTL clears it.
        s.put(Namespace::Sessions, "k", b"2", Some(secs(100)))
            .await
            .unwrap();
        clock.advance(secs(50));
        assert_eq!(
            s.get(Namespace::Sessions, "k").await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        s.put(Namespace::Sessions, "k", b"3", None).await.unwrap();
        clock.advance(secs(1000));
        assert_eq!(
            s.get(Namespace::Sessions, "k").await.unwrap().as_deref(),
            Some(&b"3"[..])
        );
        // An expired key is absent for put_if_absent.
        s.put(Namespace::Pending, "p", b"x", Some(secs(1)))
            .await
            .unwrap();
        clock.advance(secs(1));
        assert!(s
            .put_if_absent(Namespace::Pending, "p", b"y", None)
            .await
            .unwrap());
        index_consistent(&s);
    }

    /// Past 10,000 entries an operation still touches only what expired
    /// (the old store scanned the whole map on each one): expired entries
    /// leave, live ones stay, and the index stays in step.
    #[tokio::test]
    async fn many_entries_expire_through_the_index() {
        let (s, clock) = store();
        for i in 0..30_000u32 {
            let ttl = Duration::from_secs(u64::from(1 + i % 3));
            let ns = if i % 2 == 0 {
                Namespace::Refresh
            } else {
                Namespace::AccessTokens
            };
            s.put(ns, &i.to_string(), b"v", Some(ttl)).await.unwrap();
        }
        for i in 0..1_000u32 {
            s.put(Namespace::Clients, &format!("c{i}"), b"v", None)
                .await
                .unwrap();
        }
        assert_eq!(s.len(), 31_000);
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.len(), 21_000);
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.len(), 11_000);
        index_consistent(&s);
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.len(), 1_000);
        assert_eq!(s.list(Namespace::Clients).await.unwrap().len(), 1_000);
        assert!(s.list(Namespace::Refresh).await.unwrap().is_empty());
        index_consistent(&s);
    }
}
