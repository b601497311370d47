//! Verifier integration tests.

mod claims;
mod grpc;
mod http;
mod jwks;
mod revocation;
mod shutdown;
pub(crate) mod support;
