//! Revocation storage: the in-process set, the Redis sink the issuer writes
//! through, and the Redis mirror every verifier reads from (schema in
//! [`crate::domain::revocation`]).

mod compact;
mod local;
mod mirror;
mod sink;

pub use local::LocalRevocations;
pub(crate) use mirror::{MirrorSettings, RedisRevocationMirror};
pub use sink::RedisRevocationSink;
