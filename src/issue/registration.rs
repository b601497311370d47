//! Dynamic Client Registration (RFC 7591) and its management protocol
//! (RFC 7592). Only `client_metadata::validate` builds the metadata of a
//! stored client.

use crate::domain::secret::ct_eq;
use crate::issue::client_metadata::{parse_metadata, validate, ClientMetadata, AUTH_NONE};
use crate::issue::error::{ErrorCode, OAuthError};
use crate::issue::metadata::REGISTER_PATH;
use crate::issue::records::{
    get_json, hash_secret, put_json, random_token, ClientRecord, ClientSource,
};
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;
use serde::Serialize;
use std::time::Duration;

/// The RFC 7591 §3.2.1 / RFC 7592 §3 response body.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationResponse {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub(crate) client_id_issued_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
    pub registration_client_uri: String,
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

// === impl Issuer ===

impl Issuer {
    fn registration_uri(&self, client_id: &str) -> String {
        self.settings.url(&format!("{REGISTER_PATH}/{client_id}"))
    }

    fn registration_response(&self, c: &ClientRecord) -> RegistrationResponse {
        RegistrationResponse {
            client_id: c.client_id.clone(),
            client_secret: None,
            client_id_issued_at: c.client_id_issued_at,
            client_secret_expires_at: c.secret_hash.as_ref().map(|_| c.client_secret_expires_at),
            registration_access_token: None,
            registration_client_uri: self.registration_uri(&c.client_id),
            metadata: c.metadata.clone(),
        }
    }

    fn client_ttl(&self, c: &ClientRecord) -> Option<Duration> {
        c.expires_at
            .map(|e| Duration::from_secs(e.saturating_sub(self.now()).max(1)))
    }

    /// `POST /register` (RFC 7591 §3.1). `initial_token` is the bearer token
    /// sent, if any; `client_ip` keys the rate limit.
    pub async fn register(
        &self,
        body: &serde_json::Value,
        initial_token: Option<&str>,
        client_ip: &str,
    ) -> Result<RegistrationResponse, OAuthError> {
        let reg = &self.settings.registration;
        if !reg.enabled {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "dynamic registration is disabled",
            ));
        }
        if reg.rate_limit > 0 {
            let key = format!("register:{client_ip}");
            let n = self
                .store
                .incr(Namespace::RateLimits, &key, reg.rate_window)
                .await?;
            if n > reg.rate_limit {
                return Err(OAuthError::new(
                    ErrorCode::RateLimited,
                    "too many registrations, try again later",
                ));
            }
        }
        if let Some(expected) = &reg.initial_access_token {
            if !initial_token.is_some_and(|t| expected.matches(t)) {
                return Err(OAuthError::invalid_token());
            }
        }
        let metadata = validate(
            parse_metadata(body)?,
            &self.settings.scopes,
            self.settings.registration.private_use_schemes,
        )?;
        let now = self.now();
        let client_id = random_token(16)?;
        let secret = match metadata.token_endpoint_auth_method.as_deref() {
            Some(AUTH_NONE) => None,
            _ => Some(random_token(32)?),
        };
        let reg_token = random_token(32)?;
        let expires_at = reg.client_lifetime.map(|l| now + l.as_secs());
        let record = ClientRecord {
            client_id: client_id.clone(),
            source: ClientSource::Dynamic,
            secret_hash: secret.as_deref().map(hash_secret),
            registration_token_hash: Some(hash_secret(&reg_token)),
            metadata,
            client_id_issued_at: now,
            client_secret_expires_at: expires_at.unwrap_or(0),
            expires_at,
        };
        let bytes = serde_json::to_vec(&record).map_err(OAuthError::server_error)?;
        let written = self
            .store
            .put_if_absent(Namespace::Clients, &client_id, &bytes, reg.client_lifetime)
            .await?;
        if !written {
            return Err(OAuthError::server_error("client_id collision"));
        }
        tracing::info!(client_id = %client_id, client_ip, "client registered");
        let mut resp = self.registration_response(&record);
        resp.client_secret = secret;
        resp.registration_access_token = Some(reg_token);
        Ok(resp)
    }

    /// Loads a dynamically registered client for RFC 7592 management,
    /// checking the registration access token in constant time. Every
    /// failure is `invalid_token` (401), RFC 7592 §2.
    async fn managed_client(
        &self,
        client_id: &str,
        unverified_token: Option<&str>,
    ) -> Result<ClientRecord, OAuthError> {
        let Some(token) = unverified_token else {
            return Err(OAuthError::invalid_token());
        };
        let rec: Option<ClientRecord> =
            get_json(self.store.as_ref(), Namespace::Clients, client_id).await?;
        let candidate = hash_secret(token);
        match rec {
            Some(c)
                if c.registration_token_hash
                    .as_deref()
                    .is_some_and(|h| ct_eq(h.as_bytes(), candidate.as_bytes()))
                    && c.expires_at.is_none_or(|e| e > self.now()) =>
            {
                Ok(c)
            }
            _ => Err(OAuthError::invalid_token()),
        }
    }

    /// `GET /register/{client_id}` (RFC 7592 §2.1).
    pub(crate) async fn registration_read(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<RegistrationResponse, OAuthError> {
        let c = self.managed_client(client_id, token).await?;
        Ok(self.registration_response(&c))
    }

    /// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata.
    /// A client switching from `none` to a secret method gets a new secret.
    pub(crate) async fn registration_update(
        &self,
        client_id: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<RegistrationResponse, OAuthError> {
        let mut c = self.managed_client(client_id, token).await?;
        if body.get("client_id").and_then(|v| v.as_str()) != Some(client_id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body must match the URL",
            ));
        }
        if let Some(sent) = body.get("client_secret").and_then(|v| v.as_str()) {
            let ok = c
                .secret_hash
                .as_deref()
                .is_some_and(|h| ct_eq(h.as_bytes(), hash_secret(sent).as_bytes()));
            if !ok {
                return Err(OAuthError::invalid_request("client_secret does not match"));
            }
        }
        let metadata = validate(
            parse_metadata(body)?,
            &self.settings.scopes,
            self.settings.registration.private_use_schemes,
        )?;
        let mut new_secret = None;
        if metadata.token_endpoint_auth_method.as_deref() == Some(AUTH_NONE) {
            c.secret_hash = None;
        } else if c.secret_hash.is_none() {
            let s = random_token(32)?;
            c.secret_hash = Some(hash_secret(&s));
            new_secret = Some(s);
        }
        c.metadata = metadata;
        let ttl = self.client_ttl(&c);
        put_json(self.store.as_ref(), Namespace::Clients, client_id, &c, ttl).await?;
        tracing::info!(client_id, "client registration updated");
        let mut resp = self.registration_response(&c);
        resp.client_secret = new_secret;
        Ok(resp)
    }

    /// `DELETE /register/{client_id}` (RFC 7592 §2.3): deletes the client
    /// and revokes its tokens.
    pub(crate) async fn registration_delete(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<(), OAuthError> {
        self.managed_client(client_id, token).await?;
        self.delete_client(client_id).await
    }
}
