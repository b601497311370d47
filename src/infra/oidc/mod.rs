//! [`UpstreamIdp`] for any OpenID Connect provider, configured by discovery
//! (OpenID Connect Discovery 1.0 §4): authorization code flow with PKCE S256
//! and a nonce, client_secret_basic or client_secret_post at the token
//! endpoint, and ID token validation (OIDC Core §3.1.3.7) against the
//! provider's JWKS: signature, `iss`, `aud` = our client id, `azp`, `exp`
//! (with leeway, against the injected clock) and `nonce`. Google is a preset.

use crate::domain::clock::{unix_secs, Clock};
use crate::domain::secret::ct_eq;
use crate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamIdp, UpstreamUser};
use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use url::Url;

pub use lazy::LazyOidc;
pub use settings::{ClientAuthMethod, OidcSettings};

mod lazy;
mod settings;

/// The discovery fields we use.
#[derive(Debug, Clone, Deserialize)]
struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
}

/// The ID token / userinfo claims we read.
#[derive(Debug, Default, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    azp: Option<String>,
    preferred_username: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
}

/// A generic OpenID Connect provider.
pub struct OidcIdp {
    settings: OidcSettings,
    meta: ProviderMetadata,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The provider's keys and when a `kid` miss last triggered a refetch.
    jwks: RwLock<(JwkSet, Option<Instant>)>,
}

/// Minimum time between JWKS refetches triggered by an unknown `kid`.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

fn unavailable(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable(format!("oidc: {e}"))
}

fn rejected(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Rejected(format!("oidc: {e}"))
}

fn verified_flag(v: &Option<serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    }
}

// === impl OidcIdp ===

impl OidcIdp {
    pub async fn discover_with_clock(
        settings: OidcSettings,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, UpstreamError> {
        let issuer = settings.issuer.trim_end_matches('/');
        // OpenID Connect Discovery §4: appended to the issuer, path and all.
        let url = format!("{issuer}{}", crate::domain::well_known::OIDC_METADATA_PATH);
        let resp = http.get(&url).send().await.map_err(unavailable)?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("discovery {url}: {}", resp.status())));
        }
        let meta: ProviderMetadata = resp.json().await.map_err(unavailable)?;
        if meta.issuer.trim_end_matches('/') != issuer {
            return Err(UpstreamError::Config(format!(
                "discovery issuer {} does not match configured {issuer}",
                meta.issuer
            )));
        }
        let idp = Self {
            settings,
            meta,
            http,
            clock,
            jwks: RwLock::new((JwkSet { keys: Vec::new() }, None)),
        };
        idp.refresh_jwks().await?;
        Ok(idp)
    }

    async fn refresh_jwks(&self) -> Result<(), UpstreamError> {
        let resp = self
            .http
            .get(&self.meta.jwks_uri)
            .send()
            .await
            .map_err(unavailable)?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("jwks: {}", resp.status())));
        }
        let set: JwkSet = resp.json().await.map_err(unavailable)?;
        let mut guard = self.jwks.write().map_err(|_| unavailable("jwks lock"))?;
        guard.0 = set;
        Ok(())
    }

    /// The decoding key for `kid`, refetching the JWKS once on a miss.
    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, UpstreamError> {
        if let Some(k) = self.lookup(kid)? {
            return Ok(k);
        }
        // Refetches triggered by a miss are rate-limited; the initial load is not.
        let allowed = {
            let mut guard = self.jwks.write().map_err(|_| unavailable("jwks lock"))?;
            let recent = guard.1.is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL);
            if !recent {
                guard.1 = Some(Instant::now());
            }
            !recent
        };
        if allowed {
            self.refresh_jwks().await?;
            if let Some(k) = self.lookup(kid)? {
                return Ok(k);
            }
        }
        Err(rejected("ID token signed with an unknown key"))
    }

    fn lookup(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, UpstreamError> {
        let guard = self.jwks.read().map_err(|_| unavailable("jwks lock"))?;
        let jwk = match kid {
            Some(kid) => guard.0.find(kid),
            None if guard.0.keys.len() == 1 => guard.0.keys.first(),
            None => None,
        };
        jwk.map(|j| DecodingKey::from_jwk(j).map_err(|e| unavailable(format!("bad JWK: {e}"))))
            .transpose()
    }

    fn token_request(&self, form: &mut Vec<(&'static str, String)>) -> reqwest::RequestBuilder {
        let req = self.http.post(&self.meta.token_endpoint);
        let secret = self.settings.client_secret.as_ref();
        match (self.settings.auth_method, secret) {
            (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                req.basic_auth(enc(&self.settings.client_id), Some(enc(secret.secret())))
            }
            (ClientAuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", self.settings.client_id.clone()));
                form.push(("client_secret", secret.secret().to_owned()));
                req
            }
            (_, None) => {
                form.push(("client_id", self.settings.client_id.clone()));
                req
            }
        }
    }

    /// Validates an ID token (OIDC Core §3.1.3.7) and returns its claims.
    async fn validate_id_token(&self, token: &str, nonce: &str) -> Result<IdClaims, UpstreamError> {
        let header = jsonwebtoken::decode_header(token).map_err(rejected)?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(rejected("symmetric ID token algorithm refused"));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut v = Validation::new(header.alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.set_audience(&[&self.settings.client_id]);
        let mut issuers = vec![self.meta.issuer.clone()];
        issuers.extend(self.settings.additional_issuers.iter().cloned());
        v.set_issuer(&issuers);
        let claims = jsonwebtoken::decode::<IdClaims>(token, &key, &v)
            .map_err(rejected)?
            .claims;
        let now = unix_secs(self.clock.now());
        let leeway = self.settings.leeway.as_secs();
        if claims
            .exp
            .is_none_or(|exp| exp.saturating_add(leeway) <= now)
        {
            return Err(rejected("ID token expired"));
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(rejected("ID token issued in the future"));
        }
        if claims
            .azp
            .as_ref()
            .is_some_and(|azp| azp != &self.settings.client_id)
        {
            return Err(rejected("ID token azp is not our client"));
        }
        match &claims.nonce {
            Some(n) if ct_eq(n.as_bytes(), nonce.as_bytes()) => {}
            _ => return Err(rejected("ID token nonce mismatch")),
        }
        Ok(claims)
    }

    async fn userinfo(&self, access_token: &str) -> Result<Option<IdClaims>, UpstreamError> {
        let Some(endpoint) = &self.meta.userinfo_endpoint else {
            return Ok(None);
        };
        let resp = self
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(unavailable)?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("userinfo: {}", resp.status())));
        }
        resp.json().await.map(Some).map_err(unavailable)
    }
}

#[async_trait]
impl UpstreamIdp for OidcIdp {
    fn id(&self) -> &str {
        &self.settings.id
    }

    fn display_name(&self) -> &str {
        &self.settings.display_name
    }

    fn authorize_url(&self, req: &UpstreamAuthRequest) -> Result<String, UpstreamError> {
        let mut url = Url::parse(&self.meta.authorization_endpoint)
            .map_err(|e| UpstreamError::Config(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &req.redirect_uri)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", &req.state)
            .append_pair("nonce", &req.nonce)
            .append_pair(
                "code_challenge",
                &crate::domain::secret::pkce_s256(req.pkce_verifier.secret()),
            )
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    async fn exchange(
        &self,
        code: &str,
        req: &UpstreamAuthRequest,
    ) -> Result<UpstreamUser, UpstreamError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", req.redirect_uri.clone()),
            ("code_verifier", req.pkce_verifier.secret().to_owned()),
        ];
        let builder = self.token_request(&mut form);
        let resp = builder
            .header(http::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(unavailable)?;
        let status = resp.status();
        if status.is_client_error() {
            let err = resp
                .json::<OAuthErrorBody>()
                .await
                .map(|b| b.error)
                .unwrap_or_else(|_| status.to_string());
            return Err(rejected(format!("token endpoint: {err}")));
        }
        if !status.is_success() {
            return Err(unavailable(format!("token endpoint: {status}")));
        }
        let tokens: TokenResponse = resp.json().await.map_err(unavailable)?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| rejected("token response has no id_token"))?;
        let mut claims = self.validate_id_token(&id_token, &req.nonce).await?;
        if self.settings.use_userinfo {
            if let Some(at) = &tokens.access_token {
                if let Some(info) = self.userinfo(at).await? {
                    if info.sub != claims.sub {
                        return Err(rejected("userinfo sub differs from the ID token"));
                    }
                    claims.preferred_username =
                        claims.preferred_username.or(info.preferred_username);
                    claims.name = claims.name.or(info.name);
                    if claims.email.is_none() {
                        claims.email = info.email;
                        claims.email_verified = info.email_verified;
                    }
                }
            }
        }
        let email_verified = claims.email.is_some() && verified_flag(&claims.email_verified);
        Ok(UpstreamUser {
            subject: format!("{}:{}", self.settings.id, claims.sub),
            username: claims.preferred_username,
            email: claims.email,
            email_verified,
            name: claims.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::PkceVerifier;

    #[test]
    fn pkce_challenge_is_base64url_sha256() {
        let v = PkceVerifier::new("mcpgate-test-verifier-0123456789-abcdefghijklmno");
        assert_eq!(
            crate::domain::secret::pkce_s256(v.secret()),
            "o8XSfHbxlZumoc8JRUMqv4mTEmIEM4uP5-H_aw-Ryew"
        );
    }

    #[test]
    fn email_verified_accepts_bool_and_string() {
        assert!(verified_flag(&Some(serde_json::json!(true))));
        assert!(verified_flag(&Some(serde_json::json!("true"))));
        assert!(!verified_flag(&Some(serde_json::json!("false"))));
        assert!(!verified_flag(&None));
    }
}
