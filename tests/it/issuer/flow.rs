//! The happy paths: discovery, registration, login, consent, tokens,
//! refresh rotation, introspection, revocation, admin API, restart.

use super::harness::*;
use jsonwebtoken::jwk::JwkSet;
use mcpgate::domain::claims::AccessClaims;
use mcpgate::domain::revocation::{RevocationView, TokenRef};
use reqwest::StatusCode;
use serde_json::Value;

async fn verify_jwt(h: &Harness, token: &str) -> AccessClaims {
    crate::access_token::verify(&h.http, &h.base, RESOURCE, token).await
}

#[tokio::test]
async fn discovery_documents() {
    let h = start().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value = h
            .http
            .get(format!("{}{path}", h.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(m["issuer"], h.base.as_str());
        assert_eq!(
            m["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(m["token_endpoint"], format!("{}/token", h.base));
        assert_eq!(m["registration_endpoint"], format!("{}/register", h.base));
        assert!(m["revocation_endpoint"].is_string() && m["introspection_endpoint"].is_string());
        assert_eq!(
            m["scopes_supported"],
            serde_json::json!(["mcp:read", "mcp:write"])
        );
    }
    let jwks: JwkSet = h
        .http
        .get(format!("{}/.well-known/jwks.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks.keys.len(), 2, "current + pre-published next key");
    let r = h
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/token", h.base))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = h
        .http
        .get(format!("{}/authorize", h.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = h
        .http
        .get(format!("{}/healthz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = h
        .http
        .get(format!("{}/readyz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(&format!(
            "mcpgate_issuer_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{m}"
    );
    h.running.shutdown().await;
}

#[tokio::test]
async fn path_issuer_serves_suffixed_well_known() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}/tenant");
    let toml = base_toml().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\nissuer = \"{issuer}\""),
    );
    let h = start_toml(&toml, None).await;
    let root = format!("http://127.0.0.1:{port}");
    for url in [
        format!("{root}/.well-known/oauth-authorization-server/tenant"),
        format!("{root}/.well-known/openid-configuration/tenant"),
        format!("{root}/tenant/.well-known/openid-configuration"),
    ] {
        let m: Value = h.http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(m["issuer"], issuer.as_str(), "{url}");
        assert_eq!(m["authorization_endpoint"], format!("{issuer}/authorize"));
    }
    let c = register(&h, "none").await;
    assert!(c["registration_client_uri"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{issuer}/register/")));
    h.running.shutdown().await;
}

#[tokio::test]
async fn full_flow_confidential_client() {
    let h = start().await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let (st, body) = exchange(&h, &id, &secret, &code, &verifier).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp:read");
    let at = body["access_token"].as_str().unwrap().to_owned();
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let claims = verify_jwt(&h, &at).await;
    assert_eq!(claims.sub, "local:alice");
    assert_eq!(claims.client_id.as_deref(), Some(id.as_str()));
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert_eq!(claims.username.as_deref(), Some(USER));

    // Refresh rotates; narrowing is fine.
    let (st, hd, r2) = token(
        &h,
        Some((&id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("resource", RESOURCE),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r2}");
    assert_eq!(hd["cache-control"], "no-store");
    let rt2 = r2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt, rt2);
    let at2 = r2["access_token"].as_str().unwrap().to_owned();
    verify_jwt(&h, &at2).await;

    // Introspection by the client itself, and by the admin.
    let (st, i) = post_form(&h, "/introspect", Some((&id, &secret)), &[("token", &at2)]).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], id.as_str());
    assert_eq!(i["aud"], RESOURCE);
    assert_eq!(introspect(&h, &rt2).await["token_type"], "refresh_token");

    // Revoke the access token: introspection and every verifier see it.
    let (st, _) = post_form(
        &h,
        "/revoke",
        Some((&id, &secret)),
        &[("token", &at2), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(introspect(&h, &at2).await["active"], false);
    let c2 = verify_jwt(&h, &at2).await;
    assert!(h.revocations.is_revoked(TokenRef {
        jti: &c2.jti,
        sub: &c2.sub,
        client_id: None,
        iat: c2.iat
    }));

    // Revoke the refresh token: it stops working.
    let (st, _) = post_form(&h, "/revoke", Some((&id, &secret)), &[("token", &rt2)]).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, e) = token(
        &h,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // Unknown tokens: still 200.
    let (st, _) = post_form(
        &h,
        "/revoke",
        Some((&id, &secret)),
        &[("token", "nonsense")],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    h.running.shutdown().await;
}

#[tokio::test]
async fn public_client_session_and_remembered_consent() {
    let h = start().await;
    let c = register(&h, "none").await;
    assert!(c.get("client_secret").is_none());
    let id = c["client_id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&h);
    let (v, ch) = pkce_pair();
    let q = login_and_consent(
        &mut b,
        &authorize_url(&h, &id, &ch, &[("scope", "mcp:read mcp:write")]),
    )
    .await;
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], h.base.as_str());
    let (st, _, t) = token(
        &h,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &v),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["scope"], "mcp:read mcp:write");

    // Same browser again: session + remembered consent → straight back.
    let (_, ch2) = pkce_pair();
    let r = b
        .get(&authorize_url(&h, &id, &ch2, &[("scope", "mcp:read")]))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = location(&r);
    assert!(
        loc.starts_with(REDIRECT) && query(&loc).contains_key("code"),
        "{loc}"
    );

    // Public clients cannot introspect.
    let (st, e) = post_form(
        &h,
        "/introspect",
        None,
        &[
            ("token", t["access_token"].as_str().unwrap()),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    h.running.shutdown().await;
}

#[tokio::test]
async fn registration_management_rfc7592() {
    let h = start().await;
    let c = register(&h, "client_secret_post").await;
    let id = c["client_id"].as_str().unwrap();
    let uri = c["registration_client_uri"].as_str().unwrap();
    let tok = c["registration_access_token"].as_str().unwrap();
    assert_eq!(c["client_secret_expires_at"], 0);
    let r: Value = h
        .http
        .get(uri)
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["client_id"], id);
    assert_eq!(r["client_name"], "Test <Client>");
    assert!(r.get("client_secret").is_none());
    let upd = serde_json::json!({"client_id": id, "redirect_uris": [REDIRECT, "http://localhost:9999/cb"], "client_name": "Renamed", "token_endpoint_auth_method": "client_secret_post"});
    let r = h
        .http
        .put(uri)
        .bearer_auth(tok)
        .json(&upd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["client_name"], "Renamed");
    assert_eq!(r["redirect_uris"].as_array().unwrap().len(), 2);
    let r = h.http.delete(uri).bearer_auth(tok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = h.http.get(uri).bearer_auth(tok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    h.running.shutdown().await;
}

#[tokio::test]
async fn admin_api_revoke_and_rotate() {
    let h = start().await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let (_, t) = exchange(&h, &id, &secret, &code, &verifier).await;
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN);

    let r = h
        .http
        .get(format!("{}/admin/clients", h.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let list: Value = admin(h.http.get(format!("{}/admin/clients", h.admin)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret_hash").is_none());

    let old_kid = jsonwebtoken::decode_header(at).unwrap().kid.unwrap();
    let r: Value = admin(h.http.post(format!("{}/admin/keys/rotate", h.admin)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_kid = r["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let jwks: JwkSet = h
        .http
        .get(format!("{}/jwks", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks.keys.len(), 3, "retired + current + next");
    verify_jwt(&h, at).await;
    let (st, _, t2) = token(
        &h,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let at2 = t2["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(at2).unwrap().kid.unwrap(),
        new_kid
    );

    // Revoke everything of the user.
    h.clock.advance(std::time::Duration::from_millis(1100));
    let r = admin(h.http.post(format!("{}/admin/revoke", h.admin)))
        .json(&serde_json::json!({"sub": "local:alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect(&h, at2).await["active"], false);
    let rt2 = t2["refresh_token"].as_str().unwrap();
    let (st, _, _) = token(
        &h,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", rt2)],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let c = verify_jwt(&h, at2).await;
    assert!(h.revocations.is_revoked(TokenRef {
        jti: &c.jti,
        sub: &c.sub,
        client_id: None,
        iat: c.iat
    }));

    let r = admin(h.http.delete(format!("{}/admin/clients/{id}", h.admin)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = admin(h.http.delete(format!("{}/admin/clients/{id}", h.admin)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    h.running.shutdown().await;
}

#[tokio::test]
async fn embedded_store_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.redb");
    let toml = base_toml().replace(
        "kind = \"memory\"",
        &format!("kind = \"embedded\"\npath = \"{}\"", path.display()),
    );
    let h = start_toml(&toml, None).await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let (_, t) = exchange(&h, &id, &secret, &code, &verifier).await;
    let kid = jsonwebtoken::decode_header(t["access_token"].as_str().unwrap())
        .unwrap()
        .kid;
    h.running.shutdown().await;

    let h = restart_toml(&toml).await;
    let (st, _, t2) = token(
        &h,
        Some((&id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t2}");
    assert_eq!(
        jsonwebtoken::decode_header(t2["access_token"].as_str().unwrap())
            .unwrap()
            .kid,
        kid
    );
    h.running.shutdown().await;
}
