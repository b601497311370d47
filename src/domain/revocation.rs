//! Revocation vocabulary shared by the issuer (which writes revocations) and
//! the verifier (which mirrors them in memory).
//!
//! Storage schema (implemented in `infra`, documented here so both sides agree):
//! - sorted set [`JTI_KEY`]: member = `jti`, score = token `exp` (unix secs);
//!   members whose score is in the past are pruned.
//! - sorted set [`SUBJECT_KEY`]: member = `sub`, score = "revoked before"
//!   watermark: tokens of that subject with `iat <= score` are revoked.
//! - sorted set [`CLIENT_KEY`]: the same, keyed by `client_id`.
//! - pub/sub channel [`CHANNEL`]: one JSON [`Revocation`] per change.
//! - stream [`LOG_KEY`]: one entry per change (fields `k` = 1 jti, 2
//!   subject, 3 client; `m` member; `s` score), capped near [`LOG_CAP`]
//!   entries, so a verifier that reconnects reads what it missed from its
//!   last entry id instead of reloading the sets.
//! - string [`EPOCH_KEY`]: a random id set once (`SET NX`) by the writer; a
//!   different or missing epoch means Redis lost its data (or was replaced),
//!   so stream positions from before mean nothing.
//!
//! All keys share the `{mcpgate}` hash tag so they live in one Redis Cluster slot.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const JTI_KEY: &str = "{mcpgate}:revoked:jti";
pub(crate) const SUBJECT_KEY: &str = "{mcpgate}:revoked:sub";
pub(crate) const CLIENT_KEY: &str = "{mcpgate}:revoked:client";
pub(crate) const CHANNEL: &str = "mcpgate:revocations";
pub const LOG_KEY: &str = "{mcpgate}:revoked:log";
pub(crate) const EPOCH_KEY: &str = "{mcpgate}:revoked:epoch";
/// Approximate length the revocation stream is trimmed to (`MAXLEN ~`).
pub(crate) const LOG_CAP: u64 = 100_000;

/// One revocation, as stored and as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// One access token, remembered until its `exp`.
    Jti { id: String, exp: u64 },
    /// Every token of a subject issued at or before `before`.
    Subject { id: String, before: u64 },
    /// Every token of a client issued at or before `before`.
    Client { id: String, before: u64 },
}

/// A revocation on the pub/sub channel: the revocation's own fields plus
/// when it was published (unix millis), so subscribers can measure how
/// long it took to reach them. Messages without `published_ms` are valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Published {
    #[serde(flatten)]
    pub revocation: Revocation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) published_ms: Option<u64>,
}

/// The facts about a token that revocation is decided on.
#[derive(Debug, Clone, Copy)]
pub struct TokenRef<'a> {
    pub jti: &'a str,
    pub sub: &'a str,
    pub client_id: Option<&'a str>,
    pub iat: u64,
}

/// An in-memory revocation set: the verifier's mirror, and the issuer's
/// embedded (single-process) store.
#[derive(Debug, Default, Clone)]
pub(crate) struct RevocationSet {
    jtis: HashMap<String, u64>,
    subjects: HashMap<String, u64>,
    clients: HashMap<String, u64>,
}

// === impl Revocation ===

impl Revocation {
    /// The unix time after which this entry no longer matters, given the
    /// longest access-token lifetime in force.
    pub fn expires_at(&self, max_token_lifetime_secs: u64) -> u64 {
        match self {
            Revocation::Jti { exp, .. } => *exp,
            Revocation::Subject { before, .. } | Revocation::Client { before, .. } => {
                before.saturating_add(max_token_lifetime_secs)
            }
        }
    }
}

impl Revocation {
    /// A stable key naming what is revoked (kind and id), for records that
    /// keep one entry per revoked thing.
    pub(crate) fn record_key(&self) -> String {
        match self {
            Revocation::Jti { id, .. } => format!("jti:{id}"),
            Revocation::Subject { id, .. } => format!("sub:{id}"),
            Revocation::Client { id, .. } => format!("client:{id}"),
        }
    }
}

// === impl RevocationSet ===

impl RevocationSet {
    pub(crate) fn apply(&mut self, r: &Revocation) {
        let (map, id, v) = match r {
            Revocation::Jti { id, exp } => (&mut self.jtis, id, *exp),
            Revocation::Subject { id, before } => (&mut self.subjects, id, *before),
            Revocation::Client { id, before } => (&mut self.clients, id, *before),
        };
        let e = map.entry(id.clone()).or_insert(v);
        *e = (*e).max(v);
    }

    pub(crate) fn is_revoked(&self, t: TokenRef<'_>) -> bool {
        if self.jtis.contains_key(t.jti) {
            return true;
        }
        if self.subjects.get(t.sub).is_some_and(|b| t.iat <= *b) {
            return true;
        }
        t.client_id
            .and_then(|c| self.clients.get(c))
            .is_some_and(|b| t.iat <= *b)
    }

    /// Entries of `self` that `other` lacks, or holds with a lower score
    /// (what `other` would have to gain to cover `self`).
    #[cfg(test)]
    pub(crate) fn missing_from(&self, other: &RevocationSet) -> Vec<Revocation> {
        let below = |mine: &HashMap<String, u64>, theirs: &HashMap<String, u64>| {
            mine.iter()
                .filter(|(id, v)| theirs.get(*id).is_none_or(|t| t < v))
                .map(|(id, v)| (id.clone(), *v))
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        out.extend(
            below(&self.jtis, &other.jtis)
                .into_iter()
                .map(|(id, exp)| Revocation::Jti { id, exp }),
        );
        out.extend(
            below(&self.subjects, &other.subjects)
                .into_iter()
                .map(|(id, before)| Revocation::Subject { id, before }),
        );
        out.extend(
            below(&self.clients, &other.clients)
                .into_iter()
                .map(|(id, before)| Revocation::Client { id, before }),
        );
        out
    }

    /// Drops entries that can no longer match a live token.
    pub(crate) fn prune(&mut self, now: u64, max_token_lifetime_secs: u64) {
        self.jtis.retain(|_, exp| *exp >= now);
        let horizon = now.saturating_sub(max_token_lifetime_secs);
        self.subjects.retain(|_, b| *b >= horizon);
        self.clients.retain(|_, b| *b >= horizon);
    }

    pub(crate) fn len(&self) -> usize {
        self.jtis.len() + self.subjects.len() + self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(jti: &'static str, sub: &'static str, iat: u64) -> TokenRef<'static> {
        TokenRef {
            jti,
            sub,
            client_id: Some("c1"),
            iat,
        }
    }

    #[test]
    fn jti_subject_and_client() {
        let mut s = RevocationSet::default();
        s.apply(&Revocation::Jti {
            id: "j1".into(),
            exp: 200,
        });
        assert!(s.is_revoked(t("j1", "u", 100)));
        assert!(!s.is_revoked(t("j2", "u", 100)));
        s.apply(&Revocation::Subject {
            id: "u".into(),
            before: 150,
        });
        assert!(s.is_revoked(t("j2", "u", 150)));
        assert!(!s.is_revoked(t("j2", "u", 151)));
        s.apply(&Revocation::Client {
            id: "c1".into(),
            before: 160,
        });
        assert!(s.is_revoked(t("j3", "v", 155)));
        s.prune(201, 3600);
        assert!(!s.is_revoked(t("j1", "w", 400)));
    }

    #[test]
    fn missing_from_lists_what_the_other_set_lacks() {
        let mut mine = RevocationSet::default();
        let mut theirs = RevocationSet::default();
        for r in [
            Revocation::Jti {
                id: "a".into(),
                exp: 5,
            },
            Revocation::Subject {
                id: "u".into(),
                before: 9,
            },
        ] {
            mine.apply(&r);
        }
        theirs.apply(&Revocation::Subject {
            id: "u".into(),
            before: 3,
        });
        let mut m = mine.missing_from(&theirs);
        m.sort_by_key(|r| r.record_key());
        assert_eq!(m.len(), 2, "{m:?}");
        theirs.apply(&m[0]);
        theirs.apply(&m[1]);
        assert!(mine.missing_from(&theirs).is_empty());
        assert_eq!(
            Revocation::Client {
                id: "c".into(),
                before: 1
            }
            .record_key(),
            "client:c"
        );
    }

    #[test]
    fn wire_format() {
        let r = Revocation::Jti {
            id: "a".into(),
            exp: 5,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"kind":"jti","id":"a","exp":5}"#
        );
    }
}

/// The verifier's read side: an in-memory view, consulted on every Check
/// with no I/O.
pub trait RevocationView: Send + Sync + 'static {
    fn is_revoked(&self, t: TokenRef<'_>) -> bool;

    /// How long the view has been out of touch with its source of truth, or
    /// `None` when it is authoritative (an in-process set) or in sync.
    fn stale_for(&self, now: std::time::SystemTime) -> Option<std::time::Duration>;
}

/// The issuer's write side: records a revocation where every verifier sees it.
#[async_trait::async_trait]
pub trait RevocationSink: Send + Sync + 'static {
    /// Stores `r` durably and publishes it; `Ok` only once both are done.
    /// Idempotent: publishing again is harmless (scores only grow).
    async fn publish(&self, r: Revocation) -> Result<(), RevocationError>;

    /// Makes sure every entry of `rs` is stored (adding the missing ones
    /// and publishing those); returns how many were missing. Used to
    /// repopulate a store that lost data. Defaults to publishing each.
    async fn ensure(&self, rs: &[Revocation]) -> Result<usize, RevocationError> {
        for r in rs {
            self.publish(r.clone()).await?;
        }
        Ok(0)
    }

    /// Whether the sink can take writes now (the issuer's `/readyz`).
    /// Defaults to yes.
    async fn check(&self) -> Result<(), RevocationError> {
        Ok(())
    }
}

/// Failure to record a revocation; the issuer must report it, not swallow it.
#[derive(Debug, thiserror::Error)]
#[error("revocation store unavailable: {0}")]
pub struct RevocationError(pub String);
