//! The one Redis connection helper: single node or Redis Cluster, chosen
//! from the configured URLs (several URLs, a `cluster` flag, or one seed
//! whose server reports `cluster_enabled:1`), with per-command timeouts.
//!
//! Used by the issuer's store, the revocation sink (issuer) and the mirror
//! (verifier).

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use std::future::Future;
use std::time::Duration;

/// How to connect to a single (non-cluster) node.
pub(crate) enum SingleNode {
    /// One multiplexed connection; the caller reconnects after an error.
    Plain,
    /// A `ConnectionManager` that reconnects by itself. With
    /// `retry_once`, a command that saw a dropped connection is sent once
    /// more (only for callers whose every command is idempotent).
    Managed {
        config: ConnectionManagerConfig,
        retry_once: bool,
    },
}

/// A connection to Redis: single node or cluster. Clones share it.
#[derive(Clone)]
pub(crate) enum RedisConn {
    Managed {
        conn: ConnectionManager,
        retry_once: bool,
    },
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// The error of a command or connection that took longer than its limit.
pub(crate) fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "redis timed out"))
}

/// Runs `f` with a time limit.
pub(crate) async fn within<T>(
    d: Duration,
    f: impl Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    tokio::time::timeout(d, f)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// Whether the server at `url` runs in cluster mode (`INFO cluster`), so a
/// single seed URL is enough to configure a cluster.
pub(crate) async fn is_cluster_node(url: &str, timeout: Duration) -> redis::RedisResult<bool> {
    let client = redis::Client::open(url)?;
    let mut c = within(timeout, client.get_multiplexed_async_connection()).await?;
    let info: redis::RedisResult<String> = within(
        timeout,
        redis::cmd("INFO").arg("cluster").query_async(&mut c),
    )
    .await;
    match info {
        Ok(info) => Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1")),
        // INFO refused (ACL, renamed command): standalone unless configured.
        Err(e) if !e.is_io_error() && !e.is_connection_dropped() && !e.is_timeout() => Ok(false),
        Err(e) => Err(e),
    }
}

/// A cluster client over the seed URLs that follows MOVED/ASK, refreshes
/// its slot map and retries through failovers (about 10 s in all).
pub(crate) fn cluster_client(
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

/// Whether an error is the connection's, not the command's.
pub(crate) fn retryable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

// === impl RedisConn ===

impl RedisConn {
    /// Connects: several URLs, `cluster`, or one URL whose server runs in
    /// cluster mode = cluster; otherwise one node as `single` says.
    /// `timeout` bounds the connection and each step of it.
    pub(crate) async fn connect(
        urls: &[String],
        cluster: bool,
        single: SingleNode,
        timeout: Duration,
    ) -> redis::RedisResult<Self> {
        match urls {
            [] => Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "no redis URL configured",
            ))),
            [one] if !cluster && !is_cluster_node(one, timeout).await? => {
                let client = redis::Client::open(one.as_str())?;
                match single {
                    SingleNode::Plain => Ok(RedisConn::Plain(
                        within(timeout, client.get_multiplexed_async_connection()).await?,
                    )),
                    // Bounded by the manager's own connection timeout.
                    SingleNode::Managed { config, retry_once } => Ok(RedisConn::Managed {
                        conn: ConnectionManager::new_with_config(client, config).await?,
                        retry_once,
                    }),
                }
            }
            many => {
                let client = cluster_client(many, timeout)?;
                let conn = client.get_async_connection();
                // A caller that reconnects by itself (`Plain`) wants the
                // first connection bounded too; the others let the
                // cluster client retry through a failover.
                Ok(RedisConn::Cluster(match single {
                    SingleNode::Plain => within(timeout, conn).await?,
                    SingleNode::Managed { .. } => conn.await?,
                }))
            }
        }
    }

    /// Whether this is a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Sends one command.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        match self.clone() {
            RedisConn::Managed {
                mut conn,
                retry_once,
            } => {
                // The manager reconnects after a dropped connection but
                // fails the command that saw it.
                match cmd.query_async(&mut conn).await {
                    Err(e) if retry_once && retryable(&e) => cmd.query_async(&mut conn).await,
                    r => r,
                }
            }
            RedisConn::Plain(mut c) => cmd.query_async(&mut c).await,
            RedisConn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    /// Sends a pipeline in one round trip to a single node, never retried
    /// (its commands need not be idempotent). `None` on a cluster, whose
    /// keys may live on different nodes that answer in no set order.
    pub(crate) async fn pipeline(
        &self,
        pipe: &redis::Pipeline,
    ) -> Option<redis::RedisResult<Vec<redis::Value>>> {
        Some(match self.clone() {
            RedisConn::Managed { mut conn, .. } => pipe.query_async(&mut conn).await,
            RedisConn::Plain(mut c) => pipe.query_async(&mut c).await,
            RedisConn::Cluster(_) => return None,
        })
    }

    /// Runs a Lua script (EVALSHA, loading it when the server lacks it).
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self.clone() {
            RedisConn::Managed {
                mut conn,
                retry_once,
            } => match inv.invoke_async(&mut conn).await {
                Err(e) if retry_once && retryable(&e) => inv.invoke_async(&mut conn).await,
                r => r,
            },
            RedisConn::Plain(mut c) => inv.invoke_async(&mut c).await,
            RedisConn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
    }
}
