//! Pure shared vocabulary: no I/O crates, no wire types.

pub mod claim_map;
pub mod claims;
pub mod clock;
pub mod net;
pub mod revocation;
pub mod secret;
pub mod well_known;
