//! Verifier integration tests.

mod grpc;
mod http;
mod jwks;
mod revocation;
pub(crate) mod support;
