//! The authorization_code grant (RFC 6749 §4.1.3, RFC 7636, RFC 8707).

use super::*;

#[tokio::test]
async fn code_exchange_issues_a_pair_for_the_grant() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let t = f.tokens(&c).await;
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, ACCESS_TTL);
    assert_eq!(t.scope, "mcp:read mcp:write");
    assert!(t.refresh_token.is_some());
    let claims = f.iss.keys.decode(&t.access_token, ISSUER).unwrap();
    assert_eq!(claims.sub, "local:alice");
    assert_eq!(claims.client_id.as_deref(), Some(c.id.as_str()));
    assert!(claims.aud.contains(RESOURCE));
    assert_eq!((claims.iat, claims.exp), (T0, T0 + ACCESS_TTL));
    assert!(f.active(&t.access_token).await);
}

#[tokio::test]
async fn pkce_verifier_must_match_the_s256_challenge() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let code = f.code(&c).await;
    // Missing: a malformed request.
    let r = f.iss.token(f.code_request(&c, &code, None)).await;
    assert_eq!(err(r).0, ErrorCode::InvalidRequest);
    // Wrong, the challenge itself, too short, or with characters RFC 7636
    // §4.1 does not allow: invalid_grant.
    let challenge = s256(VERIFIER);
    let wrong = format!("{VERIFIER}x");
    let short = &VERIFIER[..42];
    let bad_char = format!("{}~!", &VERIFIER[..44]);
    for v in [
        wrong.as_str(),
        challenge.as_str(),
        short,
        bad_char.as_str(),
        "",
    ] {
        let r = f.iss.token(f.code_request(&c, &code, Some(v))).await;
        assert_eq!(
            err(r),
            (ErrorCode::InvalidGrant, "PKCE verification failed".into()),
            "{v:?}"
        );
    }
    // The right verifier.
    let t = f.iss.token(f.code_request(&c, &code, Some(VERIFIER))).await;
    assert!(t.is_ok(), "{t:?}");
}

#[tokio::test]
async fn a_reused_code_fails_and_revokes_what_it_produced() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let code = f.code(&c).await;
    let t = f.exchange(&c, &code).await.unwrap();
    assert!(f.active(&t.access_token).await);
    let again = f.exchange(&c, &code).await;
    assert_eq!(err(again).0, ErrorCode::InvalidGrant);
    // RFC 6749 §4.1.2: the tokens issued from that code are revoked.
    assert!(!f.active(&t.access_token).await);
    assert!(f.published_revoked(&t.access_token));
    assert_eq!(
        err(f.refresh(&c, refresh_of(&t)).await).0,
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn an_unknown_code_is_invalid_grant() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    assert_eq!(
        err(f.exchange(&c, "no-such-code").await).0,
        ErrorCode::InvalidGrant
    );
    let r = f
        .iss
        .token(TokenRequest {
            code: None,
            ..f.code_request(&c, "x", Some(VERIFIER))
        })
        .await;
    assert_eq!(err(r).0, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn redirect_uri_must_be_the_authorization_requests() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let code = f.code(&c).await;
    for sent in [
        Some("http://127.0.0.1:7777/other"),
        Some("http://127.0.0.1:7777/callback/"),
        Some("http://127.0.0.1:7777/Callback"),
        Some("http://localhost:7777/callback"),
        None,
    ] {
        let r = f
            .iss
            .token(TokenRequest {
                redirect_uri: sent.map(str::to_owned),
                ..f.code_request(&c, &code, Some(VERIFIER))
            })
            .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::InvalidGrant,
                "redirect_uri does not match".into()
            ),
            "{sent:?}"
        );
    }
    assert!(f.exchange(&c, &code).await.is_ok());
}

#[tokio::test]
async fn redirect_uri_may_be_left_out_only_if_the_authorization_request_did() {
    let f = Fixture::new().await;
    let c = f.client_with("client_secret_basic", &[REDIRECT]).await;
    let code = f
        .code_for(AuthorizeParams {
            redirect_uri: None,
            ..f.params(&c)
        })
        .await;
    // Not sent there (the one registered URI is used): not required here
    // (RFC 6749 §4.1.3), but if sent it must still be that one.
    let r = f
        .iss
        .token(TokenRequest {
            redirect_uri: Some("http://127.0.0.1:7777/other".into()),
            ..f.code_request(&c, &code, Some(VERIFIER))
        })
        .await;
    assert_eq!(err(r).0, ErrorCode::InvalidGrant);
    let r = f
        .iss
        .token(TokenRequest {
            redirect_uri: None,
            ..f.code_request(&c, &code, Some(VERIFIER))
        })
        .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn another_client_cannot_redeem_the_code() {
    let f = Fixture::new().await;
    let a = f.confidential().await;
    let b = f.confidential().await;
    let code = f.code(&a).await;
    assert_eq!(
        err(f.exchange(&b, &code).await),
        (
            ErrorCode::InvalidGrant,
            "code was issued to another client".into()
        )
    );
    // A's secret with B's id, or no secret, is no authentication at all.
    let forged = Client {
        id: b.id.clone(),
        secret: a.secret.clone(),
    };
    assert_eq!(
        err(f.exchange(&forged, &code).await).0,
        ErrorCode::InvalidClient
    );
    let bare = Client {
        id: a.id.clone(),
        secret: None,
    };
    assert_eq!(
        err(f.exchange(&bare, &code).await).0,
        ErrorCode::InvalidClient
    );
    // The code survived the attempts for its own client.
    assert!(f.exchange(&a, &code).await.is_ok());
}

#[tokio::test]
async fn resource_must_be_the_grants() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let code = f.code(&c).await;
    for (sent, want) in [
        (vec![OTHER_RESOURCE], ErrorCode::InvalidTarget),
        (vec!["https://evil.example/mcp"], ErrorCode::InvalidTarget),
        (vec![RESOURCE, OTHER_RESOURCE], ErrorCode::InvalidTarget),
    ] {
        let r = f
            .iss
            .token(TokenRequest {
                resource: sent.iter().map(|s| s.to_string()).collect(),
                ..f.code_request(&c, &code, Some(VERIFIER))
            })
            .await;
        assert_eq!(err(r).0, want, "{sent:?}");
    }
    // The same resource, spelled with a default port and trailing slash.
    let r = f
        .iss
        .token(TokenRequest {
            resource: vec!["HTTPS://mcp.example:443/mcp/".into()],
            ..f.code_request(&c, &code, Some(VERIFIER))
        })
        .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_code_expires_with_the_clock() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let code = f.code(&c).await;
    f.advance(CODE_TTL - 1);
    let code2 = f.code(&c).await;
    assert!(f.exchange(&c, &code).await.is_ok(), "one second left");
    f.advance(CODE_TTL);
    assert_eq!(err(f.exchange(&c, &code2).await).0, ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn grant_types_and_client_authentication() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let code = f.code(&c).await;
    let req = |gt: Option<&str>| TokenRequest {
        grant_type: gt.map(str::to_owned),
        ..f.code_request(&c, &code, Some(VERIFIER))
    };
    assert_eq!(
        err(f.iss.token(req(None)).await).0,
        ErrorCode::InvalidRequest
    );
    for gt in [
        "password",
        "client_credentials",
        "implicit",
        "Authorization_Code",
    ] {
        assert_eq!(
            err(f.iss.token(req(Some(gt))).await).0,
            ErrorCode::UnsupportedGrantType,
            "{gt}"
        );
    }
    // The secret in the body when Basic is registered: refused.
    let mut post = f.code_request(&c, &code, Some(VERIFIER));
    post.client.method = AuthMethod::Post;
    assert_eq!(err(f.iss.token(post).await).0, ErrorCode::InvalidClient);
    let wrong = Client {
        id: c.id.clone(),
        secret: Some("not-the-secret".into()),
    };
    assert_eq!(
        err(f.exchange(&wrong, &code).await).0,
        ErrorCode::InvalidClient
    );
    assert!(f.exchange(&c, &code).await.is_ok());
}

#[tokio::test]
async fn a_public_client_exchanges_without_a_secret() {
    let f = Fixture::new().await;
    let c = f.client("none").await;
    assert!(c.secret.is_none());
    let t = f.tokens(&c).await;
    assert!(t.refresh_token.is_some());
    // A public client that sends a secret is refused.
    let code = f.code(&c).await;
    let mut req = f.code_request(&c, &code, Some(VERIFIER));
    req.client.secret = Some(ClientSecret::new("made-up"));
    req.client.method = AuthMethod::Basic;
    assert_eq!(err(f.iss.token(req).await).0, ErrorCode::InvalidClient);
}
