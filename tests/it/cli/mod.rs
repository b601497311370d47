//! The `mcpgate` binary driven as a user would: against an in-process
//! issuer (and, for `dev`, the binary's own servers).

mod support;

#[cfg(feature = "issuer")]
mod login;

#[cfg(all(feature = "issuer", feature = "verifier"))]
mod dev;

mod usage;
