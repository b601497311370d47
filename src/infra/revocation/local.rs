//! [`LocalRevocations`]: an in-process revocation set, both view and sink.

use crate::domain::clock::{unix_secs, Clock};
use crate::domain::revocation::{
    Revocation, RevocationError, RevocationSet, RevocationSink, RevocationView, TokenRef,
};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// An in-process revocation set shared by clones: the issuer writes to it
/// (as [`RevocationSink`]) and an in-process verifier reads it (as
/// [`RevocationView`]). Authoritative, so never stale.
#[derive(Clone)]
pub struct LocalRevocations {
    set: Arc<RwLock<RevocationSet>>,
    clock: Arc<dyn Clock>,
    max_token_lifetime_secs: u64,
}

// === impl LocalRevocations ===

impl LocalRevocations {
    /// `max_token_lifetime` bounds how long subject/client entries are kept.
    pub fn new(clock: Arc<dyn Clock>, max_token_lifetime: Duration) -> Self {
        Self {
            set: Arc::default(),
            clock,
            max_token_lifetime_secs: max_token_lifetime.as_secs(),
        }
    }

    /// Records a revocation synchronously.
    pub(crate) fn apply(&self, r: &Revocation) {
        let now = self.clock.unix();
        if let Ok(mut s) = self.set.write() {
            s.prune(now, self.max_token_lifetime_secs);
            s.apply(r);
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.set.read().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for LocalRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRevocations")
            .field("len", &self.len())
            .finish()
    }
}

impl RevocationView for LocalRevocations {
    fn is_revoked(&self, t: TokenRef<'_>) -> bool {
        // A poisoned lock means a writer panicked: fail closed.
        self.set.read().map(|s| s.is_revoked(t)).unwrap_or(true)
    }

    fn stale_for(&self, _now: SystemTime) -> Option<Duration> {
        None
    }
}

#[async_trait::async_trait]
impl RevocationSink for LocalRevocations {
    async fn publish(&self, r: Revocation) -> Result<(), RevocationError> {
        if self.set.is_poisoned() {
            return Err(RevocationError("local revocation set poisoned".into()));
        }
        self.apply(&r);
        Ok(())
    }
}

/// Seconds since the epoch for `now`; re-exported for the mirror.
pub(crate) fn now_secs(clock: &dyn Clock) -> u64 {
    unix_secs(clock.now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::FixedClock;

    #[tokio::test]
    async fn view_sees_what_sink_publishes() {
        let l = LocalRevocations::new(
            Arc::new(FixedClock::at_unix(100)),
            Duration::from_secs(3600),
        );
        let t = TokenRef {
            jti: "j",
            sub: "s",
            client_id: None,
            iat: 90,
        };
        assert!(!l.is_revoked(t));
        l.publish(Revocation::Jti {
            id: "j".into(),
            exp: 200,
        })
        .await
        .unwrap();
        assert!(l.clone().is_revoked(t));
        assert_eq!(l.stale_for(SystemTime::UNIX_EPOCH), None);
        assert_eq!(l.len(), 1);
    }
}
