//! Issuer integration tests.
mod admin_listener;
mod cimd_client;
mod cimd_fetch_guard;
mod clients;
mod flow;
pub(crate) mod harness;
mod negatives;
mod revocation_faults;
mod security;
mod store_embedded;
mod store_redis;
mod store_suite;
mod token_path;
mod upstream_github;
mod upstream_login;
mod upstream_oidc;
