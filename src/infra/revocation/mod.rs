//! Revocation storage: the in-process set, the Redis sink the issuer writes
//! through, and the Redis mirror every verifier reads from (schema in
//! [`crate::domain::revocation`]).

mod local;
mod mirror;
mod sink;

pub use local::LocalRevocations;
pub use mirror::{MirrorSettings, RedisRevocationMirror};
pub use sink::RedisRevocationSink;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use std::time::Duration;

/// A Redis connection: standalone or cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Managed(ConnectionManager),
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// Whether the server at `url` runs in cluster mode (`INFO cluster`), so a
/// single seed URL is enough to configure a cluster, for the issuer and the
/// verifier alike.
pub async fn is_cluster_node(url: &str, timeout: Duration) -> redis::RedisResult<bool> {
    let client = redis::Client::open(url)?;
    let mut c = tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| timed_out())??;
    let info: redis::RedisResult<String> = tokio::time::timeout(
        timeout,
        redis::cmd("INFO").arg("cluster").query_async(&mut c),
    )
    .await
    .map_err(|_| timed_out())?;
    match info {
        Ok(info) => Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1")),
        // INFO refused (ACL, renamed command): standalone unless configured.
        Err(e) if !e.is_io_error() && !e.is_connection_dropped() => Ok(false),
        Err(e) => Err(e),
    }
}

/// A cluster client over the seed URLs that follows MOVED/ASK, refreshes
/// its slot map and retries through failovers (about 10 s in all).
pub fn cluster_client(
    urls: &[String],
    timeout: Duration,
) -> redis::RedisResult<redis::cluster::ClusterClient> {
    redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str))
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(12)
        .min_retry_wait(50)
        .max_retry_wait(1000)
        .build()
}

fn retryable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

pub(crate) fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "redis timed out"))
}

impl Conn {
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        match self.clone() {
            Conn::Managed(mut c) => {
                // The manager reconnects after a dropped connection but
                // fails the command that saw it: retry that one once (every
                // command sent here is idempotent).
                match cmd.query_async(&mut c).await {
                    Err(e) if retryable(&e) => cmd.query_async(&mut c).await,
                    r => r,
                }
            }
            Conn::Plain(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self.clone() {
            Conn::Managed(mut c) => match inv.invoke_async(&mut c).await {
                Err(e) if retryable(&e) => inv.invoke_async(&mut c).await,
                r => r,
            },
            Conn::Plain(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
    }
}
