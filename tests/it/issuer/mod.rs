//! Issuer integration tests.
mod store_embedded;
mod store_redis;
mod store_suite;
mod cimd_fetch_guard;
mod upstream_github;
mod upstream_oidc;
