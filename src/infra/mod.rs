//! I/O implementations of the core traits.
#[cfg(feature = "issuer")]
pub mod cimd_fetch;
#[cfg(feature = "issuer")]
pub mod embedded_store;
#[cfg(feature = "issuer")]
pub mod github;
pub(crate) mod http_client;
#[cfg(feature = "verifier")]
pub mod jwks;
#[cfg(feature = "issuer")]
pub mod memory_store;
#[cfg(feature = "issuer")]
pub mod oidc;
#[cfg(any(feature = "verifier", feature = "issuer"))]
pub(crate) mod redis_conn;
#[cfg(feature = "issuer")]
pub mod redis_store;
#[cfg(any(feature = "verifier", feature = "issuer"))]
pub mod revocation;
#[cfg(feature = "issuer")]
pub(crate) mod sealed_store;
#[cfg(feature = "issuer")]
pub(crate) mod store_backend;
#[cfg(feature = "verifier")]
pub mod token_cache;
