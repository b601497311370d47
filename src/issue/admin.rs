//! The operator's view: list and delete clients, check the admin token.

use crate::issue::error::OAuthError;
use crate::issue::records::ClientRecord;
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;
use serde::Serialize;

/// A client as the admin API lists it (no secrets or hashes).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClientSummary {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub(crate) client_id_issued_at: u64,
    pub expires_at: Option<u64>,
}

// === impl Issuer ===

impl Issuer {
    /// Whether `unverified` is the configured admin token (constant time);
    /// always false when none is configured.
    pub(crate) fn admin_authorized(&self, unverified: Option<&str>) -> bool {
        match (&self.settings.admin_token, unverified) {
            (Some(t), Some(u)) => t.matches(u),
            _ => false,
        }
    }

    pub(crate) async fn admin_list_clients(&self) -> Result<Vec<ClientSummary>, OAuthError> {
        let now = self.now();
        let mut out = Vec::new();
        for (id, v) in self.store.list(Namespace::Clients).await? {
            let Ok(c) = serde_json::from_slice::<ClientRecord>(&v) else {
                tracing::warn!(client_id = %id, "unreadable client record");
                continue;
            };
            if c.expires_at.is_some_and(|e| e <= now) {
                continue;
            }
            out.push(ClientSummary {
                client_id: c.client_id,
                client_name: c.metadata.client_name,
                redirect_uris: c.metadata.redirect_uris,
                token_endpoint_auth_method: c.metadata.token_endpoint_auth_method,
                client_id_issued_at: c.client_id_issued_at,
                expires_at: c.expires_at,
            });
        }
        Ok(out)
    }

    /// Deletes a registered client (and revokes its tokens); false if unknown.
    pub(crate) async fn admin_delete_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        if self
            .store
            .get(Namespace::Clients, client_id)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        self.delete_client(client_id).await?;
        Ok(true)
    }
}
