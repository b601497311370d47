//! Verifier integration tests.

mod grpc;
mod http;
mod jwks;
mod revocation;
mod support;
