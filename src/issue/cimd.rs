//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
//! an https URL used as `client_id` names a JSON document describing the client.

use async_trait::async_trait;
use std::time::Duration;

/// A fetched document and how long it may be cached.
#[derive(Debug, Clone)]
pub struct FetchedDocument {
    pub body: Vec<u8>,
    /// From `Cache-Control: max-age` (clamped by the fetcher's config), if any.
    pub max_age: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL or the address it resolves to is not allowed (SSRF guard).
    #[error("address not allowed: {0}")]
    Forbidden(String),
    #[error("document too large")]
    TooLarge,
    #[error("fetch timed out")]
    Timeout,
    #[error("fetch failed: {0}")]
    Failed(String),
}

/// Fetches client metadata documents. The infra implementation enforces the
/// SSRF guard (https only, no private/loopback/link-local addresses unless
/// allowed by config, checked on the resolved address), size and time limits.
#[async_trait]
pub trait MetadataFetcher: Send + Sync + 'static {
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, FetchError>;
}
