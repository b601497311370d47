//! The verified-token cache: [`CompactTokenCache`] on `quick_cache`, keyed
//! by (a prefix of) the token's SHA-256, never by the token.
//!
//! Memory per cached token is bounded by what it holds: a 16-byte key, an
//! `Arc` to a [`VerifiedToken`] (the time claims and the `jti` inline, about
//! 100 bytes with its allocations) and the cache's own slot (about 60
//! bytes); the identity (subject, client, audience, scopes, header values)
//! is interned, so the tokens of one user through one client share one
//! copy. `benches/cache_bytes.rs` measures it with a counting allocator.

use crate::verify::authorizer::{TokenCache, TokenHash};
use crate::verify::decision::{TokenIdentity, VerifiedToken};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cached token and when it leaves the cache (seconds since the cache
/// was made).
#[derive(Clone)]
struct Cached {
    vt: Arc<VerifiedToken>,
    until: u32,
}

/// Interned identities; swept of the ones no token holds any more each
/// time the set doubles, so it stays within twice what the cache holds.
#[derive(Default)]
struct Interner {
    set: HashSet<Arc<TokenIdentity>>,
    swept_len: usize,
}

/// A bounded cache of verified tokens. Entries also leave after `ttl`;
/// `exp` and revocation are re-checked on every hit by the core.
pub struct CompactTokenCache {
    inner: quick_cache::sync::Cache<[u8; 16], Cached>,
    ttl_secs: u32,
    /// Monotonic time (no wall clock): it only bounds how long an entry
    /// stays, never whether a token is valid.
    born: Instant,
    identities: Mutex<Interner>,
}

/// The cache key: the first 128 bits of the token's SHA-256. A key
/// collision would serve one token's verification for another, so the
/// prefix must resist second preimages, which 128 bits of SHA-256 do
/// (about 2^128 work to find a token matching a given cached one).
/// (An array, not a `u128`: byte alignment keeps the cache's slot small.)
fn key(h: &TokenHash) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    k
}

impl CompactTokenCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            ttl_secs: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
            born: Instant::now(),
            identities: Mutex::default(),
        }
    }

    fn age(&self) -> u32 {
        u32::try_from(self.born.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// Number of tokens held.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct identities held.
    #[cfg(test)]
    pub(crate) fn identities(&self) -> usize {
        self.identities.lock().map_or(0, |i| i.set.len())
    }
}

impl TokenCache for CompactTokenCache {
    fn get(&self, h: &TokenHash) -> Option<Arc<VerifiedToken>> {
        let k = key(h);
        let c = self.inner.get(&k)?;
        if c.until < self.age() {
            self.inner.remove(&k);
            return None;
        }
        Some(c.vt)
    }

    fn insert(&self, h: TokenHash, vt: Arc<VerifiedToken>) {
        let until = self.age().saturating_add(self.ttl_secs);
        self.inner.insert(key(&h), Cached { vt, until });
    }

    fn intern(&self, id: TokenIdentity) -> Arc<TokenIdentity> {
        let Ok(mut i) = self.identities.lock() else {
            return Arc::new(id);
        };
        if let Some(shared) = i.set.get(&id) {
            return shared.clone();
        }
        if i.set.len() >= 2 * i.swept_len + 1024 {
            i.set.retain(|a| Arc::strong_count(a) > 1);
            i.swept_len = i.set.len();
        }
        let shared = Arc::new(id);
        i.set.insert(shared.clone());
        shared
    }
}

/// No cache: every token is verified in full (`token_cache_capacity = 0`).
pub(crate) struct NoTokenCache;

impl TokenCache for NoTokenCache {
    fn get(&self, _h: &TokenHash) -> Option<Arc<VerifiedToken>> {
        None
    }

    fn insert(&self, _h: TokenHash, _v: Arc<VerifiedToken>) {}
}

/// The cache for a configured capacity (0 = none).
pub(crate) fn for_capacity(capacity: u64, ttl: Duration) -> Arc<dyn TokenCache> {
    match capacity {
        0 => Arc::new(NoTokenCache),
        n => Arc::new(CompactTokenCache::new(n, ttl)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::claims::{AccessClaims, Audience};
    use crate::verify::authorizer::hash;

    fn claims(jti: &str, sub: &str) -> AccessClaims {
        AccessClaims {
            iss: "https://iss".into(),
            sub: sub.into(),
            aud: Audience::One("https://r/mcp".into()),
            exp: 2_000,
            iat: 1_000,
            nbf: None,
            jti: jti.into(),
            client_id: Some("c".into()),
            scope: Some("mcp:tools mcp:read".into()),
            username: None,
            email: None,
            name: None,
        }
    }

    #[test]
    fn tokens_of_one_identity_share_it_and_are_found_by_hash() {
        let c = CompactTokenCache::new(100, Duration::from_secs(60));
        let a = Arc::new(VerifiedToken::interned(claims("j1", "u"), |i| c.intern(i)));
        let b = Arc::new(VerifiedToken::interned(claims("j2", "u"), |i| c.intern(i)));
        let other = Arc::new(VerifiedToken::interned(claims("j3", "v"), |i| c.intern(i)));
        assert!(Arc::ptr_eq(&a.identity, &b.identity));
        assert!(!Arc::ptr_eq(&a.identity, &other.identity));
        assert_eq!(c.identities(), 2);
        c.insert(hash("token-a"), a.clone());
        let got = c.get(&hash("token-a")).map(|v| v.jti.to_string());
        assert_eq!(got.as_deref(), Some("j1"));
        assert!(c.get(&hash("token-b")).is_none());
        assert_eq!(a.header_values[0].as_deref(), Some("u"));
        assert_eq!(a.header_values[3].as_deref(), Some("mcp:read mcp:tools"));
    }

    #[test]
    fn identities_no_token_holds_are_swept() {
        let c = CompactTokenCache::new(10, Duration::from_secs(60));
        for n in 0..5_000 {
            drop(VerifiedToken::interned(
                claims("j", &format!("u{n}")),
                |i| c.intern(i),
            ));
        }
        assert!(c.identities() <= 1024 + 1, "{}", c.identities());
    }
}
