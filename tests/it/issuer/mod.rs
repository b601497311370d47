//! Issuer integration tests.
