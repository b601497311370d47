//! I/O implementations of the core traits.
