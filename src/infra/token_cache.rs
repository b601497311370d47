//! The verified-token cache on moka, keyed by the token's SHA-256.

use crate::verify::authorizer::{TokenCache, TokenHash};
use crate::verify::decision::VerifiedToken;
use std::sync::Arc;
use std::time::Duration;

/// A bounded cache of verified tokens. Entries also expire after `ttl`;
/// `exp` and revocation are re-checked on every hit by the core.
pub struct MokaTokenCache {
    inner: moka::sync::Cache<TokenHash, Arc<VerifiedToken>>,
}

impl MokaTokenCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }
}

impl TokenCache for MokaTokenCache {
    fn get(&self, h: &TokenHash) -> Option<Arc<VerifiedToken>> {
        self.inner.get(h)
    }

    fn insert(&self, h: TokenHash, v: Arc<VerifiedToken>) {
        self.inner.insert(h, v);
    }
}

/// No cache: every token is verified in full (`token_cache_capacity = 0`).
pub struct NoTokenCache;

impl TokenCache for NoTokenCache {
    fn get(&self, _h: &TokenHash) -> Option<Arc<VerifiedToken>> {
        None
    }

    fn insert(&self, _h: TokenHash, _v: Arc<VerifiedToken>) {}
}

/// The cache for a configured capacity (0 = none).
pub fn for_capacity(capacity: u64, ttl: Duration) -> Arc<dyn TokenCache> {
    match capacity {
        0 => Arc::new(NoTokenCache),
        n => Arc::new(MokaTokenCache::new(n, ttl)),
    }
}
