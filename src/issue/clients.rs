//! Finding and authenticating clients: registered ones from the store, and
//! Client ID Metadata Documents (an https `client_id` names its own
//! metadata; its rules are in `cimd.rs`, its cache here).

use crate::domain::secret::{ct_eq, ClientSecret};
use crate::issue::cimd::{document_metadata, is_metadata_url, valid_metadata_url};
use crate::issue::client_metadata::{AUTH_BASIC, AUTH_NONE, AUTH_POST};
use crate::issue::error::{ErrorCode, OAuthError};
use crate::issue::records::{get_json, hash_secret, put_json, ClientRecord, ClientSource};
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;

/// How the client presented its credentials at the token, revocation or
/// introspection endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Only a `client_id` (public client).
    None,
    /// HTTP Basic.
    Basic,
    /// `client_secret` in the form body.
    Post,
}

/// Unverified client credentials from a request.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub secret: Option<ClientSecret>,
    pub method: AuthMethod,
}

// === impl Issuer ===

impl Issuer {
    /// Finds a client. Unknown and expired registrations are `Ok(None)`;
    /// a metadata document that cannot be used is an `invalid_client` error
    /// with a safe description.
    pub(crate) async fn lookup_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, OAuthError> {
        if is_metadata_url(client_id) {
            if !self.settings.cimd.enabled || self.fetcher.is_none() {
                return Ok(None);
            }
            return self.metadata_client(client_id).await.map(Some);
        }
        let rec: Option<ClientRecord> =
            get_json(self.store.as_ref(), Namespace::Clients, client_id).await?;
        Ok(rec.filter(|c| c.expires_at.is_none_or(|e| e > self.now())))
    }

    async fn metadata_client(&self, url: &str) -> Result<ClientRecord, OAuthError> {
        let invalid = |d: &str| OAuthError::invalid_client(d.to_owned());
        if !valid_metadata_url(url) {
            return Err(invalid("malformed client_id metadata URL"));
        }
        let cached: Option<ClientRecord> =
            get_json(self.store.as_ref(), Namespace::ClientMetadataCache, url).await?;
        if let Some(c) = cached {
            return Ok(c);
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(invalid("client metadata documents are not supported"));
        };
        let doc = fetcher
            .fetch(url)
            .await
            .map_err(|e| invalid("could not fetch the client metadata document").with_cause(e))?;
        let meta = document_metadata(
            url,
            &doc.body,
            &self.settings.scopes,
            self.settings.registration.private_use_schemes,
        )?;
        let now = self.now();
        let rec = ClientRecord {
            client_id: url.to_owned(),
            source: ClientSource::MetadataDocument,
            secret_hash: None,
            registration_token_hash: None,
            metadata: meta,
            client_id_issued_at: now,
            client_secret_expires_at: 0,
            expires_at: None,
        };
        let c = &self.settings.cimd;
        let ttl = doc
            .max_age
            .unwrap_or(c.default_cache)
            .clamp(c.min_cache, c.max_cache);
        put_json(
            self.store.as_ref(),
            Namespace::ClientMetadataCache,
            url,
            &rec,
            Some(ttl),
        )
        .await?;
        Ok(rec)
    }

    /// Authenticates a client (RFC 6749 §2.3.1): a client with a secret must
    /// present it (Basic or post); a public client must not send one.
    pub(crate) async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<ClientRecord, OAuthError> {
        let basic = creds.method == AuthMethod::Basic;
        let fail = |d: &str| OAuthError::invalid_client(d.to_owned()).with_basic_challenge(basic);
        let Some(client_id) = creds.client_id.as_deref() else {
            return Err(fail("client authentication required"));
        };
        let client = match self.lookup_client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(fail("client authentication failed")),
            Err(e) if e.code == ErrorCode::InvalidClient => {
                return Err(e.with_basic_challenge(basic))
            }
            Err(e) => return Err(e),
        };
        match (&client.secret_hash, &creds.secret) {
            (Some(hash), Some(secret)) => {
                let ok = ct_eq(hash.as_bytes(), hash_secret(secret.secret()).as_bytes());
                let expired = client.client_secret_expires_at != 0
                    && client.client_secret_expires_at <= self.now();
                if !ok || expired {
                    tracing::info!(client_id, "client authentication failed");
                    return Err(fail("client authentication failed"));
                }
            }
            (Some(_), None) => return Err(fail("client authentication required")),
            (None, Some(_)) => return Err(fail("public clients have no secret")),
            (None, None) => {}
        }
        // The method registered is the only one accepted (RFC 7591 §2): a
        // secret leaked through one channel cannot be replayed through the
        // other, and a public client cannot turn confidential.
        let registered = client
            .metadata
            .token_endpoint_auth_method
            .as_deref()
            .unwrap_or(AUTH_BASIC);
        let sent = match creds.method {
            AuthMethod::None => AUTH_NONE,
            AuthMethod::Basic => AUTH_BASIC,
            AuthMethod::Post => AUTH_POST,
        };
        if registered != sent {
            tracing::info!(
                client_id,
                registered,
                sent,
                "client used another auth method"
            );
            return Err(fail(
                "use the client's registered token_endpoint_auth_method",
            ));
        }
        Ok(client)
    }

    /// Deletes a client and revokes every token issued to it.
    pub async fn delete_client(&self, client_id: &str) -> Result<(), OAuthError> {
        self.store.delete(Namespace::Clients, client_id).await?;
        self.revoke_client_tokens(client_id).await?;
        tracing::info!(client_id, "client deleted");
        Ok(())
    }
}
