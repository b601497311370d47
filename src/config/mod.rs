//! Configuration: raw (serde, all optional) → validated.
