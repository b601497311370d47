//! RFC 7662 introspection: who may see what, and when a token stops being
//! active (expiry on the clock, rotation, revocation).

use super::*;

async fn as_client(f: &Fixture, c: &Client, token: &str) -> Introspection {
    let who = Introspector::Client(c.id.clone());
    f.iss.introspect(&who, token).await.unwrap()
}

#[tokio::test]
async fn an_access_token_is_active_with_its_claims() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    let i = f.introspect(&t.access_token).await;
    assert!(i.active);
    assert_eq!(i.token_type.as_deref(), Some("Bearer"));
    assert_eq!(i.client_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(i.sub.as_deref(), Some("local:alice"));
    assert_eq!(i.username.as_deref(), Some(USER));
    assert_eq!(i.scope.as_deref(), Some("mcp:read mcp:write"));
    assert_eq!(i.iss.as_deref(), Some(ISSUER));
    assert_eq!((i.iat, i.exp), (Some(T0), Some(T0 + ACCESS_TTL)));
    assert!(i.aud.unwrap().contains(RESOURCE));
    assert!(i.jti.is_some());
    // The owning client sees what the operator sees.
    assert_eq!(
        as_client(&f, &c, &t.access_token).await,
        f.introspect(&t.access_token).await
    );
}

#[tokio::test]
async fn an_access_token_expires_with_the_clock() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    f.advance(ACCESS_TTL - 1);
    assert!(f.active(&t.access_token).await);
    f.advance(1);
    // Inactive says nothing else (RFC 7662 §2.2).
    assert_eq!(
        f.introspect(&t.access_token).await,
        Introspection::default()
    );
}

#[tokio::test]
async fn a_refresh_token_is_active_until_rotated_or_expired() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    let i = f.introspect(refresh_of(&t)).await;
    assert!(i.active);
    assert_eq!(i.token_type.as_deref(), Some("refresh_token"));
    assert_eq!(i.exp, Some(T0 + REFRESH_TTL));
    assert_eq!(i.jti, None);
    f.advance(10);
    let t1 = f.refresh(&c, refresh_of(&t)).await.unwrap();
    assert!(!f.active(refresh_of(&t)).await);
    assert_eq!(f.introspect(refresh_of(&t1)).await.iat, Some(T0 + 10));
    f.advance(REFRESH_TTL);
    assert!(!f.active(refresh_of(&t1)).await);
}

#[tokio::test]
async fn a_client_sees_only_its_own_tokens() {
    let f = Fixture::new().await;
    let owner = f.confidential().await;
    let other = f.confidential().await;
    let t = f.tokens(&owner).await;
    for token in [t.access_token.as_str(), refresh_of(&t)] {
        assert!(as_client(&f, &owner, token).await.active);
        assert_eq!(as_client(&f, &other, token).await, Introspection::default());
    }
}

#[tokio::test]
async fn garbage_and_foreign_tokens_are_inactive() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    // One of our tokens, re-signed by nobody: the payload changed.
    let parts: Vec<&str> = t.access_token.split('.').collect();
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    // Another issuer's instance (own keys) minted this one.
    let stranger = Fixture::new().await;
    let sc = stranger.confidential().await;
    let foreign = stranger.tokens(&sc).await;
    for token in [
        "",
        "garbage",
        tampered.as_str(),
        foreign.access_token.as_str(),
        refresh_of(&foreign),
    ] {
        assert!(!f.active(token).await, "{token}");
    }
}

#[tokio::test]
async fn revoked_tokens_are_inactive() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    f.iss.revoke_subject_tokens("local:alice").await.unwrap();
    assert!(!f.active(&t.access_token).await);
    assert!(!f.active(refresh_of(&t)).await);
}
