//! [`UpstreamIdp`] for GitHub (OAuth App or GitHub App user login).
//!
//! Browser to `/login/oauth/authorize` (with PKCE S256), code exchange at
//! `/login/oauth/access_token`, then `GET /user` and, when the email scope was
//! granted, `GET /user/emails` for the verified primary address. Subjects are
//! `github:<numeric id>`, usernames the login. Base URLs are configurable so
//! tests (and GitHub Enterprise) can point them elsewhere.

use crate::domain::secret::{pkce_s256, ClientSecret};
use crate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamIdp, UpstreamUser};
use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

/// Settings of the GitHub login.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// OAuth App client id.
    pub client_id: String,
    /// OAuth App client secret.
    pub client_secret: ClientSecret,
    /// Requested scopes. Defaults to `read:user user:email`.
    pub scopes: Vec<String>,
    /// Where the browser logs in. Defaults to `https://github.com`.
    pub web_base: String,
    /// The REST API. Defaults to `https://api.github.com`.
    pub api_base: String,
}

impl GitHubSettings {
    /// Settings with the defaults for github.com.
    pub fn new(client_id: impl Into<String>, client_secret: ClientSecret) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
            scopes: vec!["read:user".into(), "user:email".into()],
            web_base: "https://github.com".into(),
            api_base: "https://api.github.com".into(),
        }
    }
}

/// GitHub as an upstream identity provider.
pub struct GitHubIdp {
    settings: GitHubSettings,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    login: String,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

const USER_AGENT: &str = concat!("mcpgate/", env!("CARGO_PKG_VERSION"));

fn unavailable(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable(format!("github: {e}"))
}

fn endpoint(base: &str, path: &str) -> Result<Url, UpstreamError> {
    Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| UpstreamError::Config(format!("github base URL {base}: {e}")))
}

// === impl GitHubIdp ===

impl GitHubIdp {
    pub fn new(settings: GitHubSettings, http: reqwest::Client) -> Self {
        Self { settings, http }
    }

    async fn api_get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, UpstreamError> {
        let resp = self
            .http
            .get(endpoint(&self.settings.api_base, path)?)
            .bearer_auth(token)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .send()
            .await
            .map_err(unavailable)?;
        let status = resp.status();
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
            return Err(UpstreamError::Rejected(format!("github {path}: {status}")));
        }
        if !status.is_success() {
            return Err(unavailable(format!("{path}: {status}")));
        }
        resp.json().await.map_err(unavailable)
    }

    /// The verified primary email, if the token may read emails.
    async fn primary_email(&self, token: &str) -> Result<Option<String>, UpstreamError> {
        let emails: Vec<GitHubEmail> = self.api_get("/user/emails", token).await?;
        Ok(emails
            .into_iter()
            .find(|e| e.primary && e.verified)
            .map(|e| e.email))
    }
}

fn grants_email(scope: Option<&str>) -> bool {
    scope
        .unwrap_or("")
        .split([',', ' '])
        .any(|s| s == "user:email" || s == "user")
}

#[async_trait]
impl UpstreamIdp for GitHubIdp {
    fn id(&self) -> &str {
        "github"
    }

    fn display_name(&self) -> &str {
        "GitHub"
    }

    fn authorize_url(&self, req: &UpstreamAuthRequest) -> Result<String, UpstreamError> {
        let mut url = endpoint(&self.settings.web_base, "/login/oauth/authorize")?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &req.redirect_uri)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", &req.state)
            .append_pair("allow_signup", "false")
            .append_pair("code_challenge", &pkce_s256(req.pkce_verifier.secret()))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    async fn exchange(
        &self,
        code: &str,
        req: &UpstreamAuthRequest,
    ) -> Result<UpstreamUser, UpstreamError> {
        let form = [
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.settings.client_secret.secret()),
            ("code", code),
            ("redirect_uri", req.redirect_uri.as_str()),
            ("code_verifier", req.pkce_verifier.secret()),
        ];
        let resp = self
            .http
            .post(endpoint(
                &self.settings.web_base,
                "/login/oauth/access_token",
            )?)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .form(&form)
            .send()
            .await
            .map_err(unavailable)?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("token endpoint: {}", resp.status())));
        }
        let token: TokenResponse = resp.json().await.map_err(unavailable)?;
        let access_token = match (token.access_token, token.error) {
            (Some(t), None) => t,
            (_, err) => {
                return Err(UpstreamError::Rejected(format!(
                    "github token exchange: {} {}",
                    err.unwrap_or_else(|| "no access_token".into()),
                    token.error_description.unwrap_or_default()
                )))
            }
        };
        let user: GitHubUser = self.api_get("/user", &access_token).await?;
        let verified = if grants_email(token.scope.as_deref()) {
            self.primary_email(&access_token).await?
        } else {
            None
        };
        let (email, email_verified) = match verified {
            Some(e) => (Some(e), true),
            None => (user.email.filter(|e| !e.is_empty()), false),
        };
        Ok(UpstreamUser {
            subject: format!("github:{}", user.id),
            username: Some(user.login),
            email,
            email_verified,
            name: user.name.filter(|n| !n.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_scope_detection() {
        assert!(grants_email(Some("read:user,user:email")));
        assert!(grants_email(Some("user")));
        assert!(!grants_email(Some("read:user")));
        assert!(!grants_email(None));
    }
}
