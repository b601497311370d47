//! Revocation: RFC 7009 `/revoke`, refresh families, and the operator's
//! revocations by subject or client. Access-token revocations are published
//! through the [`RevocationSink`](crate::domain::revocation::RevocationSink)
//! so every verifier drops the token at once.

use crate::domain::revocation::Revocation;
use crate::issue::error::OAuthError;
use crate::issue::records::{
    decode_json, derived_jti, generation_key, get_json, hash_secret, put_json, ClientRecord,
    FamilyRecord, RefreshRecord, Watermark,
};
use crate::issue::service::Issuer;
use crate::issue::store::{Namespace, Op, OpResult, StoreError};

fn sub_mark(sub: &str) -> String {
    format!("wm:sub:{}", hash_secret(sub))
}

fn client_mark(client_id: &str) -> String {
    format!("wm:client:{client_id}")
}

pub(crate) fn family_tombstone(family_id: &str) -> String {
    format!("revoked:{family_id}")
}

/// What a refresh learns of its grant in one read: whether it is revoked,
/// and whether the family's record keeps the grant (then a rotation needs
/// no grace record of its own).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrantState {
    pub revoked: bool,
    pub grant_kept: bool,
}

/// Whether one of the watermark records read covers a token issued at
/// `issued_at`.
fn watermark_covers(
    records: impl IntoIterator<Item = Option<Vec<u8>>>,
    issued_at: u64,
) -> Result<bool, StoreError> {
    for w in records {
        if decode_json::<Watermark>(Namespace::Families, w)?.is_some_and(|w| issued_at <= w.before)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

// === impl Issuer ===

impl Issuer {
    /// Revokes a refresh family: its refresh tokens and every unexpired
    /// access token issued in it.
    ///
    /// A tombstone key is written first and never rewritten; it outlives
    /// every refresh token of the family, and every refresh and
    /// introspection reads it, so nothing can bring the family back (see
    /// [`Issuer::grant_revoked`]). Then the family's access tokens are
    /// revoked: those its generation counters count (see
    /// [`derived_jti`](crate::issue::records::derived_jti) for why that is
    /// every unexpired one) and those an older issuer listed in the family
    /// record. A failure part way leaves everything a retry needs to publish
    /// again, so `Ok` means every verifier was told.
    pub async fn revoke_family(&self, family_id: &str) -> Result<(), OAuthError> {
        let store = self.store.as_ref();
        let tomb_ttl = Some(
            self.settings.refresh_ttl.max(self.settings.access_ttl) + self.max_token_lifetime(),
        );
        store
            .put(
                Namespace::Families,
                &family_tombstone(family_id),
                b"1",
                tomb_ttl,
            )
            .await?;
        let now = self.now();
        let width = self.generation_width();
        let current = crate::issue::records::generation_bucket(now, width);
        // Two buckets back (a token of bucket b is expired by the start of
        // b + 2, plus clock skew) and one ahead (an issuer whose clock is
        // ahead of ours).
        let buckets: Vec<u64> = (current.saturating_sub(2)..=current + 1).collect();
        let keys: Vec<String> = buckets
            .iter()
            .map(|b| generation_key(family_id, *b))
            .collect();
        // Tokens hold generations 1..=count. A refresh that counts after
        // this read finds the tombstone written above when it re-checks
        // before answering, and revokes its own token (see issue_tokens).
        let mut ops: Vec<Op<'_>> = keys
            .iter()
            .map(|k| Op::Count {
                ns: Namespace::Families,
                key: k,
            })
            .collect();
        ops.push(Op::Get {
            ns: Namespace::Families,
            key: family_id,
        });
        let mut res = store.batch(&ops).await?;
        let mut family: Option<FamilyRecord> = decode_json(
            Namespace::Families,
            res.pop().and_then(OpResult::into_value),
        )?;
        // Tokens of these buckets expire within an access-token lifetime
        // (plus skew) of now: the revocations need not be kept longer.
        let exp = now + self.max_token_lifetime().as_secs();
        let mut revoked = 0u64;
        for (b, r) in buckets.iter().zip(&res) {
            for n in 1..=r.count() {
                self.revoke_jti(&derived_jti(family_id, *b, n), exp).await?;
                revoked += 1;
            }
        }
        if let Some(f) = family.as_mut() {
            for (jti, exp) in f.access.iter().filter(|(_, e)| *e > now) {
                self.revoke_jti(jti, *exp).await?;
                revoked += 1;
            }
            if let Some(h) = f.current_refresh.take() {
                store.delete(Namespace::Refresh, &h).await?;
            }
            if !f.revoked {
                f.revoked = true;
                f.access.retain(|(_, e)| *e > now);
                put_json(
                    store,
                    Namespace::Families,
                    family_id,
                    &*f,
                    Some(self.family_ttl()),
                )
                .await?;
            }
        }
        let client_id = family.as_ref().map(|f| f.client_id.as_str()).unwrap_or("");
        tracing::info!(
            family = family_id,
            client_id,
            access_tokens = revoked,
            "refresh family revoked"
        );
        Ok(())
    }

    /// Whether a token of `family_id` issued at `issued_at` to `sub` and
    /// `client_id` is revoked: the family (tombstone or flag) or a subject
    /// or client watermark. One read of four keys.
    ///
    /// A family without a record is not revoked by that alone: older
    /// issuers kept the record alive by rewriting it on every refresh, and
    /// an upgraded issuer no longer does; the tombstone is what counts.
    pub async fn grant_revoked(
        &self,
        family_id: &str,
        sub: &str,
        client_id: &str,
        issued_at: u64,
    ) -> Result<bool, OAuthError> {
        Ok(self
            .grant_state(family_id, sub, client_id, issued_at)
            .await?
            .revoked)
    }

    /// [`Self::grant_revoked`], with what the same read says of the
    /// family's record.
    pub(crate) async fn grant_state(
        &self,
        family_id: &str,
        sub: &str,
        client_id: &str,
        issued_at: u64,
    ) -> Result<GrantState, OAuthError> {
        let keys = [
            family_tombstone(family_id),
            family_id.to_owned(),
            sub_mark(sub),
            client_mark(client_id),
        ];
        let ops: Vec<Op<'_>> = keys
            .iter()
            .map(|k| Op::Get {
                ns: Namespace::Families,
                key: k,
            })
            .collect();
        let res = self.store.batch(&ops).await?;
        let mut it = res.into_iter().map(OpResult::into_value);
        let tombstone = it.next().flatten().is_some();
        let family = decode_json::<FamilyRecord>(Namespace::Families, it.next().flatten())?;
        let grant_kept = family.as_ref().is_some_and(|f| f.grant.is_some());
        let revoked =
            tombstone || family.is_some_and(|f| f.revoked) || watermark_covers(it, issued_at)?;
        Ok(GrantState {
            revoked,
            grant_kept,
        })
    }

    /// Revokes one access token everywhere: recorded (which is what
    /// introspection reads), then published.
    pub async fn revoke_jti(&self, jti: &str, exp: u64) -> Result<(), OAuthError> {
        self.record_and_publish(Revocation::Jti {
            id: jti.to_owned(),
            exp,
        })
        .await?;
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
        let keys = [sub_mark(sub), client_mark(client_id)];
        let ops: Vec<Op<'_>> = keys
            .iter()
            .map(|k| Op::Get {
                ns: Namespace::Families,
                key: k,
            })
            .collect();
        let res = self.store.batch(&ops).await?;
        Ok(watermark_covers(
            res.into_iter().map(OpResult::into_value),
            issued_at,
        )?)
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
