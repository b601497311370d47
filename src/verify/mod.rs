//! The verifier core: protocol-neutral requests in, decisions out.
//!
//! Adapters build an [`request::AuthzRequest`], call
//! [`authorizer::Authorizer::check`] and encode the [`authorizer::Decision`]
//! (its [`decision::Verdict`], and the canonical target it was made on).
//! Keys, the verified-token cache and revocation come in through traits.

pub mod authorizer;
pub(crate) mod bearer;
pub mod decision;
pub(crate) mod jwt;
pub(crate) mod policy;
pub(crate) mod request;
pub(crate) mod resource_metadata;
mod route_index;
