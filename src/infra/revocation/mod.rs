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

/// A Redis connection: standalone or cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Managed(ConnectionManager),
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        match self.clone() {
            Conn::Managed(mut c) => cmd.query_async(&mut c).await,
            Conn::Plain(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    pub(crate) async fn pipe<T: redis::FromRedisValue>(
        &self,
        p: &redis::Pipeline,
    ) -> redis::RedisResult<T> {
        match self.clone() {
            Conn::Managed(mut c) => p.query_async(&mut c).await,
            Conn::Plain(mut c) => p.query_async(&mut c).await,
            Conn::Cluster(mut c) => p.query_async(&mut c).await,
        }
    }
}
