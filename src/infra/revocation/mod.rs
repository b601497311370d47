//! Revocation storage: the in-process set, the Redis sink the issuer writes
//! through, and the Redis mirror every verifier reads from (schema in
//! [`crate::domain::revocation`]).

mod compact;
mod local;
mod mirror;
mod sink;

pub use compact::CompactRevocations;
pub use local::LocalRevocations;
pub use mirror::{MirrorSettings, RedisRevocationMirror};
pub use sink::RedisRevocationSink;

// The connection helper lives in `infra::redis_conn`; these names stay
// here for the issuer's store, which still imports them from this path.
pub use crate::infra::redis_conn::{cluster_client, is_cluster_node};
