//! The token endpoint (RFC 6749 §4.1.3 and §6, OAuth 2.1): the
//! authorization_code grant (one-time codes, PKCE S256, replay revokes what
//! the code produced) and the refresh_token grant (rotation on every use;
//! reuse of a rotated token revokes the whole family).

use crate::domain::claims::{AccessClaims, Audience, Scopes};
use crate::domain::secret::{PkceVerifier, RefreshToken};
use crate::issue::client_metadata::{GRANT_CODE, GRANT_REFRESH};
use crate::issue::clients::ClientCredentials;
use crate::issue::error::{ErrorCode, OAuthError};
use crate::issue::pkce;
use crate::issue::records::{
    get_json, hash_secret, put_json, random_token, take_json, AccessRecord, ClientRecord,
    CodeRecord, FamilyRecord, Grant, RedeemedCode, RefreshRecord, RotatedRefresh,
};
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;
use serde::Serialize;

/// A token request, as sent (form fields; `resource` may repeat).
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<PkceVerifier>,
    pub refresh_token: Option<RefreshToken>,
    pub scope: Option<String>,
    pub resource: Vec<String>,
    pub client: ClientCredentials,
}

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// Who the tokens went to, for the audit log (not sent to the client).
    #[serde(skip)]
    pub issued: IssuedTo,
}

/// The subject, client and resource (audience) of issued tokens.
#[derive(Debug, Clone, Default)]
pub struct IssuedTo {
    pub sub: String,
    pub client_id: String,
    pub resource: String,
}

fn redeemed_key(code_hash: &str) -> String {
    format!("redeemed:{code_hash}")
}

// === impl Issuer ===

impl Issuer {
    /// `POST /token`.
    pub async fn token(&self, req: TokenRequest) -> Result<TokenResponse, OAuthError> {
        let grant_type = req
            .grant_type
            .clone()
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        if grant_type != GRANT_CODE && grant_type != GRANT_REFRESH {
            return Err(OAuthError::bare(ErrorCode::UnsupportedGrantType));
        }
        let client = self.authenticate_client(&req.client).await?;
        if !client.metadata.grant_types.contains(&grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use this grant type",
            ));
        }
        if grant_type == GRANT_CODE {
            self.code_grant(req, &client).await
        } else {
            self.refresh_grant(req, &client).await
        }
    }

    async fn code_grant(
        &self,
        req: TokenRequest,
        client: &ClientRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let code = req
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let verifier = req
            .code_verifier
            .as_ref()
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
        let key = hash_secret(code);
        let store = self.store.as_ref();
        let Some(rec) = get_json::<CodeRecord>(store, Namespace::Codes, &key).await? else {
            return Err(self.code_replayed(&key).await);
        };
        let g = &rec.grant;
        if g.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "code was issued to another client",
            ));
        }
        let redirect_ok = match req.redirect_uri.as_deref() {
            Some(r) => r == rec.redirect_uri,
            None => !rec.redirect_uri_sent,
        };
        if !redirect_ok {
            return Err(OAuthError::invalid_grant("redirect_uri does not match"));
        }
        if !pkce::verify(&rec.code_challenge, verifier) {
            return Err(OAuthError::invalid_grant("PKCE verification failed"));
        }
        self.check_same_resource(&req.resource, &g.resource)?;
        // Consume atomically: of concurrent redemptions, one wins.
        if take_json::<CodeRecord>(store, Namespace::Codes, &key)
            .await?
            .is_none()
        {
            return Err(self.code_replayed(&key).await);
        }
        let family_id = random_token(16)?;
        let tomb = RedeemedCode {
            family_id: family_id.clone(),
        };
        let ttl = Some(self.settings.refresh_ttl);
        put_json(store, Namespace::Codes, &redeemed_key(&key), &tomb, ttl).await?;
        let with_refresh = client
            .metadata
            .grant_types
            .iter()
            .any(|g| g == GRANT_REFRESH);
        self.issue_tokens(&rec.grant, &rec.grant, &family_id, with_refresh)
            .await
    }

    /// An unknown code: if it was redeemed before, revoke what it produced
    /// (RFC 6749 §4.1.2). Always `invalid_grant`.
    async fn code_replayed(&self, key: &str) -> OAuthError {
        let store = self.store.as_ref();
        if let Ok(Some(t)) =
            get_json::<RedeemedCode>(store, Namespace::Codes, &redeemed_key(key)).await
        {
            tracing::warn!(family = %t.family_id, "authorization code replayed; revoking its tokens");
            if let Err(e) = self.revoke_family(&t.family_id).await {
                // Not acknowledged: the redeemed-code record stays, so a
                // retry revokes (and publishes) again.
                tracing::error!(error = %e.log_detail(), "revoking a replayed code's tokens failed");
                return e;
            }
        }
        OAuthError::invalid_grant("invalid or expired code")
    }

    fn check_same_resource(&self, sent: &[String], granted: &str) -> Result<(), OAuthError> {
        if sent.is_empty() {
            return Ok(());
        }
        let r = self.resolve_resource(sent)?;
        if r.resource != granted {
            return Err(OAuthError::invalid_target(
                "resource differs from the grant",
            ));
        }
        Ok(())
    }

    async fn refresh_grant(
        &self,
        req: TokenRequest,
        client: &ClientRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let rt = req
            .refresh_token
            .as_ref()
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let key = hash_secret(rt.secret());
        let store = self.store.as_ref();
        let Some(rec) = get_json::<RefreshRecord>(store, Namespace::Refresh, &key).await? else {
            return self.refresh_rotated(&key, &req, client).await;
        };
        let scope = self.refresh_checks(&rec, &req, client).await?;
        // The tombstone goes in before the token is taken, so that a
        // parallel refresh losing the take below finds it (and its grace
        // window); put_if_absent keeps the first rotation time.
        let rotated = RotatedRefresh {
            family_id: rec.family_id.clone(),
            rotated_at: self.now(),
            grant: Some(rec.grant.clone()),
            issued_at: rec.issued_at,
        };
        let ttl = Some(self.settings.refresh_ttl);
        let bytes = serde_json::to_vec(&rotated).map_err(OAuthError::server_error)?;
        store
            .put_if_absent(Namespace::RotatedRefresh, &key, &bytes, ttl)
            .await?;
        if take_json::<RefreshRecord>(store, Namespace::Refresh, &key)
            .await?
            .is_none()
        {
            return self.refresh_rotated(&key, &req, client).await;
        }
        self.issue_refreshed(&rec, scope).await
    }

    /// The checks every refresh passes (also one within the grace window):
    /// same client, family and subject not revoked, same resource, scope
    /// within the grant. Returns the scope of the new access token.
    async fn refresh_checks(
        &self,
        rec: &RefreshRecord,
        req: &TokenRequest,
        client: &ClientRecord,
    ) -> Result<Scopes, OAuthError> {
        let g = &rec.grant;
        if g.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "refresh token was issued to another client",
            ));
        }
        if self.family_revoked(&rec.family_id).await?
            || self
                .revoked_by_watermark(&g.user.subject, &g.client_id, rec.issued_at)
                .await?
        {
            return Err(OAuthError::invalid_grant("refresh token revoked"));
        }
        // The absolute lifetime, besides the sliding refresh_ttl: counted
        // from the login, which rotation carries along unchanged.
        let max = self.settings.refresh_max_lifetime.as_secs();
        if self.now() >= g.auth_time.saturating_add(max) {
            return Err(OAuthError::invalid_grant(
                "the grant reached its maximum lifetime; log in again",
            ));
        }
        self.check_same_resource(&req.resource, &g.resource)?;
        let granted = Scopes::parse(&g.scope);
        match req.scope.as_deref().map(Scopes::parse) {
            Some(s) if !s.is_empty() => {
                if !granted.is_superset(&s) {
                    return Err(OAuthError::invalid_scope(
                        "scope exceeds the original grant",
                    ));
                }
                Ok(s)
            }
            _ => Ok(granted),
        }
    }

    /// A new pair for a refresh token that passed [`Self::refresh_checks`].
    async fn issue_refreshed(
        &self,
        rec: &RefreshRecord,
        scope: Scopes,
    ) -> Result<TokenResponse, OAuthError> {
        // The refresh token keeps the original grant, so later refreshes may
        // widen back up to it; the access token gets the narrowed scope.
        let access_grant = Grant {
            scope: scope.to_string(),
            ..rec.grant.clone()
        };
        self.issue_tokens(&access_grant, &rec.grant, &rec.family_id, true)
            .await
    }

    /// A refresh token that is not live. Rotated less than the grace window
    /// ago (RFC 9700 §4.14.2: a retry after a lost response, two tabs
    /// refreshing at once): a fresh pair in the same family, which the
    /// family's revocation covers like every other member. Otherwise reuse.
    async fn refresh_rotated(
        &self,
        key: &str,
        req: &TokenRequest,
        client: &ClientRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let grace = self.settings.refresh_grace.as_secs();
        let store = self.store.as_ref();
        let tomb = get_json::<RotatedRefresh>(store, Namespace::RotatedRefresh, key).await?;
        if let Some(RotatedRefresh {
            family_id,
            rotated_at,
            grant: Some(grant),
            issued_at,
        }) = tomb
        {
            if grace > 0 && rotated_at > 0 && self.now() < rotated_at.saturating_add(grace) {
                let rec = RefreshRecord {
                    family_id,
                    grant,
                    issued_at,
                };
                let scope = self.refresh_checks(&rec, req, client).await?;
                tracing::info!(family = %rec.family_id, client_id = %client.client_id, "rotated refresh token used again within the grace window; issuing a fresh pair");
                return self.issue_refreshed(&rec, scope).await;
            }
        }
        Err(self.refresh_reused(key).await)
    }

    /// An unknown refresh token: if it was rotated away, this is reuse and
    /// the family is revoked. Always `invalid_grant`.
    async fn refresh_reused(&self, key: &str) -> OAuthError {
        let store = self.store.as_ref();
        if let Ok(Some(r)) = get_json::<RotatedRefresh>(store, Namespace::RotatedRefresh, key).await
        {
            let (client_id, sub) = r.grant.as_ref().map_or(("", ""), |g| {
                (g.client_id.as_str(), g.user.subject.as_str())
            });
            // An audit event (target `mcpgate::audit`, see the issuer adapter's audit module).
            tracing::warn!(target: "mcpgate::audit", event = "refresh_reuse_detected", result = "family_revoked", family = %r.family_id, client_id = %client_id, sub = %sub, "rotated refresh token reused; revoking the family");
            if let Err(e) = self.revoke_family(&r.family_id).await {
                // Not acknowledged: the rotated-token record stays, so a
                // retry revokes (and publishes) again.
                tracing::error!(error = %e.log_detail(), "revoking a refresh family failed");
                return e;
            }
        }
        OAuthError::invalid_grant("invalid or expired refresh token")
    }

    /// Signs an access token for a grant and records its `jti`.
    pub async fn mint_access(
        &self,
        g: &Grant,
        family_id: Option<&str>,
    ) -> Result<(String, AccessClaims), OAuthError> {
        let now = self.now();
        let exp = now + self.settings.access_ttl.as_secs();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: g.user.subject.clone(),
            aud: Audience::One(g.resource.clone()),
            exp,
            iat: now,
            nbf: None,
            jti: random_token(16)?,
            client_id: Some(g.client_id.clone()),
            scope: Some(g.scope.clone()).filter(|s| !s.is_empty()),
            username: g.user.username.clone(),
            email: g.user.email.clone().filter(|_| g.user.email_verified),
            name: g.user.name.clone(),
        };
        let token = self.keys.sign(&claims).map_err(OAuthError::server_error)?;
        let rec = AccessRecord {
            client_id: g.client_id.clone(),
            sub: g.user.subject.clone(),
            family_id: family_id.map(str::to_owned),
            exp,
        };
        let ttl = Some(self.settings.access_ttl);
        put_json(
            self.store.as_ref(),
            Namespace::AccessTokens,
            &claims.jti,
            &rec,
            ttl,
        )
        .await?;
        if let Some(fid) = family_id {
            self.family_add_access(fid, g, &claims.jti, exp).await?;
        }
        Ok((token, claims))
    }

    async fn family_add_access(
        &self,
        fid: &str,
        g: &Grant,
        jti: &str,
        exp: u64,
    ) -> Result<(), OAuthError> {
        let store = self.store.as_ref();
        let now = self.now();
        let mut f = get_json::<FamilyRecord>(store, Namespace::Families, fid)
            .await?
            .unwrap_or(FamilyRecord {
                client_id: g.client_id.clone(),
                sub: g.user.subject.clone(),
                created_at: now,
                revoked: false,
                current_refresh: None,
                access: Vec::new(),
            });
        f.access.retain(|(_, e)| *e > now);
        f.access.push((jti.to_owned(), exp));
        let ttl = Some(self.settings.refresh_ttl.max(self.settings.access_ttl));
        put_json(store, Namespace::Families, fid, &f, ttl).await?;
        Ok(())
    }

    /// Issues an access token for `g` (and a refresh token carrying
    /// `refresh_grant` in `family_id`).
    async fn issue_tokens(
        &self,
        g: &Grant,
        refresh_grant: &Grant,
        family_id: &str,
        with_refresh: bool,
    ) -> Result<TokenResponse, OAuthError> {
        let (access_token, claims) = self.mint_access(g, Some(family_id)).await?;
        let mut refresh_token = None;
        if with_refresh {
            let rt = random_token(32)?;
            let key = hash_secret(&rt);
            let rec = RefreshRecord {
                family_id: family_id.to_owned(),
                grant: refresh_grant.clone(),
                issued_at: self.now(),
            };
            let ttl = Some(self.settings.refresh_ttl);
            put_json(self.store.as_ref(), Namespace::Refresh, &key, &rec, ttl).await?;
            let store = self.store.as_ref();
            if let Some(mut f) =
                get_json::<FamilyRecord>(store, Namespace::Families, family_id).await?
            {
                f.current_refresh = Some(key);
                put_json(store, Namespace::Families, family_id, &f, ttl).await?;
            }
            refresh_token = Some(rt);
        }
        // A revocation that raced with this issue either saw the new
        // tokens in the family record or left its tombstone for us to see.
        if self.family_revoked(family_id).await? {
            // This token may be missing from a family record saved by the
            // racing revocation: publish it by itself first.
            self.revoke_jti(&claims.jti, claims.exp).await?;
            self.revoke_family(family_id).await?;
            return Err(OAuthError::invalid_grant("refresh token revoked"));
        }
        tracing::info!(client_id = %g.client_id, sub = %g.user.subject, family = family_id, "tokens issued");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.access_ttl.as_secs(),
            refresh_token,
            scope: g.scope.clone(),
            issued: IssuedTo {
                sub: g.user.subject.clone(),
                client_id: g.client_id.clone(),
                resource: g.resource.clone(),
            },
        })
    }
}
