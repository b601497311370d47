//! mcpgate: OAuth 2.1 for MCP servers.
//!
//! Two services from one crate:
//! - the **verifier** (`feature = "verifier"`), an Envoy ext_authz gRPC and
//!   ForwardAuth HTTP decision service that validates JWT access tokens;
//! - the **issuer** (`feature = "issuer"`), an MCP-compliant OAuth 2.1
//!   authorization server.
//!
//! Dependencies point one way: `bin` → `app` → `adapters` / `infra` /
//! `config` → `verify` / `issue` → `domain`. The core modules (`domain`,
//! `verify`, `issue`) never name a wire or storage crate.
#![forbid(unsafe_code)]
// What nothing outside the library uses is `pub(crate)`: a `pub` item in a
// crate-private module is flagged (test modules exempt).
#![cfg_attr(not(test), warn(unreachable_pub))]
// Dead code and reach are judged on the full build (`clippy --all-features
// -D warnings`): a build of one service compiles shared modules whose other
// users it leaves out.
#![cfg_attr(
    not(all(feature = "verifier", feature = "issuer", feature = "cli")),
    allow(dead_code, unused_imports, unreachable_pub)
)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

pub(crate) mod adapters;
pub mod app;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod domain;
pub mod infra;
#[cfg(feature = "issuer")]
pub mod issue;
pub(crate) mod metrics;
pub mod telemetry;
#[cfg(feature = "verifier")]
pub mod verify;
