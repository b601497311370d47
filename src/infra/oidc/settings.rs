//! Settings of an OpenID Connect upstream, with the Google preset.

use crate::domain::secret::ClientSecret;
use std::time::Duration;

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded id and secret. The default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Settings of one OIDC provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Short id used in URLs and subjects, e.g. `okta` (`/callback/okta`,
    /// subject `okta:<sub>`).
    pub id: String,
    /// Name on the login page. Defaults to the id.
    pub display_name: String,
    /// The issuer URL; discovery is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Other `iss` values accepted in ID tokens (Google also uses
    /// `accounts.google.com`). Defaults to none.
    pub(crate) additional_issuers: Vec<String>,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    /// Defaults to client_secret_basic.
    pub auth_method: ClientAuthMethod,
    /// Defaults to `openid email profile`.
    pub scopes: Vec<String>,
    /// Also call the userinfo endpoint to fill claims missing from the ID
    /// token. Defaults to false.
    pub use_userinfo: bool,
    /// Clock skew allowed on `exp`/`iat`. Defaults to 60 s.
    pub leeway: Duration,
}

impl OidcSettings {
    /// Settings with defaults for a provider at `issuer`.
    pub fn new(
        id: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<ClientSecret>,
    ) -> Self {
        let id = id.into();
        Self {
            display_name: id.clone(),
            id,
            issuer: issuer.into(),
            additional_issuers: Vec::new(),
            client_id: client_id.into(),
            client_secret,
            auth_method: ClientAuthMethod::default(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            use_userinfo: false,
            leeway: Duration::from_secs(60),
        }
    }

    /// The Google preset (issuer `https://accounts.google.com`).
    pub fn google(client_id: impl Into<String>, client_secret: ClientSecret) -> Self {
        let mut s = Self::new(
            "google",
            "https://accounts.google.com",
            client_id,
            Some(client_secret),
        );
        s.display_name = "Google".into();
        s.additional_issuers = vec!["accounts.google.com".into()];
        s
    }
}
