//! The verifier core: protocol-neutral requests in, decisions out.
//!
//! Adapters build an [`request::AuthzRequest`], call
//! [`authorizer::Authorizer::check`] and encode the [`decision::Decision`].
//! Keys, the verified-token cache and revocation come in through traits.

pub mod authorizer;
pub mod bearer;
pub mod decision;
pub mod jwt;
pub mod policy;
pub mod request;
pub mod resource_metadata;
mod route_index;
