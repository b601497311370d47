//! Configuration: raw (serde, all optional) → validated.
pub(crate) mod common;
#[cfg(feature = "issuer")]
pub mod issuer;
#[cfg(feature = "verifier")]
pub mod verifier;
