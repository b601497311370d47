//! `/token` (RFC 6749 §3.2), `/revoke` (RFC 7009), `/introspect` (RFC 7662):
//! form bodies, client authentication from Basic or the body.

use super::audit;
use super::error::no_store;
use super::params::Params;
use super::IssuerState;
use crate::domain::secret::{ClientSecret, PkceVerifier, RefreshToken};
use crate::issue::clients::{AuthMethod, ClientCredentials};
use crate::issue::error::OAuthError;
use crate::issue::grant::TokenRequest;
use crate::issue::introspect::Introspector;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;

type St = State<Arc<IssuerState>>;

fn form_body(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(Params::parse(body))
}

fn decode_part(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The `Authorization` header value after `scheme ` (case-insensitive).
pub(super) fn auth_param<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1: form-encoded id
/// and secret) or the body. Using both is `invalid_request`.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    f: &Params,
) -> Result<ClientCredentials, OAuthError> {
    if let Some(b64) = auth_param(headers, "Basic") {
        let bad =
            || OAuthError::invalid_client("malformed Basic credentials").with_basic_challenge(true);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
        let id = decode_part(id);
        if f.get("client_secret").is_some() || f.get("client_id").is_some_and(|c| c != id) {
            return Err(OAuthError::invalid_request(
                "use one client authentication method",
            ));
        }
        // An empty password is a public client identifying itself.
        let secret = Some(decode_part(secret)).filter(|s| !s.is_empty());
        return Ok(ClientCredentials {
            client_id: Some(id),
            method: if secret.is_some() {
                AuthMethod::Basic
            } else {
                AuthMethod::None
            },
            secret: secret.map(ClientSecret::new),
        });
    }
    let secret = f.get("client_secret").map(ClientSecret::new);
    Ok(ClientCredentials {
        client_id: f.get("client_id"),
        method: if secret.is_some() {
            AuthMethod::Post
        } else {
            AuthMethod::None
        },
        secret,
    })
}

fn json_no_store<T: serde::Serialize>(v: &T) -> Response {
    let mut r = (StatusCode::OK, Json(v)).into_response();
    no_store(&mut r);
    r
}

/// `POST /token`.
pub(super) async fn token_exchange_post(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // For the audit line: what the request says it is (never a secret).
    let mut grant_type = String::new();
    let mut client_id = String::new();
    let result = async {
        let f = form_body(&headers, &body)?;
        grant_type = f.get("grant_type").unwrap_or_default();
        client_id = f.get("client_id").unwrap_or_default();
        let dup = f.duplicated(&["resource"]);
        if !dup.is_empty() {
            return Err(OAuthError::invalid_request(format!(
                "parameters repeated: {}",
                dup.join(", ")
            )));
        }
        let req = TokenRequest {
            grant_type: f.get("grant_type"),
            code: f.get("code"),
            redirect_uri: f.get("redirect_uri"),
            code_verifier: f.get("code_verifier").map(PkceVerifier::new),
            refresh_token: f.get("refresh_token").map(RefreshToken::new),
            scope: f.get("scope"),
            resource: f.all("resource"),
            client: client_credentials(&headers, &f)?,
        };
        if let Some(c) = &req.client.client_id {
            client_id.clone_from(c);
        }
        st.core.token(req).await
    }
    .await;
    let ip = super::client_ip(&st, peer.ip(), &headers).to_string();
    match result {
        Ok(t) => {
            st.metrics.count("token", "ok");
            audit::token_issued(&grant_type, &t.scope, &t.issued, &ip);
            json_no_store(&t)
        }
        Err(e) => {
            st.metrics.count("token", e.code.as_str());
            audit::token_refused(&grant_type, &client_id, e.code.as_str(), &ip);
            e.into_response()
        }
    }
}

/// `POST /revoke` (always 200 for unknown tokens).
pub(super) async fn token_revoke_post(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut client_id = String::new();
    let mut hint = String::new();
    let result = async {
        let f = form_body(&headers, &body)?;
        hint = f.get("token_type_hint").unwrap_or_default();
        let client = st
            .core
            .authenticate_client(&client_credentials(&headers, &f)?)
            .await?;
        client_id.clone_from(&client.client_id);
        let token = f
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        st.core
            .revoke(&client, &token, f.get("token_type_hint").as_deref())
            .await
    }
    .await;
    let ip = super::client_ip(&st, peer.ip(), &headers).to_string();
    let outcome = match &result {
        Ok(()) => "ok",
        Err(e) => e.code.as_str(),
    };
    audit::token_revoked(&client_id, &hint, outcome, &ip);
    match result {
        Ok(()) => {
            st.metrics.count("revoke", "ok");
            let mut r = StatusCode::OK.into_response();
            no_store(&mut r);
            r
        }
        Err(e) => {
            st.metrics.count("revoke", e.code.as_str());
            e.into_response()
        }
    }
}

/// `POST /introspect`: a confidential client (its own tokens) or the admin
/// bearer token (any token).
pub(super) async fn token_introspect_post(
    State(st): St,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let f = form_body(&headers, &body)?;
        let who = if st.core.admin_authorized(auth_param(&headers, "Bearer")) {
            Introspector::Admin
        } else {
            let creds = client_credentials(&headers, &f)?;
            if creds.secret.is_none() {
                return Err(OAuthError::invalid_client("client authentication required")
                    .with_basic_challenge(true));
            }
            Introspector::Client(st.core.authenticate_client(&creds).await?.client_id)
        };
        let token = f
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        st.core.introspect(&who, &token).await
    }
    .await;
    match result {
        Ok(i) => {
            st.metrics.count("introspect", "ok");
            json_no_store(&i)
        }
        Err(e) => {
            st.metrics.count("introspect", e.code.as_str());
            e.into_response()
        }
    }
}
