//! Pure shared vocabulary: no I/O crates, no wire types.

pub(crate) mod claim_map;
pub mod claims;
pub mod clock;
pub(crate) mod net;
pub mod revocation;
pub mod secret;
pub(crate) mod well_known;
