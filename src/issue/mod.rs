//! The OAuth 2.1 authorization server core: pure logic, storage and outbound
//! HTTP behind traits (`store::Store`, `upstream::UpstreamIdp`,
//! `cimd::MetadataFetcher`, `domain::revocation::RevocationSink`).

pub(crate) mod admin;
pub(crate) mod authorize;
pub mod cimd;
pub(crate) mod client_metadata;
pub(crate) mod clients;
pub(crate) mod error;
pub mod grant;
pub mod introspect;
pub mod keys;
pub(crate) mod login;
pub(crate) mod metadata;
pub(crate) mod pkce;
pub mod records;
pub(crate) mod redirect;
pub(crate) mod registration;
pub mod revoke;
pub mod service;
pub mod store;
pub mod upstream;
pub mod users;

#[cfg(test)]
mod tests;
