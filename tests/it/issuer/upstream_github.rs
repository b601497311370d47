//! `GitHubIdp` against a local fake of GitHub's three endpoints.

use axum::extract::Form;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use mcpgate::domain::secret::{ClientSecret, PkceVerifier};
use mcpgate::infra::github::{GitHubIdp, GitHubSettings};
use mcpgate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamIdp};
use serde_json::{json, Value};
use std::collections::HashMap;

const VERIFIER: &str = "github-test-verifier-0123456789-0123456789-abc";

async fn token(Form(f): Form<HashMap<String, String>>) -> Json<Value> {
    let ok = f.get("client_id").map(String::as_str) == Some("gh-client")
        && f.get("client_secret").map(String::as_str) == Some("gh-secret")
        && f.get("redirect_uri").map(String::as_str) == Some("https://as.example/callback/github")
        && f.get("code_verifier").map(String::as_str) == Some(VERIFIER);
    // GitHub answers errors with 200 and an `error` field.
    match (ok, f.get("code").map(String::as_str)) {
        (true, Some("with-email")) => Json(
            json!({"access_token": "tok-123", "token_type": "bearer", "scope": "read:user,user:email"}),
        ),
        (true, Some("no-email")) => {
            Json(json!({"access_token": "tok-123", "token_type": "bearer", "scope": "read:user"}))
        }
        _ => Json(json!({"error": "bad_verification_code", "error_description": "bad"})),
    }
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-123")
        && h.get("user-agent").is_some()
}

async fn user(h: HeaderMap) -> Result<Json<Value>, axum::http::StatusCode> {
    if !authorized(&h) {
        return Err(axum::http::StatusCode::UNAUTHORIZED);
    }
    Ok(Json(
        json!({"id": 583231, "login": "octocat", "name": "The Octocat", "email": "public@example.com"}),
    ))
}

async fn emails(h: HeaderMap) -> Result<Json<Value>, axum::http::StatusCode> {
    if !authorized(&h) {
        return Err(axum::http::StatusCode::UNAUTHORIZED);
    }
    Ok(Json(json!([
        {"email": "old@example.com", "primary": false, "verified": true},
        {"email": "octo@example.com", "primary": true, "verified": true},
    ])))
}

async fn fake_github() -> String {
    let app = Router::new()
        .route("/login/oauth/access_token", post(token))
        .route("/user", get(user))
        .route("/user/emails", get(emails));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn idp(base: &str) -> GitHubIdp {
    let mut s = GitHubSettings::new("gh-client", ClientSecret::new("gh-secret"));
    s.web_base = base.to_string();
    s.api_base = format!("{base}/");
    GitHubIdp::new(s, reqwest::Client::new())
}

fn auth_request() -> UpstreamAuthRequest {
    UpstreamAuthRequest {
        state: "st-1".into(),
        redirect_uri: "https://as.example/callback/github".into(),
        pkce_verifier: PkceVerifier::new(VERIFIER),
        nonce: "unused".into(),
    }
}

#[tokio::test]
async fn github_authorize_url_carries_state_and_pkce() {
    let idp = idp("https://github.example");
    let url = url::Url::parse(&idp.authorize_url(&auth_request()).unwrap()).unwrap();
    assert_eq!(url.path(), "/login/oauth/authorize");
    let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "gh-client");
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["redirect_uri"], "https://as.example/callback/github");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["code_challenge"],
        mcpgate::domain::secret::pkce_s256(VERIFIER)
    );
    assert_eq!(idp.id(), "github");
}

#[tokio::test]
async fn github_exchange_reads_user_and_verified_primary_email() {
    let base = fake_github().await;
    let user = idp(&base)
        .exchange("with-email", &auth_request())
        .await
        .unwrap();
    assert_eq!(user.subject, "github:583231");
    assert_eq!(user.username.as_deref(), Some("octocat"));
    assert_eq!(user.email.as_deref(), Some("octo@example.com"));
    assert!(user.email_verified);
    assert_eq!(user.name.as_deref(), Some("The Octocat"));
}

#[tokio::test]
async fn github_exchange_without_email_scope_does_not_verify_email() {
    let base = fake_github().await;
    let user = idp(&base)
        .exchange("no-email", &auth_request())
        .await
        .unwrap();
    assert_eq!(user.email.as_deref(), Some("public@example.com"));
    assert!(!user.email_verified);
}

#[tokio::test]
async fn github_bad_code_and_unreachable_are_errors() {
    let base = fake_github().await;
    let err = idp(&base)
        .exchange("wrong", &auth_request())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Rejected(_)), "{err:?}");

    let mut wrong_verifier = auth_request();
    wrong_verifier.pkce_verifier = PkceVerifier::new("other");
    let err = idp(&base)
        .exchange("with-email", &wrong_verifier)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Rejected(_)), "{err:?}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = idp(&dead)
        .exchange("with-email", &auth_request())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable(_)), "{err:?}");
}
