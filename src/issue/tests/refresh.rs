//! The refresh_token grant: rotation, the grace window, reuse detection
//! (RFC 9700 §4.14.2), sliding and absolute lifetimes, scope narrowing.

use super::*;

#[tokio::test]
async fn every_refresh_rotates_the_token() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    f.advance(60);
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    assert_ne!(refresh_of(&t1), refresh_of(&t0));
    assert_ne!(t1.access_token, t0.access_token);
    assert_eq!(t1.scope, t0.scope);
    let claims = f.iss.keys.decode(&t1.access_token, ISSUER).unwrap();
    assert_eq!(claims.iat, T0 + 60);
    // The rotated-away token is no longer active; the new one is.
    assert!(!f.active(refresh_of(&t0)).await);
    assert!(f.active(refresh_of(&t1)).await);
    // A chain of rotations keeps working.
    let mut rt = refresh_of(&t1).to_owned();
    for _ in 0..5 {
        f.advance(60);
        rt = refresh_of(&f.refresh(&c, &rt).await.unwrap()).to_owned();
    }
    assert!(f.active(&rt).await);
}

#[tokio::test]
async fn a_rotated_token_within_the_grace_window_gets_a_fresh_pair() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    // The response was lost; the client retries with the old token.
    f.advance(GRACE - 1);
    let retry = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    assert_ne!(refresh_of(&retry), refresh_of(&t1));
    // Both chains stay usable: nothing was revoked.
    assert!(f.active(&t1.access_token).await);
    assert!(f.active(&retry.access_token).await);
    assert!(f.refresh(&c, refresh_of(&t1)).await.is_ok());
    assert!(f.refresh(&c, refresh_of(&retry)).await.is_ok());
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_family() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    let t2 = f.refresh(&c, refresh_of(&t1)).await.unwrap();
    f.advance(GRACE);
    // The window is measured from the rotation: exactly GRACE later is reuse.
    let r = f.refresh(&c, refresh_of(&t0)).await;
    assert_eq!(err(r).0, ErrorCode::InvalidGrant);
    // Every member of the family: live refresh token and access tokens.
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t2)).await).0,
        ErrorCode::InvalidGrant
    );
    for t in [&t0, &t1, &t2] {
        assert!(!f.active(&t.access_token).await);
        assert!(f.published_revoked(&t.access_token));
    }
    assert!(!f.active(refresh_of(&t2)).await);
    // Another login of the same user is another family: untouched.
    let other = f.tokens(&c).await;
    assert!(f.refresh(&c, refresh_of(&other)).await.is_ok());
}

#[tokio::test]
async fn with_no_grace_window_any_reuse_revokes() {
    let f = Fixture::with(|s| s.refresh_grace = Duration::ZERO).await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t0)).await).0,
        ErrorCode::InvalidGrant
    );
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t1)).await).0,
        ErrorCode::InvalidGrant
    );
    assert!(f.published_revoked(&t1.access_token));
}

#[tokio::test]
async fn a_grace_retry_of_a_revoked_family_is_refused() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    let creds = f.iss.authenticate_client(&f.creds(&c)).await.unwrap();
    f.iss.revoke(&creds, refresh_of(&t1), None).await.unwrap();
    // Within the grace window, but the family is gone.
    f.advance(1);
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t0)).await).0,
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn an_unused_refresh_token_expires_with_the_clock() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    f.advance(REFRESH_TTL - 1);
    // Sliding: each rotation renews it.
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    f.advance(REFRESH_TTL - 1);
    let t2 = f.refresh(&c, refresh_of(&t1)).await.unwrap();
    f.advance(REFRESH_TTL);
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t2)).await).0,
        ErrorCode::InvalidGrant
    );
    assert!(!f.active(refresh_of(&t2)).await);
}

#[tokio::test]
async fn the_family_ends_at_its_absolute_lifetime() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let mut rt = refresh_of(&f.tokens(&c).await).to_owned();
    // Refreshing every 50 minutes keeps the sliding lifetime alive...
    let step = 3000;
    let mut elapsed = 0;
    while elapsed + step < MAX_LIFETIME {
        f.advance(step);
        elapsed += step;
        rt = refresh_of(&f.refresh(&c, &rt).await.unwrap()).to_owned();
    }
    // ...but not past the login's absolute lifetime.
    f.advance(MAX_LIFETIME - elapsed);
    let (code, desc) = err(f.refresh(&c, &rt).await);
    assert_eq!(code, ErrorCode::InvalidGrant);
    assert!(desc.contains("maximum lifetime"), "{desc}");
}

#[tokio::test]
async fn one_second_before_the_absolute_lifetime_still_refreshes() {
    let f = Fixture::with(|s| s.refresh_max_lifetime = Duration::from_secs(1000)).await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    f.advance(999);
    let t = f.refresh(&c, refresh_of(&t)).await.unwrap();
    f.advance(1);
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t)).await).0,
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn scope_may_narrow_and_widen_back_to_the_grant_only() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    let narrow = f
        .iss
        .token(TokenRequest {
            scope: Some("mcp:read".into()),
            ..f.refresh_request(&c, refresh_of(&t0))
        })
        .await
        .unwrap();
    assert_eq!(narrow.scope, "mcp:read");
    let claims = f.iss.keys.decode(&narrow.access_token, ISSUER).unwrap();
    assert_eq!(claims.scope.as_deref(), Some("mcp:read"));
    // The refresh token keeps the original grant.
    let back = f.refresh(&c, refresh_of(&narrow)).await.unwrap();
    assert_eq!(back.scope, "mcp:read mcp:write");
    for wider in ["mcp:read mcp:admin", "mcp:admin", "other"] {
        let r = f
            .iss
            .token(TokenRequest {
                scope: Some(wider.into()),
                ..f.refresh_request(&c, refresh_of(&back))
            })
            .await;
        assert_eq!(err(r).0, ErrorCode::InvalidScope, "{wider}");
    }
    // A refused request does not rotate: the token still works.
    assert!(f.refresh(&c, refresh_of(&back)).await.is_ok());
}

#[tokio::test]
async fn another_client_or_resource_is_refused_without_rotating() {
    let f = Fixture::new().await;
    let a = f.confidential().await;
    let b = f.confidential().await;
    let t = f.tokens(&a).await;
    assert_eq!(
        err(f.refresh(&b, refresh_of(&t)).await),
        (
            ErrorCode::InvalidGrant,
            "refresh token was issued to another client".into()
        )
    );
    let r = f
        .iss
        .token(TokenRequest {
            resource: vec![OTHER_RESOURCE.into()],
            ..f.refresh_request(&a, refresh_of(&t))
        })
        .await;
    assert_eq!(err(r).0, ErrorCode::InvalidTarget);
    let r = f
        .iss
        .token(TokenRequest {
            refresh_token: None,
            ..f.refresh_request(&a, refresh_of(&t))
        })
        .await;
    assert_eq!(err(r).0, ErrorCode::InvalidRequest);
    assert!(f.refresh(&a, refresh_of(&t)).await.is_ok());
    assert_eq!(
        err(f.refresh(&a, "never-issued").await).0,
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn revoking_the_subject_stops_refreshes_of_earlier_tokens() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    f.advance(5);
    f.iss.revoke_subject_tokens("local:alice").await.unwrap();
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t)).await).0,
        ErrorCode::InvalidGrant
    );
    assert!(!f.active(&t.access_token).await);
    assert!(f.published_revoked(&t.access_token));
    // Tokens from a login after the revocation work.
    f.advance(1);
    let later = f.tokens(&c).await;
    assert!(f.refresh(&c, refresh_of(&later)).await.is_ok());
}

/// The grace record (`grace:` + the token's hash) a rotation leaves, if any.
async fn grace_record(f: &Fixture, rt: &str) -> Option<Vec<u8>> {
    let key = format!("grace:{}", crate::issue::records::hash_secret(rt));
    f.iss
        .store
        .get(crate::issue::store::Namespace::RotatedRefresh, &key)
        .await
        .unwrap()
}

/// The family of a live refresh token, and its record as stored.
async fn family_record(f: &Fixture, rt: &str) -> (String, serde_json::Value) {
    use crate::issue::records::{hash_secret, RefreshRecord};
    use crate::issue::store::Namespace;
    let store = &f.iss.store;
    let r = store
        .get(Namespace::Refresh, &hash_secret(rt))
        .await
        .unwrap();
    let r: RefreshRecord = serde_json::from_slice(&r.unwrap()).unwrap();
    let fam = store.get(Namespace::Families, &r.family_id).await.unwrap();
    (r.family_id, serde_json::from_slice(&fam.unwrap()).unwrap())
}

#[tokio::test]
async fn a_family_that_keeps_its_grant_needs_no_grace_record() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    let (_, fam) = family_record(&f, refresh_of(&t0)).await;
    assert_eq!(fam["grant"]["client_id"], c.id.as_str());
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    // Only the small tombstone is left for the rotated token.
    assert!(grace_record(&f, refresh_of(&t0)).await.is_none());
    // A retry within the window is answered from the family's record, with
    // the grant's scope and in the same family.
    f.advance(GRACE - 1);
    let retry = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    assert_eq!(retry.scope, t0.scope);
    let (fid_retry, _) = family_record(&f, refresh_of(&retry)).await;
    let (fid_t1, _) = family_record(&f, refresh_of(&t1)).await;
    assert_eq!(fid_retry, fid_t1);
    // Past the window it is reuse, and the whole family goes.
    f.advance(1);
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t0)).await).0,
        ErrorCode::InvalidGrant
    );
    for t in [&t1, &retry] {
        assert!(f.published_revoked(&t.access_token));
        assert!(!f.active(refresh_of(t)).await);
    }
}

/// A family created by an older issuer (its record holds no grant) still
/// gets a grace record on rotation, and its retries within the window
/// still work; without either, a retry is reuse.
#[tokio::test]
async fn a_family_of_an_older_issuer_still_gets_a_grace_record() {
    use crate::issue::store::Namespace;
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t0 = f.tokens(&c).await;
    let (fid, mut fam) = family_record(&f, refresh_of(&t0)).await;
    fam.as_object_mut().unwrap().remove("grant");
    let old = serde_json::to_vec(&fam).unwrap();
    let ttl = Some(Duration::from_secs(86_400));
    f.iss
        .store
        .put(Namespace::Families, &fid, &old, ttl)
        .await
        .unwrap();
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    assert!(grace_record(&f, refresh_of(&t0)).await.is_some());
    f.advance(1);
    let retry = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    assert!(f.active(&retry.access_token).await);
    assert!(f.active(&t1.access_token).await);
    // The grace record lost (or never written by an older issuer): the
    // grant is nowhere, so the retry is reuse.
    let key = format!(
        "grace:{}",
        crate::issue::records::hash_secret(refresh_of(&t1))
    );
    let t2 = f.refresh(&c, refresh_of(&t1)).await.unwrap();
    f.iss
        .store
        .delete(Namespace::RotatedRefresh, &key)
        .await
        .unwrap();
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t1)).await).0,
        ErrorCode::InvalidGrant
    );
    assert!(f.published_revoked(&t2.access_token));
}
