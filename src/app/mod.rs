//! Composition roots shared by the binaries and the tests.
