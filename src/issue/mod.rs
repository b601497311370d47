//! The OAuth 2.1 authorization server core: pure logic, storage and outbound
//! HTTP behind traits (`store::Store`, `upstream::UpstreamIdp`,
//! `cimd::MetadataFetcher`, `domain::revocation::RevocationSink`).

pub mod admin;
pub mod authorize;
pub mod cimd;
pub mod client_metadata;
pub mod clients;
pub mod error;
pub mod grant;
pub mod introspect;
pub mod keys;
pub mod login;
pub mod metadata;
pub mod pkce;
pub mod records;
pub mod redirect;
pub mod registration;
pub mod revoke;
pub mod service;
pub mod store;
pub mod upstream;
pub mod users;

#[cfg(test)]
mod tests;
