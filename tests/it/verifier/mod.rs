//! Verifier integration tests.
