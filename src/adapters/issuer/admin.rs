//! The admin API (`Authorization: Bearer <admin token>`; every route
//! answers 401 when no admin token is configured), served on the internal
//! listener only. Every call, authorized or not, is an audit event.

use super::audit;
use super::token::auth_param;
use super::IssuerState;
use crate::issue::error::OAuthError;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

type St = State<Arc<IssuerState>>;

/// `POST /admin/revoke` body: exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeBody {
    pub sub: Option<String>,
    pub client_id: Option<String>,
}

fn check(st: &IssuerState, headers: &HeaderMap) -> Result<(), OAuthError> {
    if st.core.admin_authorized(auth_param(headers, "Bearer")) {
        Ok(())
    } else {
        Err(OAuthError::invalid_token())
    }
}

/// One admin call: authorizes, runs `f`, writes the audit line (`object`
/// says what it acted on; `f` may name it more precisely once the body is
/// read).
async fn audited<F, Fut>(
    st: &IssuerState,
    peer: SocketAddr,
    headers: &HeaderMap,
    action: &str,
    object: String,
    f: F,
) -> Result<Response, OAuthError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (String, Result<Response, OAuthError>)>,
{
    let ip = super::client_ip(st, peer.ip(), headers).to_string();
    if let Err(e) = check(st, headers) {
        audit::admin_call(action, false, &object, "unauthorized", &ip);
        return Err(e);
    }
    let (object, r) = f().await;
    let result = match &r {
        Ok(resp) if resp.status() == StatusCode::NOT_FOUND => "not_found",
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    };
    audit::admin_call(action, true, &object, result, &ip);
    r
}

/// `GET /admin/clients`.
pub(super) async fn admin_clients_get(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let core = st.core.clone();
    audited(
        &st,
        peer,
        &headers,
        "list_clients",
        String::new(),
        move || async move {
            let r = core.admin_list_clients().await;
            (String::new(), r.map(|l| Json(l).into_response()))
        },
    )
    .await
}

/// `DELETE /admin/clients/{id}` (204, or 404 if unknown).
pub(super) async fn admin_client_delete(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let object = format!("client_id:{id}");
    let core = st.core.clone();
    audited(
        &st,
        peer,
        &headers,
        "delete_client",
        object.clone(),
        move || async move {
            let r = match core.admin_delete_client(&id).await {
                Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
                Ok(false) => Ok(StatusCode::NOT_FOUND.into_response()),
                Err(e) => Err(e),
            };
            (object, r)
        },
    )
    .await
}

/// `POST /admin/revoke` with `{"sub": …}` or `{"client_id": …}`.
pub(super) async fn admin_revoke_post(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let core = st.core.clone();
    audited(
        &st,
        peer,
        &headers,
        "revoke",
        String::new(),
        move || async move {
            let b: RevokeBody = match serde_json::from_slice(&body) {
                Ok(b) => b,
                Err(_) => {
                    return (
                        String::new(),
                        Err(OAuthError::invalid_request(
                            "expected {\"sub\": …} or {\"client_id\": …}",
                        )),
                    )
                }
            };
            match (b.sub, b.client_id) {
                (Some(s), None) => {
                    let r = core.revoke_subject_tokens(&s).await;
                    (format!("sub:{s}"), r.map(|()| revoked()))
                }
                (None, Some(c)) => {
                    let r = core.revoke_client_tokens(&c).await;
                    (format!("client_id:{c}"), r.map(|()| revoked()))
                }
                _ => (
                    String::new(),
                    Err(OAuthError::invalid_request(
                        "give exactly one of sub, client_id",
                    )),
                ),
            }
        },
    )
    .await
}

fn revoked() -> Response {
    Json(serde_json::json!({"revoked": true})).into_response()
}

/// `POST /admin/keys/rotate`: returns the new signing `kid`.
pub(super) async fn admin_keys_rotate_post(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let st2 = st.clone();
    audited(
        &st,
        peer,
        &headers,
        "rotate_keys",
        String::new(),
        move || async move {
            match rotate(&st2).await {
                Ok((kid, r)) => (format!("kid:{kid}"), Ok(r)),
                Err(e) => (String::new(), Err(e)),
            }
        },
    )
    .await
}

async fn rotate(st: &IssuerState) -> Result<(String, Response), OAuthError> {
    let kid = st
        .core
        .keys()
        .rotate(st.core.now())
        .await
        .map_err(|e| match e {
            crate::issue::keys::KeyError::FileManaged => OAuthError::invalid_request(e.to_string()),
            other => OAuthError::server_error(other),
        })?;
    let r = Json(serde_json::json!({"kid": kid})).into_response();
    Ok((kid, r))
}
