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
    decode_json, derived_jti, generation_key, get_json, hash_secret, random_token, take_json,
    ClientRecord, CodeRecord, FamilyRecord, Grant, RedeemedCode, RefreshRecord, RotatedRefresh,
};
use crate::issue::service::Issuer;
use crate::issue::store::{Namespace, Op, OpResult, StoreError};
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

/// The record (in [`Namespace::RotatedRefresh`]) that answers a retry of
/// a rotated refresh token within the grace window.
fn grace_key(refresh_hash: &str) -> String {
    format!("grace:{refresh_hash}")
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, OAuthError> {
    serde_json::to_vec(v).map_err(OAuthError::server_error)
}

/// A record from a batch result.
fn parse<T: serde::de::DeserializeOwned>(
    r: Option<OpResult>,
    ns: Namespace,
) -> Result<Option<T>, StoreError> {
    decode_json(ns, r.and_then(OpResult::into_value))
}

/// Where a new access token's `jti` comes from: a family's generation
/// counter (bucket, count), see [`derived_jti`].
#[derive(Debug, Clone, Copy)]
struct Generation {
    bucket: u64,
    n: u64,
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
        let tomb = to_json(&RedeemedCode {
            family_id: family_id.clone(),
        })?;
        let family = to_json(&FamilyRecord {
            client_id: g.client_id.clone(),
            sub: g.user.subject.clone(),
            created_at: self.now(),
            revoked: false,
            current_refresh: None,
            access: Vec::new(),
            grant: Some(rec.grant.clone()),
        })?;
        let bucket = self.generation_bucket();
        let gen_key = generation_key(&family_id, bucket);
        let res = store
            .batch(&[
                Op::Put {
                    ns: Namespace::Codes,
                    key: &redeemed_key(&key),
                    value: &tomb,
                    ttl: Some(self.settings.refresh_ttl),
                },
                Op::Put {
                    ns: Namespace::Families,
                    key: &family_id,
                    value: &family,
                    ttl: Some(self.family_ttl()),
                },
                self.generation_op(&gen_key),
            ])
            .await?;
        let n = res.get(2).map(OpResult::count).unwrap_or(0);
        let with_refresh = client
            .metadata
            .grant_types
            .iter()
            .any(|g| g == GRANT_REFRESH);
        self.issue_tokens(
            &rec.grant,
            &rec.grant,
            &family_id,
            with_refresh,
            Some(Generation { bucket, n }),
        )
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
        let (scope, grant_kept) = self.refresh_checks(&rec, &req, client).await?;
        // The tombstone goes in before the token is taken, so that a
        // parallel refresh losing the take below finds it (and its grace
        // window); put_if_absent keeps the first rotation time.
        // The long-lived tombstone (reuse detection, for the refresh
        // lifetime) stays small. A retry within the grace window takes the
        // grant from the family's record; families of older issuers have
        // none there, and get a grace record with the grant that lives as
        // long as the window.
        let now = self.now();
        let tombstone = to_json(&RotatedRefresh {
            family_id: rec.family_id.clone(),
            rotated_at: now,
            grant: None,
            issued_at: rec.issued_at,
        })?;
        let grace = self.settings.refresh_grace;
        // The grace record (its key and value), for families of older
        // issuers only.
        let in_grace = if grace.is_zero() || grant_kept {
            None
        } else {
            let value = to_json(&RotatedRefresh {
                family_id: rec.family_id.clone(),
                rotated_at: now,
                grant: Some(rec.grant.clone()),
                issued_at: rec.issued_at,
            })?;
            Some((grace_key(&key), value))
        };
        let ttl = Some(self.settings.refresh_ttl);
        let bucket = self.generation_bucket();
        let gen_key = generation_key(&rec.family_id, bucket);
        // One round trip: the tombstones, the take, and the new access
        // token's generation (wasted if the take loses: a jti that is
        // never issued costs a revocation nothing but an extra entry).
        let mut ops = vec![
            Op::PutIfAbsent {
                ns: Namespace::RotatedRefresh,
                key: &key,
                value: &tombstone,
                ttl,
            },
            Op::Take {
                ns: Namespace::Refresh,
                key: &key,
            },
            self.generation_op(&gen_key),
        ];
        if let Some((gkey, value)) = &in_grace {
            // Two seconds past the window: it is counted in whole seconds.
            ops.push(Op::PutIfAbsent {
                ns: Namespace::RotatedRefresh,
                key: gkey,
                value,
                ttl: Some(grace + std::time::Duration::from_secs(2)),
            });
        }
        let res = store.batch(&ops).await?;
        let n = res.get(2).map(OpResult::count).unwrap_or(0);
        let taken: Option<RefreshRecord> = parse(res.into_iter().nth(1), Namespace::Refresh)?;
        if taken.is_none() {
            return self.refresh_rotated(&key, &req, client).await;
        }
        self.issue_refreshed(&rec, scope, Some(Generation { bucket, n }))
            .await
    }

    /// The checks every refresh passes (also one within the grace window):
    /// same client, family and subject not revoked, same resource, scope
    /// within the grant. Returns the scope of the new access token, and
    /// whether the family's record keeps the grant.
    async fn refresh_checks(
        &self,
        rec: &RefreshRecord,
        req: &TokenRequest,
        client: &ClientRecord,
    ) -> Result<(Scopes, bool), OAuthError> {
        let g = &rec.grant;
        if g.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "refresh token was issued to another client",
            ));
        }
        let state = self
            .grant_state(&rec.family_id, &g.user.subject, &g.client_id, rec.issued_at)
            .await?;
        if state.revoked {
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
                Ok((s, state.grant_kept))
            }
            _ => Ok((granted, state.grant_kept)),
        }
    }

    /// A new pair for a refresh token that passed [`Self::refresh_checks`].
    async fn issue_refreshed(
        &self,
        rec: &RefreshRecord,
        scope: Scopes,
        generation: Option<Generation>,
    ) -> Result<TokenResponse, OAuthError> {
        // The refresh token keeps the original grant, so later refreshes may
        // widen back up to it; the access token gets the narrowed scope.
        let access_grant = Grant {
            scope: scope.to_string(),
            ..rec.grant.clone()
        };
        self.issue_tokens(&access_grant, &rec.grant, &rec.family_id, true, generation)
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
        let gkey = grace_key(key);
        let res = store
            .batch(&[
                Op::Get {
                    ns: Namespace::RotatedRefresh,
                    key,
                },
                Op::Get {
                    ns: Namespace::RotatedRefresh,
                    key: &gkey,
                },
            ])
            .await?;
        let mut it = res.into_iter();
        let tomb: Option<RotatedRefresh> = parse(it.next(), Namespace::RotatedRefresh)?;
        let in_grace: Option<RotatedRefresh> = parse(it.next(), Namespace::RotatedRefresh)?;
        if let Some(RotatedRefresh {
            family_id,
            rotated_at,
            grant,
            issued_at,
        }) = tomb
        {
            if grace > 0 && rotated_at > 0 && self.now() < rotated_at.saturating_add(grace) {
                // The grant: in the family's record; in a grace record for
                // families of older issuers; in the tombstone itself from
                // older issuers still.
                let grant = match grant {
                    Some(g) => Some(g),
                    None => match in_grace.filter(|g| g.family_id == family_id) {
                        Some(g) => g.grant,
                        None => get_json::<FamilyRecord>(store, Namespace::Families, &family_id)
                            .await?
                            .and_then(|f| f.grant),
                    },
                };
                let Some(grant) = grant else {
                    return Err(self.refresh_reused(key).await);
                };
                let rec = RefreshRecord {
                    family_id,
                    grant,
                    issued_at,
                };
                let (scope, _) = self.refresh_checks(&rec, req, client).await?;
                tracing::info!(family = %rec.family_id, client_id = %client.client_id, "rotated refresh token used again within the grace window; issuing a fresh pair");
                return self.issue_refreshed(&rec, scope, None).await;
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
            // The tombstone is small (no grant); the family record names
            // who the chain belongs to.
            let (client_id, sub) = match r.grant.as_ref() {
                Some(g) => (g.client_id.clone(), g.user.subject.clone()),
                None => get_json::<FamilyRecord>(store, Namespace::Families, &r.family_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|f| (f.client_id, f.sub))
                    .unwrap_or_default(),
            };
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

    /// The generation bucket of now; buckets are as long as an access
    /// token is accepted for (see [`derived_jti`]).
    pub(crate) fn generation_bucket(&self) -> u64 {
        crate::issue::records::generation_bucket(self.now(), self.generation_width())
    }

    /// The length of a generation bucket, in seconds.
    pub(crate) fn generation_width(&self) -> u64 {
        self.max_token_lifetime().as_secs().max(1)
    }

    /// Increments a family's generation counter for a bucket; the counter
    /// outlives every token of its bucket and the revocations that read it.
    fn generation_op<'a>(&self, gen_key: &'a str) -> Op<'a> {
        Op::Incr {
            ns: Namespace::Families,
            key: gen_key,
            window: std::time::Duration::from_secs(self.generation_width() * 4),
        }
    }

    /// How long a family record is kept: past the end of the grant's
    /// absolute lifetime and its last access token.
    pub(crate) fn family_ttl(&self) -> std::time::Duration {
        self.settings
            .refresh_max_lifetime
            .max(self.settings.refresh_ttl)
            + self.max_token_lifetime()
    }

    /// Signs an access token for a grant with the given `jti`.
    fn sign_access(&self, g: &Grant, jti: String) -> Result<(String, AccessClaims), OAuthError> {
        let now = self.now();
        let exp = now + self.settings.access_ttl.as_secs();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: g.user.subject.clone(),
            aud: Audience::One(g.resource.clone()),
            exp,
            iat: now,
            nbf: None,
            jti,
            client_id: Some(g.client_id.clone()),
            scope: Some(g.scope.clone()).filter(|s| !s.is_empty()),
            username: g.user.username.clone(),
            email: g.user.email.clone().filter(|_| g.user.email_verified),
            name: g.user.name.clone(),
        };
        let token = self.keys.sign(&claims).map_err(OAuthError::server_error)?;
        Ok((token, claims))
    }

    /// Issues an access token for `g` (and a refresh token carrying
    /// `refresh_grant` in `family_id`). `generation` is the access token's
    /// place in the family, if the caller already counted it.
    async fn issue_tokens(
        &self,
        g: &Grant,
        refresh_grant: &Grant,
        family_id: &str,
        with_refresh: bool,
        generation: Option<Generation>,
    ) -> Result<TokenResponse, OAuthError> {
        let store = self.store.as_ref();
        let generation = match generation {
            Some(gen) if gen.n > 0 => gen,
            _ => {
                let bucket = self.generation_bucket();
                let gen_key = generation_key(family_id, bucket);
                let res = store.batch(&[self.generation_op(&gen_key)]).await?;
                let n = res.first().map(OpResult::count).unwrap_or(0);
                if n == 0 {
                    return Err(OAuthError::server_error("generation counter failed"));
                }
                Generation { bucket, n }
            }
        };
        let jti = derived_jti(family_id, generation.bucket, generation.n);
        let (access_token, claims) = self.sign_access(g, jti)?;
        let mut refresh_token = None;
        let mut refresh_key = None;
        let mut refresh_rec = Vec::new();
        if with_refresh {
            let rt = random_token(32)?;
            refresh_key = Some(hash_secret(&rt));
            refresh_rec = to_json(&RefreshRecord {
                family_id: family_id.to_owned(),
                grant: refresh_grant.clone(),
                issued_at: self.now(),
            })?;
            refresh_token = Some(rt);
        }
        let tomb = crate::issue::revoke::family_tombstone(family_id);
        // No record of the access token itself: it is a signed JWT, and
        // what can make it inactive before it expires is a revocation,
        // which the revocation records hold (see introspect).
        let mut ops = vec![
            Op::Get {
                ns: Namespace::Families,
                key: &tomb,
            },
            Op::Get {
                ns: Namespace::Families,
                key: family_id,
            },
        ];
        if let Some(k) = refresh_key.as_deref() {
            ops.insert(
                0,
                Op::Put {
                    ns: Namespace::Refresh,
                    key: k,
                    value: &refresh_rec,
                    ttl: Some(self.settings.refresh_ttl),
                },
            );
        }
        let mut res = store.batch(&ops).await?;
        // A revocation that raced with this issue either counted this
        // token's generation (it read the counter after our increment) or
        // wrote its tombstone before that read, so before our increment,
        // and so before the read just above.
        let family: Option<FamilyRecord> = parse(res.pop(), Namespace::Families)?;
        let tombstone = res.pop().and_then(OpResult::into_value).is_some();
        if tombstone || family.is_some_and(|f| f.revoked) {
            self.revoke_jti(&claims.jti, claims.exp).await?;
            if let Some(k) = refresh_key.as_deref() {
                store.delete(Namespace::Refresh, k).await?;
            }
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
