//! Upstream identity providers: where users actually log in (GitHub, Google,
//! any OIDC provider, or the built-in static users).

use crate::domain::secret::PkceVerifier;
use async_trait::async_trait;

/// A user as the upstream provider asserts them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamUser {
    /// Stable, provider-scoped subject, e.g. `github:583231` or `oidc:okta:00u1`.
    pub subject: String,
    pub username: Option<String>,
    pub email: Option<String>,
    /// Whether the provider says the email is verified; allow-list entries
    /// on emails and domains only match verified emails.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// What the issuer generates for one upstream round trip.
#[derive(Debug, Clone)]
pub struct UpstreamAuthRequest {
    /// Opaque state echoed by the provider to our callback.
    pub state: String,
    /// Our callback URL, registered with the provider.
    pub redirect_uri: String,
    /// PKCE verifier for the upstream leg (S256), where the provider supports it.
    pub pkce_verifier: PkceVerifier,
    /// OIDC nonce bound into the ID token.
    pub nonce: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider refused (user denied, bad code, ...). Detail for logs.
    #[error("upstream provider rejected the login: {0}")]
    Rejected(String),
    /// The provider could not be reached or answered garbage.
    #[error("upstream provider unavailable: {0}")]
    Unavailable(String),
    /// The provider is misconfigured.
    #[error("upstream provider misconfigured: {0}")]
    Config(String),
}

/// A browser-redirect identity provider (OAuth 2.0 / OIDC).
#[async_trait]
pub trait UpstreamIdp: Send + Sync + 'static {
    /// Short id used in URLs, e.g. `github` (`/callback/github`).
    fn id(&self) -> &str;
    /// Human name on the login page, e.g. "GitHub".
    fn display_name(&self) -> &str;
    /// Where to send the browser.
    fn authorize_url(&self, req: &UpstreamAuthRequest) -> Result<String, UpstreamError>;
    /// Exchanges the callback `code` for the user's identity.
    async fn exchange(
        &self,
        code: &str,
        req: &UpstreamAuthRequest,
    ) -> Result<UpstreamUser, UpstreamError>;
}
