//! The OAuth 2.1 authorization server core: pure logic, storage and outbound
//! HTTP behind traits (`store::Store`, `upstream::UpstreamIdp`,
//! `cimd::MetadataFetcher`, `domain::revocation::RevocationSink`).

pub mod cimd;
pub mod store;
pub mod upstream;
