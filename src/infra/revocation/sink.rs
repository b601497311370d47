//! [`RedisRevocationSink`]: ZADD (keep the max score) + prune, then PUBLISH.

use super::local::now_secs;
use super::Conn;
use crate::domain::clock::{unix_millis, Clock};
use crate::domain::revocation::{
    Published, Revocation, RevocationError, RevocationSink, CHANNEL, CLIENT_KEY, JTI_KEY,
    SUBJECT_KEY,
};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// The issuer's revocation writer on Redis or Redis Cluster. All keys share
/// the `{mcpgate}` hash tag, so the write pipeline stays in one slot.
#[derive(Clone)]
pub struct RedisRevocationSink {
    conn: Conn,
    clock: Arc<dyn Clock>,
    max_token_lifetime_secs: u64,
}

fn err(e: redis::RedisError) -> RevocationError {
    RevocationError(format!("redis: {e}"))
}

/// The sorted set, member and score for one revocation.
pub(crate) fn key_of(r: &Revocation) -> (&'static str, &str, u64) {
    match r {
        Revocation::Jti { id, exp } => (JTI_KEY, id, *exp),
        Revocation::Subject { id, before } => (SUBJECT_KEY, id, *before),
        Revocation::Client { id, before } => (CLIENT_KEY, id, *before),
    }
}

// === impl RedisRevocationSink ===

impl RedisRevocationSink {
    /// Connects: one URL = standalone (reconnecting), several = cluster seeds.
    pub async fn connect(
        urls: &[String],
        clock: Arc<dyn Clock>,
        max_token_lifetime: Duration,
    ) -> Result<Self, RevocationError> {
        let conn = match urls {
            [] => return Err(RevocationError("no redis URL configured".into())),
            [one] => {
                let client = redis::Client::open(one.as_str()).map_err(err)?;
                Conn::Managed(ConnectionManager::new(client).await.map_err(err)?)
            }
            many => {
                let client = redis::cluster::ClusterClient::new(many.iter().map(String::as_str))
                    .map_err(err)?;
                Conn::Cluster(client.get_async_connection().await.map_err(err)?)
            }
        };
        Ok(Self {
            conn,
            clock,
            max_token_lifetime_secs: max_token_lifetime.as_secs(),
        })
    }
}

impl std::fmt::Debug for RedisRevocationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisRevocationSink")
    }
}

#[async_trait::async_trait]
impl RevocationSink for RedisRevocationSink {
    async fn publish(&self, r: Revocation) -> Result<(), RevocationError> {
        let now = now_secs(self.clock.as_ref());
        let horizon = now.saturating_sub(self.max_token_lifetime_secs);
        let (key, member, score) = key_of(&r);
        let mut p = redis::pipe();
        p.atomic()
            .cmd("ZADD")
            .arg(key)
            .arg("GT")
            .arg(score)
            .arg(member)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(JTI_KEY)
            .arg("-inf")
            .arg(format!("({now}"))
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(SUBJECT_KEY)
            .arg("-inf")
            .arg(format!("({horizon}"))
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(CLIENT_KEY)
            .arg("-inf")
            .arg(format!("({horizon}"))
            .ignore();
        self.conn.pipe::<()>(&p).await.map_err(err)?;
        let msg = Published {
            revocation: r,
            published_ms: Some(unix_millis(self.clock.now())),
        };
        let payload = serde_json::to_string(&msg).map_err(|e| RevocationError(e.to_string()))?;
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(CHANNEL).arg(payload);
        self.conn.query::<i64>(&publish).await.map_err(err)?;
        Ok(())
    }
}
