//! The authorization request (RFC 6749 §4.1.1 with OAuth 2.1, RFC 7636,
//! RFC 8707, RFC 9207): which failures show a page, which go back to the
//! client, and what the pending request grants.

use super::*;

/// The error redirect of a refused request, or a panic.
async fn refused(f: &Fixture, p: AuthorizeParams) -> HashMap<String, String> {
    match f.iss.authorize_start(p, CSRF).await {
        Err(AuthorizeFailure::Redirect(u)) => {
            assert!(u.starts_with(REDIRECT), "{u}");
            let q = query(&u);
            assert_eq!(q.get("iss").map(String::as_str), Some(ISSUER), "RFC 9207");
            assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
            assert!(!q.contains_key("code"));
            q
        }
        Err(AuthorizeFailure::Page(e)) => panic!("expected a redirect, got page {e:?}"),
        Ok(id) => panic!("accepted as {id}"),
    }
}

/// The error page of a request that cannot be sent back, or a panic.
async fn page(f: &Fixture, p: AuthorizeParams) -> ErrorCode {
    match f.iss.authorize_start(p, CSRF).await {
        Err(AuthorizeFailure::Page(e)) => e.code,
        Err(AuthorizeFailure::Redirect(u)) => panic!("redirected to {u}"),
        Ok(id) => panic!("accepted as {id}"),
    }
}

/// The scope a completed request grants.
async fn granted_scope(f: &Fixture, p: AuthorizeParams) -> String {
    let c = Client {
        id: p.client_id.clone().unwrap(),
        secret: None,
    };
    let code = f.code_for(p).await;
    let t = f.iss.token(f.code_request(&c, &code, Some(VERIFIER))).await;
    t.unwrap().scope
}

#[tokio::test]
async fn the_success_redirect_carries_code_state_and_iss() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let id = f.start(f.params(&c)).await;
    let u = f.login_and_consent(&id).await;
    let q = query(&u);
    assert!(q["code"].len() >= 43);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], ISSUER);
    // The pending request is used up.
    assert!(f.iss.consent_decide(&id, CSRF, true).await.is_err());
}

#[tokio::test]
async fn an_untrusted_client_or_redirect_uri_gets_a_page_not_a_redirect() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let unknown = AuthorizeParams {
        client_id: Some("no-such-client".into()),
        ..f.params(&c)
    };
    assert_eq!(page(&f, unknown).await, ErrorCode::InvalidClient);
    let none = AuthorizeParams {
        client_id: None,
        ..f.params(&c)
    };
    assert_eq!(page(&f, none).await, ErrorCode::InvalidRequest);
    for r in [
        "http://127.0.0.1:7777/callback/../evil",
        "http://127.0.0.1:7777/callbackx",
        "http://127.0.0.1:7777/callback?x=1",
        "http://127.0.0.1:7777/callback#f",
        "https://evil.example/callback",
        "http://127.0.0.1.evil.example:7777/callback",
    ] {
        let p = AuthorizeParams {
            redirect_uri: Some(r.into()),
            ..f.params(&c)
        };
        assert_eq!(page(&f, p).await, ErrorCode::InvalidRequest, "{r}");
    }
    // Two registered URIs and none sent: which one is unknown.
    let p = AuthorizeParams {
        redirect_uri: None,
        ..f.params(&c)
    };
    assert_eq!(page(&f, p).await, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn a_loopback_redirect_may_use_any_port() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    // RFC 8252 §7.3: the port of a loopback redirect is the client's choice.
    let p = AuthorizeParams {
        redirect_uri: Some("http://127.0.0.1:61234/callback".into()),
        ..f.params(&c)
    };
    let id = f.start(p).await;
    let u = f.login_and_consent(&id).await;
    assert!(u.starts_with("http://127.0.0.1:61234/callback?"), "{u}");
}

#[tokio::test]
async fn request_errors_go_back_to_the_client() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let cases: Vec<(AuthorizeParams, &str)> = vec![
        (
            AuthorizeParams {
                response_type: None,
                ..f.params(&c)
            },
            "invalid_request",
        ),
        (
            AuthorizeParams {
                response_type: Some("token".into()),
                ..f.params(&c)
            },
            "unsupported_response_type",
        ),
        (
            AuthorizeParams {
                duplicated: vec!["scope".into()],
                ..f.params(&c)
            },
            "invalid_request",
        ),
        (
            AuthorizeParams {
                code_challenge: None,
                ..f.params(&c)
            },
            "invalid_request",
        ),
        (
            AuthorizeParams {
                code_challenge_method: Some("plain".into()),
                ..f.params(&c)
            },
            "invalid_request",
        ),
        (
            AuthorizeParams {
                code_challenge_method: None,
                ..f.params(&c)
            },
            "invalid_request",
        ),
        (
            AuthorizeParams {
                code_challenge: Some("too-short".into()),
                ..f.params(&c)
            },
            "invalid_request",
        ),
        (
            AuthorizeParams {
                scope: Some("mcp:read bad\"scope".into()),
                ..f.params(&c)
            },
            "invalid_scope",
        ),
    ];
    for (p, want) in cases {
        let what = format!("{p:?}");
        assert_eq!(refused(&f, p).await["error"], want, "{what}");
    }
}

#[tokio::test]
async fn resource_must_name_one_configured_resource() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    for sent in [
        vec![],
        vec!["https://evil.example/mcp"],
        vec!["https://mcp.example/mcp/sub"],
        vec!["https://mcp.example/mcp#frag"],
        vec![RESOURCE, OTHER_RESOURCE],
    ] {
        let p = AuthorizeParams {
            resource: sent.iter().map(|s| s.to_string()).collect(),
            ..f.params(&c)
        };
        assert_eq!(refused(&f, p).await["error"], "invalid_target", "{sent:?}");
    }
    // The same resource twice, differently spelled, is one resource.
    let p = AuthorizeParams {
        resource: vec![RESOURCE.into(), "https://MCP.example:443/mcp".into()],
        ..f.params(&c)
    };
    f.start(p).await;
}

#[tokio::test]
async fn the_default_resource_applies_when_none_is_named() {
    let f = Fixture::with(|s| s.default_resource = Some(OTHER_RESOURCE.into())).await;
    let c = f.confidential().await;
    let p = AuthorizeParams {
        resource: vec![],
        scope: None,
        ..f.params(&c)
    };
    let code = f.code_for(p).await;
    let t = f.exchange(&c, &code).await.unwrap();
    let claims = f.iss.keys.decode(&t.access_token, ISSUER).unwrap();
    assert!(claims.aud.contains(OTHER_RESOURCE));
    assert_eq!(t.scope, "mcp:read");
}

#[tokio::test]
async fn scopes_are_limited_to_what_the_resource_offers() {
    let f = Fixture::new().await;
    let c = f.client("none").await;
    let with = |scope: Option<&str>, resource: &str| AuthorizeParams {
        scope: scope.map(str::to_owned),
        resource: vec![resource.into()],
        ..f.params(&c)
    };
    // Unknown scopes are left out, offline_access is ignored.
    let p = with(Some("mcp:write openid offline_access"), RESOURCE);
    assert_eq!(granted_scope(&f, p).await, "mcp:write");
    // The other resource offers mcp:read only.
    let p = with(Some("mcp:read mcp:write"), OTHER_RESOURCE);
    assert_eq!(granted_scope(&f, p).await, "mcp:read");
    // None requested, or none grantable: the defaults.
    assert_eq!(granted_scope(&f, with(None, RESOURCE)).await, "mcp:read");
    let p = with(Some("openid email"), RESOURCE);
    assert_eq!(granted_scope(&f, p).await, "mcp:read");
    // An admin scope is granted when asked for, never by default.
    let p = with(Some("mcp:admin"), RESOURCE);
    assert_eq!(granted_scope(&f, p).await, "mcp:admin");
}

#[tokio::test]
async fn without_configured_defaults_every_non_admin_scope_is_the_default() {
    let f = Fixture::with(|s| s.default_scopes = Scopes::parse("")).await;
    let c = f.client("none").await;
    let p = AuthorizeParams {
        scope: None,
        ..f.params(&c)
    };
    assert_eq!(granted_scope(&f, p).await, "mcp:read mcp:write");
}

#[tokio::test]
async fn the_clients_registered_scope_binds_when_enforced() {
    let f = Fixture::with(|s| s.registration.enforce_client_scope = true).await;
    let body = json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "scope": "mcp:read",
    });
    let r = f.iss.register(&body, None, IP).await.unwrap();
    let c = Client {
        id: r.client_id,
        secret: None,
    };
    let p = AuthorizeParams {
        scope: Some("mcp:read mcp:write".into()),
        ..f.params(&c)
    };
    assert_eq!(granted_scope(&f, p).await, "mcp:read");
}

#[tokio::test]
async fn a_pending_request_expires_and_is_bound_to_its_browser() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let id = f.start(f.params(&c)).await;
    // Another browser (another CSRF cookie) cannot continue it.
    assert!(matches!(
        f.iss.login_view(&id, "other-cookie").await,
        Err(AuthorizeFailure::Page(_))
    ));
    assert!(f.iss.login_view(&id, CSRF).await.is_ok());
    f.advance(PENDING_TTL);
    assert!(matches!(
        f.iss.login_view(&id, CSRF).await,
        Err(AuthorizeFailure::Page(_))
    ));
    assert!(matches!(
        f.iss.login_static(&id, CSRF, USER, PASSWORD, IP).await,
        Err(AuthorizeFailure::Page(_))
    ));
}

#[tokio::test]
async fn a_denied_consent_goes_back_with_access_denied() {
    let f = Fixture::new().await;
    let c = f.confidential().await;
    let id = f.start(f.params(&c)).await;
    f.iss
        .login_static(&id, CSRF, USER, PASSWORD, IP)
        .await
        .unwrap();
    let u = f.iss.consent_decide(&id, CSRF, false).await.unwrap();
    let q = query(&u);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["iss"], ISSUER);
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn a_remembered_consent_skips_the_page_until_it_expires() {
    let f = Fixture::with(|s| s.consent_ttl = Duration::from_secs(1000)).await;
    let c = f.confidential().await;
    f.tokens(&c).await;
    let id = f.start(f.params(&c)).await;
    let out = f
        .iss
        .login_static(&id, CSRF, USER, PASSWORD, IP)
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            LoginOutcome::Ok {
                next: Next::Redirect(_),
                ..
            }
        ),
        "{out:?}"
    );
    // A wider scope asks again.
    let p = AuthorizeParams {
        scope: Some("mcp:read mcp:write mcp:admin".into()),
        ..f.params(&c)
    };
    let id = f.start(p).await;
    let out = f
        .iss
        .login_static(&id, CSRF, USER, PASSWORD, IP)
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            LoginOutcome::Ok {
                next: Next::Consent(_),
                ..
            }
        ),
        "{out:?}"
    );
    f.advance(1000);
    let id = f.start(f.params(&c)).await;
    let out = f
        .iss
        .login_static(&id, CSRF, USER, PASSWORD, IP)
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            LoginOutcome::Ok {
                next: Next::Consent(_),
                ..
            }
        ),
        "{out:?}"
    );
}
