//! The single integration-test binary: real apps on 127.0.0.1:0.
//! Redis-backed cases start their own `redis-server` (found on PATH, see
//! `redis.rs`): skipped with a message when it is absent, failed instead
//! under `MCPGATE_E2E_STRICT=1`.

#[cfg(any(feature = "cli", feature = "issuer"))]
mod access_token;
#[cfg(any(feature = "cli", feature = "issuer"))]
mod browser;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "issuer")]
mod issuer;
mod layering;
mod log_capture;
mod raw_http;
mod readme;
#[cfg(any(feature = "issuer", feature = "verifier"))]
mod redis;
#[cfg(feature = "verifier")]
mod verifier;
