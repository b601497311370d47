//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
//! an https URL used as `client_id` names a JSON document describing the client.
//! The URL rules and the document's checks live here; the issuer's
//! `lookup_client` (`clients.rs`) caches the result, and the fetch (SSRF
//! guard, limits) is `infra/cimd_fetch.rs` behind [`MetadataFetcher`].

use crate::domain::claims::Scopes;
use crate::issue::client_metadata::{parse_metadata, validate, ClientMetadata, AUTH_NONE};
use crate::issue::error::OAuthError;
use crate::issue::redirect::PrivateUseSchemes;
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

/// Whether a `client_id` is a Client ID Metadata Document URL.
pub(crate) fn is_metadata_url(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

/// The draft's rules for a metadata `client_id`: https, a host, a path
/// beyond "/", no fragment, credentials or dot segments.
pub(crate) fn valid_metadata_url(client_id: &str) -> bool {
    let Ok(u) = url::Url::parse(client_id) else {
        return false;
    };
    let raw_path = client_id
        .splitn(4, '/')
        .nth(3)
        .map(|p| p.split('?').next().unwrap_or(""))
        .unwrap_or("");
    u.scheme() == "https"
        && u.host_str().is_some()
        && !raw_path.is_empty()
        && u.fragment().is_none()
        && !client_id.contains('#')
        && u.username().is_empty()
        && u.password().is_none()
        && !raw_path.split('/').any(|seg| seg == "." || seg == "..")
        && client_id.len() <= 2000
}

/// The metadata of the client a fetched document describes (the draft's
/// rules): JSON whose `client_id` is its URL, no secrets, a public client
/// (`token_endpoint_auth_method` `none`), then the RFC 7591 checks every
/// registration passes. Errors are `invalid_client` with a safe description.
pub(crate) fn document_metadata(
    url: &str,
    body: &[u8],
    supported: &Scopes,
    schemes: PrivateUseSchemes,
) -> Result<ClientMetadata, OAuthError> {
    let invalid = |d: &str| OAuthError::invalid_client(d.to_owned());
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| invalid("client metadata document is not JSON").with_cause(e))?;
    if body.get("client_id").and_then(|v| v.as_str()) != Some(url) {
        return Err(invalid(
            "client metadata document client_id does not match its URL",
        ));
    }
    if body.get("client_secret").is_some() || body.get("client_secret_expires_at").is_some() {
        return Err(invalid(
            "client metadata documents must not contain secrets",
        ));
    }
    let mut meta = parse_metadata(&body).map_err(|e| invalid_from(e, "metadata"))?;
    match meta.token_endpoint_auth_method.as_deref() {
        None | Some(AUTH_NONE) => meta.token_endpoint_auth_method = Some(AUTH_NONE.into()),
        Some(_) => return Err(invalid("only token_endpoint_auth_method none is supported")),
    }
    validate(meta, supported, schemes).map_err(|e| invalid_from(e, "metadata"))
}

fn invalid_from(e: OAuthError, what: &str) -> OAuthError {
    let d = e.description.clone().unwrap_or_default();
    OAuthError::invalid_client(format!("invalid client {what}: {d}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_rules() {
        assert!(valid_metadata_url("https://app.example/client.json"));
        assert!(valid_metadata_url("https://app.example/c?v=1"));
        assert!(!valid_metadata_url("https://app.example/"));
        assert!(!valid_metadata_url("https://app.example"));
        assert!(!valid_metadata_url("http://app.example/c"));
        assert!(!valid_metadata_url("https://app.example/a/../c"));
        assert!(!valid_metadata_url("https://app.example/c#x"));
        assert!(!valid_metadata_url("https://u:p@app.example/c"));
    }
}
