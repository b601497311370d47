//! [`RedisRevocationSink`]: one Lua script (ZADD keeping the max score,
//! append the change to the revocation stream, prune; its five keys
//! declared and sharing the `{mcpgate}` hash tag, so a cluster runs it on
//! one node and the client follows MOVED/ASK), then PUBLISH (which a
//! cluster broadcasts to every node).

use super::local::now_secs;
use crate::domain::clock::{unix_millis, Clock};
use crate::domain::revocation::{
    Published, Revocation, RevocationError, RevocationSink, CHANNEL, CLIENT_KEY, EPOCH_KEY,
    JTI_KEY, LOG_CAP, LOG_KEY, SUBJECT_KEY,
};
use crate::infra::redis_conn::{RedisConn, SingleNode};
use redis::aio::ConnectionManagerConfig;
use redis::Script;
use std::sync::Arc;
use std::time::Duration;

/// KEYS: jti, subject, client sets, the stream, the epoch. ARGV[1] which
/// set (1..3), ARGV[2] score, ARGV[3] member, ARGV[4] now, ARGV[5]
/// horizon, ARGV[6] an epoch to set if there is none, ARGV[7] the stream's
/// cap. Adds (or raises) the member; appends to the stream only what
/// changed a set (the republisher's every-5-s `ensure` appends nothing);
/// prunes expired members; returns 1 if the member was new.
const WRITE_LUA: &str = r#"
local key = KEYS[tonumber(ARGV[1])]
local before = redis.call('ZSCORE', key, ARGV[3])
local added = redis.call('ZADD', key, 'GT', ARGV[2], ARGV[3])
if (not before) or tonumber(before) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[5], ARGV[6], 'NX')
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'k', ARGV[1], 'm', ARGV[3], 's', ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[5])
return added
"#;

/// Subject and client watermarks stay in Redis at least this long (or the
/// longest token lifetime, if longer): one entry per subject or client, so
/// cheap, and longer than any verifier's `max_token_lifetime` in practice,
/// so a verifier never takes the issuer's pruning for data loss (see
/// [`LOSS_CHECK_HORIZON`](super::mirror::LOSS_CHECK_HORIZON)).
pub(crate) const WATERMARK_RETENTION: Duration = Duration::from_secs(8 * 86_400);

/// Time limit for connecting and for each command.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The issuer's revocation writer on Redis or Redis Cluster.
#[derive(Clone)]
pub struct RedisRevocationSink {
    conn: RedisConn,
    write: Script,
    /// The epoch this sink sets when Redis has none (random per sink).
    epoch: String,
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

pub(crate) fn slot_of(key: &str) -> u8 {
    match key {
        JTI_KEY => 1,
        SUBJECT_KEY => 2,
        _ => 3,
    }
}

// === impl RedisRevocationSink ===

impl RedisRevocationSink {
    /// Connects: several URLs, `cluster`, or a single URL whose server
    /// runs in cluster mode = cluster; otherwise standalone (reconnecting).
    pub async fn connect(
        urls: &[String],
        cluster: bool,
        clock: Arc<dyn Clock>,
        max_token_lifetime: Duration,
    ) -> Result<Self, RevocationError> {
        // Standalone: reconnect quickly and give up fast: a revocation that
        // cannot be stored fails (the client retries), it never waits long
        // or gets acknowledged. Every command sent is idempotent, so one
        // that saw a dropped connection is sent once more.
        let single = SingleNode::Managed {
            config: ConnectionManagerConfig::new()
                .set_connection_timeout(Some(IO_TIMEOUT))
                .set_response_timeout(Some(IO_TIMEOUT))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500)),
            retry_once: true,
        };
        let conn = RedisConn::connect(urls, cluster, single, IO_TIMEOUT)
            .await
            .map_err(err)?;
        let mut epoch = [0u8; 12];
        aws_lc_rs::rand::fill(&mut epoch).map_err(|_| RevocationError("rng failure".into()))?;
        let epoch = epoch.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            conn,
            write: Script::new(WRITE_LUA),
            epoch,
            clock,
            max_token_lifetime_secs: max_token_lifetime.max(WATERMARK_RETENTION).as_secs(),
        })
    }

    /// Whether this sink talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// Stores one revocation; returns whether it was missing.
    async fn store(&self, r: &Revocation) -> Result<bool, RevocationError> {
        let now = now_secs(self.clock.as_ref());
        let horizon = now.saturating_sub(self.max_token_lifetime_secs);
        let (key, member, score) = key_of(r);
        let mut inv = self.write.key(JTI_KEY);
        inv.key(SUBJECT_KEY)
            .key(CLIENT_KEY)
            .key(LOG_KEY)
            .key(EPOCH_KEY)
            .arg(slot_of(key))
            .arg(score)
            .arg(member)
            .arg(now)
            .arg(horizon)
            .arg(&self.epoch)
            .arg(LOG_CAP);
        let added: i64 = self.conn.invoke(&inv).await.map_err(err)?;
        Ok(added == 1)
    }

    async fn announce(&self, r: Revocation) -> Result<(), RevocationError> {
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

impl std::fmt::Debug for RedisRevocationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisRevocationSink")
    }
}

#[async_trait::async_trait]
impl RevocationSink for RedisRevocationSink {
    async fn publish(&self, r: Revocation) -> Result<(), RevocationError> {
        self.store(&r).await?;
        self.announce(r).await
    }

    async fn ensure(&self, rs: &[Revocation]) -> Result<usize, RevocationError> {
        let mut missing = 0;
        for r in rs {
            if self.store(r).await? {
                missing += 1;
                self.announce(r.clone()).await?;
            }
        }
        Ok(missing)
    }

    async fn check(&self) -> Result<(), RevocationError> {
        // On the revocation slot's master (a cluster routes by key).
        let mut cmd = redis::cmd("ZCARD");
        cmd.arg(JTI_KEY);
        self.conn.query::<i64>(&cmd).await.map_err(err)?;
        Ok(())
    }
}
