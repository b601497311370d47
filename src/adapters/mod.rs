//! Protocol edges: decode the wire, call the core, encode the answer.
#[cfg(feature = "verifier")]
pub(crate) mod envoy;
#[cfg(feature = "verifier")]
pub(crate) mod forward_auth;
#[cfg(feature = "verifier")]
pub(crate) mod health;
#[cfg(feature = "issuer")]
pub(crate) mod issuer;
#[cfg(feature = "verifier")]
pub(crate) mod prm;
#[cfg(feature = "verifier")]
pub(crate) mod router;
#[cfg(feature = "verifier")]
pub(crate) mod verifier_state;
