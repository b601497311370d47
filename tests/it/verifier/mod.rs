//! Verifier integration tests.

mod claims;
mod grpc;
mod http;
mod jwks;
mod revocation;
pub(crate) mod support;
