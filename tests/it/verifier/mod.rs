//! Verifier integration tests.

mod claims;
mod decision_log;
mod grpc;
mod http;
mod jwks;
mod metrics_listener;
mod revocation;
mod shutdown;
pub(crate) mod support;
