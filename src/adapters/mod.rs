//! Protocol edges: decode the wire, call the core, encode the answer.
#[cfg(feature = "verifier")]
pub mod envoy;
#[cfg(feature = "verifier")]
pub mod forward_auth;
#[cfg(feature = "verifier")]
pub mod health;
#[cfg(feature = "issuer")]
pub mod issuer;
#[cfg(feature = "verifier")]
pub mod prm;
#[cfg(feature = "verifier")]
pub mod router;
#[cfg(feature = "verifier")]
pub mod verifier_state;
