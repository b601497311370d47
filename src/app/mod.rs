//! Composition roots shared by the binaries and the tests.
#[cfg(feature = "issuer")]
pub mod issuer;
#[cfg(feature = "verifier")]
pub mod verifier;
