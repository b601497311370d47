//! Configuration: raw (serde, all optional) → validated.
pub mod common;
#[cfg(feature = "issuer")]
pub mod issuer;
#[cfg(feature = "issuer")]
pub mod issuer_dev;
#[cfg(test)]
#[cfg(feature = "issuer")]
mod issuer_tests;
#[cfg(feature = "issuer")]
mod issuer_validate;
#[cfg(feature = "verifier")]
pub mod verifier;
#[cfg(feature = "verifier")]
pub mod verifier_claims;
#[cfg(feature = "verifier")]
pub mod verifier_keys;
#[cfg(feature = "verifier")]
pub mod verifier_routes;
