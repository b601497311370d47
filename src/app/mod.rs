//! Composition roots shared by the binaries and the tests.
#[cfg(feature = "verifier")]
pub mod verifier;
