//! RFC 7662 token introspection. Callers are authenticated confidential
//! clients (their own tokens) or the operator (any token). Anything invalid,
//! expired, revoked or not the caller's is just `{"active": false}`.

use crate::domain::claims::Audience;
use crate::domain::revocation::Revocation;
use crate::issue::records::{get_json, hash_secret, RefreshRecord};
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;
use serde::Serialize;

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Introspector {
    /// A client: sees only tokens issued to it.
    Client(String),
    /// The operator (admin token): sees everything.
    Admin,
}

/// RFC 7662 §2.2 response.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

fn may_see(who: &Introspector, client_id: &str) -> bool {
    match who {
        Introspector::Admin => true,
        Introspector::Client(c) => c == client_id,
    }
}

// === impl Issuer ===

impl Issuer {
    /// `POST /introspect`. Storage failures are errors; everything else
    /// about the token is `active: false`.
    pub async fn introspect(
        &self,
        who: &Introspector,
        token: &str,
    ) -> Result<Introspection, crate::issue::error::OAuthError> {
        let now = self.now();
        let inactive = Introspection::default();
        if let Some(c) = self.keys.decode(token, &self.settings.issuer) {
            let client_id = c.client_id.clone().unwrap_or_default();
            // Revoked = a revocation record for its jti (written before
            // the revocation is published, kept until the token expires).
            let key = Revocation::Jti {
                id: c.jti.clone(),
                exp: c.exp,
            }
            .record_key();
            let revoked = self.store.get(Namespace::Revocations, &key).await?;
            let live = c.exp > now
                && revoked.is_none()
                && may_see(who, &client_id)
                && !self.revoked_by_watermark(&c.sub, &client_id, c.iat).await?;
            if !live {
                return Ok(inactive);
            }
            return Ok(Introspection {
                active: true,
                scope: c.scope,
                client_id: c.client_id,
                username: c.username,
                token_type: Some("Bearer".into()),
                exp: Some(c.exp),
                iat: Some(c.iat),
                sub: Some(c.sub),
                aud: Some(c.aud),
                iss: Some(c.iss),
                jti: Some(c.jti),
            });
        }
        let store = self.store.as_ref();
        let Some(r) =
            get_json::<RefreshRecord>(store, Namespace::Refresh, &hash_secret(token)).await?
        else {
            return Ok(inactive);
        };
        let g = &r.grant;
        let live = may_see(who, &g.client_id)
            && !self
                .grant_revoked(&r.family_id, &g.user.subject, &g.client_id, r.issued_at)
                .await?;
        if !live {
            return Ok(inactive);
        }
        Ok(Introspection {
            active: true,
            scope: Some(g.scope.clone()),
            client_id: Some(g.client_id.clone()),
            username: g.user.username.clone(),
            token_type: Some("refresh_token".into()),
            exp: Some(r.issued_at + self.settings.refresh_ttl.as_secs()),
            iat: Some(r.issued_at),
            sub: Some(g.user.subject.clone()),
            aud: Some(Audience::One(g.resource.clone())),
            iss: Some(self.settings.issuer.clone()),
            jti: None,
        })
    }
}
