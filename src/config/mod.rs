//! Configuration: raw (serde, all optional) → validated.
#[cfg(feature = "verifier")]
pub mod verifier;
#[cfg(feature = "verifier")]
pub mod verifier_keys;
#[cfg(feature = "verifier")]
pub mod verifier_routes;
