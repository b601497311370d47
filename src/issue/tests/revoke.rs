//! RFC 7009 revocation by an authenticated client, and the operator's
//! revocations by subject and client.

use super::*;
use crate::issue::records::ClientRecord;

async fn record(f: &Fixture, c: &Client) -> ClientRecord {
    f.iss.authenticate_client(&f.creds(c)).await.unwrap()
}

#[tokio::test]
async fn unknown_and_garbage_tokens_are_accepted() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let rec = record(&f, &c).await;
    // RFC 7009 §2.2: an invalid token is no error (200).
    for token in ["", "no-such-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        for hint in [
            None,
            Some("access_token"),
            Some("refresh_token"),
            Some("bogus"),
        ] {
            f.iss.revoke(&rec, token, hint).await.unwrap();
        }
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let rec = record(&f, &c).await;
    let t0 = f.tokens(&c).await;
    let t1 = f.refresh(&c, refresh_of(&t0)).await.unwrap();
    for hint in [None, Some("access_token")] {
        // The wrong hint is only a hint (RFC 7009 §2.1).
        let t = f.tokens(&c).await;
        f.iss.revoke(&rec, refresh_of(&t), hint).await.unwrap();
        assert_eq!(
            err(f.refresh(&c, refresh_of(&t)).await).0,
            ErrorCode::InvalidGrant
        );
        assert!(!f.active(&t.access_token).await);
        assert!(f.published_revoked(&t.access_token));
    }
    f.iss
        .revoke(&rec, refresh_of(&t1), Some("refresh_token"))
        .await
        .unwrap();
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t1)).await).0,
        ErrorCode::InvalidGrant
    );
    for t in [&t0, &t1] {
        assert!(!f.active(&t.access_token).await);
        assert!(f.published_revoked(&t.access_token));
    }
    // Again: still fine.
    f.iss.revoke(&rec, refresh_of(&t1), None).await.unwrap();
}

#[tokio::test]
async fn revoking_an_access_token_leaves_the_refresh_token() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let rec = record(&f, &c).await;
    let t = f.tokens(&c).await;
    for hint in [Some("access_token"), None, Some("refresh_token")] {
        let t = f.tokens(&c).await;
        f.iss.revoke(&rec, &t.access_token, hint).await.unwrap();
        assert!(!f.active(&t.access_token).await, "{hint:?}");
        assert!(f.published_revoked(&t.access_token), "{hint:?}");
        assert!(f.refresh(&c, refresh_of(&t)).await.is_ok(), "{hint:?}");
    }
    assert!(f.active(&t.access_token).await);
    assert!(!f.published_revoked(&t.access_token));
}

#[tokio::test]
async fn another_clients_tokens_are_ignored() {
    let f = Fixture::new().await;
    let owner = f.confidential().await;
    let other = f.confidential().await;
    let other_rec = record(&f, &other).await;
    let t = f.tokens(&owner).await;
    // 200 for the other client, and nothing revoked.
    f.iss
        .revoke(&other_rec, refresh_of(&t), None)
        .await
        .unwrap();
    f.iss
        .revoke(&other_rec, &t.access_token, Some("access_token"))
        .await
        .unwrap();
    assert!(f.active(&t.access_token).await);
    assert!(!f.published_revoked(&t.access_token));
    assert!(f.refresh(&owner, refresh_of(&t)).await.is_ok());
}

#[tokio::test]
async fn an_expired_access_token_needs_no_revocation() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let rec = record(&f, &c).await;
    let t = f.tokens(&c).await;
    f.advance(ACCESS_TTL);
    f.iss
        .revoke(&rec, &t.access_token, Some("access_token"))
        .await
        .unwrap();
    assert!(!f.published_revoked(&t.access_token));
    assert!(!f.active(&t.access_token).await);
}

#[tokio::test]
async fn revoking_a_client_revokes_what_it_was_issued_before() {
    let f = Fixture::new().await;
    let a = f.confidential().await;
    let b = f.confidential().await;
    let ta = f.tokens(&a).await;
    let tb = f.tokens(&b).await;
    f.iss.revoke_client_tokens(&a.id).await.unwrap();
    assert!(!f.active(&ta.access_token).await);
    assert!(f.published_revoked(&ta.access_token));
    assert_eq!(
        err(f.refresh(&a, refresh_of(&ta)).await).0,
        ErrorCode::InvalidGrant
    );
    assert!(f.active(&tb.access_token).await);
    assert!(f.refresh(&b, refresh_of(&tb)).await.is_ok());
    // Issued after the watermark second: fine again.
    f.advance(1);
    let later = f.tokens(&a).await;
    assert!(f.active(&later.access_token).await);
}

#[tokio::test]
async fn deleting_a_client_revokes_its_tokens_and_its_credentials() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    f.iss.delete_client(&c.id).await.unwrap();
    assert!(!f.active(&t.access_token).await);
    assert!(f.published_revoked(&t.access_token));
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t)).await).0,
        ErrorCode::InvalidClient
    );
}
