//! Revocation: RFC 7009 `/revoke`, refresh families, and the operator's
//! revocations by subject or client. Access-token revocations are published
//! through the [`RevocationSink`](crate::domain::revocation::RevocationSink)
//! so every verifier drops the token at once.

use crate::domain::revocation::Revocation;
use crate::issue::error::OAuthError;
use crate::issue::records::{
    get_json, hash_secret, put_json, ClientRecord, FamilyRecord, RefreshRecord, Watermark,
};
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;

fn sub_mark(sub: &str) -> String {
    format!("wm:sub:{}", hash_secret(sub))
}

fn client_mark(client_id: &str) -> String {
    format!("wm:client:{client_id}")
}

fn family_tombstone(family_id: &str) -> String {
    format!("revoked:{family_id}")
}

// === impl Issuer ===

impl Issuer {
    /// Revokes a refresh family: its live refresh token and every unexpired
    /// access token issued in it.
    ///
    /// A tombstone key is written first and never rewritten, so a refresh
    /// racing with this cannot bring the family back by saving its record
    /// (see [`Issuer::family_revoked`]). The family record keeps its access
    /// tokens until every one is recorded and published, and only then is
    /// the refresh token deleted: a failure part way leaves everything a
    /// retry needs to publish again, so `Ok` means every verifier was told.
    pub async fn revoke_family(&self, family_id: &str) -> Result<(), OAuthError> {
        let store = self.store.as_ref();
        let ttl = Some(self.settings.refresh_ttl.max(self.settings.access_ttl));
        store
            .put(Namespace::Families, &family_tombstone(family_id), b"1", ttl)
            .await?;
        let Some(mut f) = get_json::<FamilyRecord>(store, Namespace::Families, family_id).await?
        else {
            return Ok(());
        };
        let now = self.now();
        for (jti, exp) in f.access.iter().filter(|(_, e)| *e > now) {
            self.revoke_jti(jti, *exp).await?;
        }
        if let Some(h) = f.current_refresh.take() {
            store.delete(Namespace::Refresh, &h).await?;
        }
        if !f.revoked {
            f.revoked = true;
            f.access.retain(|(_, e)| *e > now);
            let ttl = Some(self.settings.refresh_ttl.max(self.settings.access_ttl));
            put_json(store, Namespace::Families, family_id, &f, ttl).await?;
        }
        tracing::info!(family = family_id, client_id = %f.client_id, "refresh family revoked");
        Ok(())
    }

    /// Whether a family was revoked: its tombstone, or its record's flag.
    pub async fn family_revoked(&self, family_id: &str) -> Result<bool, OAuthError> {
        let store = self.store.as_ref();
        if store
            .get(Namespace::Families, &family_tombstone(family_id))
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let f = get_json::<FamilyRecord>(store, Namespace::Families, family_id).await?;
        Ok(f.is_none_or(|f| f.revoked))
    }

    /// Revokes one access token everywhere: recorded, published, and only
    /// then forgotten by introspection.
    pub async fn revoke_jti(&self, jti: &str, exp: u64) -> Result<(), OAuthError> {
        self.record_and_publish(Revocation::Jti {
            id: jti.to_owned(),
            exp,
        })
        .await?;
        self.store.delete(Namespace::AccessTokens, jti).await?;
        tracing::info!(jti, "access token revoked");
        Ok(())
    }

    /// Keeps `r` in the issuer's own store (until it no longer matters), then
    /// publishes it. The record is what [`Issuer::republish_revocations`]
    /// restores into a revocation store that lost data.
    pub async fn record_and_publish(&self, r: Revocation) -> Result<(), OAuthError> {
        let now = self.now();
        let until = r.expires_at(self.max_token_lifetime().as_secs());
        if until < now {
            return Ok(());
        }
        let ttl = Some(std::time::Duration::from_secs((until - now).max(1)));
        put_json(
            self.store.as_ref(),
            Namespace::Revocations,
            &r.record_key(),
            &r,
            ttl,
        )
        .await?;
        self.revocations.publish(r).await?;
        Ok(())
    }

    /// Re-stores every revocation still in force in the revocation store,
    /// publishing those it had lost; returns how many were missing.
    pub async fn republish_revocations(&self) -> Result<usize, OAuthError> {
        let now = self.now();
        let max = self.max_token_lifetime().as_secs();
        let mut all = Vec::new();
        for (key, v) in self.store.list(Namespace::Revocations).await? {
            match serde_json::from_slice::<Revocation>(&v) {
                Ok(r) if r.expires_at(max) >= now => all.push(r),
                Ok(_) => {}
                Err(e) => tracing::warn!(key, error = %e, "skipping unreadable revocation record"),
            }
        }
        Ok(self.revocations.ensure(&all).await?)
    }

    /// The longest an access token can be accepted for: its lifetime plus
    /// the clock skew verifiers tolerate.
    pub fn max_token_lifetime(&self) -> std::time::Duration {
        self.settings.access_ttl + std::time::Duration::from_secs(300)
    }

    async fn set_watermark(&self, key: &str) -> Result<u64, OAuthError> {
        let before = self.now();
        let ttl = Some(self.settings.refresh_ttl.max(self.settings.access_ttl));
        let wm = Watermark { before };
        put_json(self.store.as_ref(), Namespace::Families, key, &wm, ttl).await?;
        Ok(before)
    }

    /// Revokes every token issued so far to a client.
    pub async fn revoke_client_tokens(&self, client_id: &str) -> Result<(), OAuthError> {
        let before = self.set_watermark(&client_mark(client_id)).await?;
        self.record_and_publish(Revocation::Client {
            id: client_id.to_owned(),
            before,
        })
        .await?;
        tracing::info!(client_id, "all tokens of client revoked");
        Ok(())
    }

    /// Revokes every token issued so far to a user.
    pub async fn revoke_subject_tokens(&self, sub: &str) -> Result<(), OAuthError> {
        let before = self.set_watermark(&sub_mark(sub)).await?;
        self.record_and_publish(Revocation::Subject {
            id: sub.to_owned(),
            before,
        })
        .await?;
        tracing::info!(sub, "all tokens of subject revoked");
        Ok(())
    }

    /// Whether a token issued at `issued_at` falls under a subject or client
    /// revocation.
    pub async fn revoked_by_watermark(
        &self,
        sub: &str,
        client_id: &str,
        issued_at: u64,
    ) -> Result<bool, OAuthError> {
        let store = self.store.as_ref();
        for key in [sub_mark(sub), client_mark(client_id)] {
            if let Some(w) = get_json::<Watermark>(store, Namespace::Families, &key).await? {
                if issued_at <= w.before {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// `POST /revoke` (RFC 7009 §2.1) for an authenticated client: revokes
    /// its own refresh tokens (with their family) and access tokens. Unknown
    /// tokens, and other clients' tokens, are ignored (200).
    pub async fn revoke(
        &self,
        client: &ClientRecord,
        token: &str,
        hint: Option<&str>,
    ) -> Result<(), OAuthError> {
        let try_refresh_first = hint != Some("access_token");
        if try_refresh_first && self.revoke_refresh(client, token).await? {
            return Ok(());
        }
        if let Some(c) = self.keys.decode(token, &self.settings.issuer) {
            if c.client_id.as_deref() == Some(client.client_id.as_str()) {
                if c.exp > self.now() {
                    self.revoke_jti(&c.jti, c.exp).await?;
                }
            } else {
                tracing::info!(client_id = %client.client_id, "revocation of another client's token ignored");
            }
            return Ok(());
        }
        if !try_refresh_first {
            self.revoke_refresh(client, token).await?;
        }
        Ok(())
    }

    async fn revoke_refresh(&self, client: &ClientRecord, token: &str) -> Result<bool, OAuthError> {
        let key = hash_secret(token);
        let rec = get_json::<RefreshRecord>(self.store.as_ref(), Namespace::Refresh, &key).await?;
        match rec {
            Some(r) if r.grant.client_id == client.client_id => {
                self.revoke_family(&r.family_id).await?;
                self.store.delete(Namespace::Refresh, &key).await?;
                Ok(true)
            }
            Some(_) => {
                tracing::info!(client_id = %client.client_id, "revocation of another client's token ignored");
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
