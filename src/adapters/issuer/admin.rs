//! The admin API (`Authorization: Bearer <admin token>`; every route
//! answers 401 when no admin token is configured).

use super::token::auth_param;
use super::IssuerState;
use crate::issue::error::OAuthError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

type St = State<Arc<IssuerState>>;

/// `POST /admin/revoke` body: exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
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

/// `GET /admin/clients`.
pub async fn admin_clients_get(State(st): St, headers: HeaderMap) -> Result<Response, OAuthError> {
    check(&st, &headers)?;
    Ok(Json(st.core.admin_list_clients().await?).into_response())
}

/// `DELETE /admin/clients/{id}` (204, or 404 if unknown).
pub async fn admin_client_delete(
    State(st): St,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    check(&st, &headers)?;
    Ok(if st.core.admin_delete_client(&id).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    })
}

/// `POST /admin/revoke` with `{"sub": …}` or `{"client_id": …}`.
pub async fn admin_revoke_post(
    State(st): St,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    check(&st, &headers)?;
    let b: RevokeBody = serde_json::from_slice(&body)
        .map_err(|_| OAuthError::invalid_request("expected {\"sub\": …} or {\"client_id\": …}"))?;
    match (b.sub, b.client_id) {
        (Some(s), None) => st.core.revoke_subject_tokens(&s).await?,
        (None, Some(c)) => st.core.revoke_client_tokens(&c).await?,
        _ => {
            return Err(OAuthError::invalid_request(
                "give exactly one of sub, client_id",
            ))
        }
    }
    Ok(Json(serde_json::json!({"revoked": true})).into_response())
}

/// `POST /admin/keys/rotate`: returns the new signing `kid`.
pub async fn admin_keys_rotate_post(
    State(st): St,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    check(&st, &headers)?;
    let kid = st
        .core
        .keys
        .rotate(st.core.now())
        .await
        .map_err(|e| match e {
            crate::issue::keys::KeyError::FileManaged => OAuthError::invalid_request(e.to_string()),
            other => OAuthError::server_error(other),
        })?;
    Ok(Json(serde_json::json!({"kid": kid})).into_response())
}
