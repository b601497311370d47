//! RFC 7591 `POST /register` and RFC 7592 `GET/PUT/DELETE
//! /register/{client_id}`.

use super::audit;
use super::client_ip;
use super::error::no_store;
use super::token::auth_param;
use super::IssuerState;
use crate::issue::error::{ErrorCode, OAuthError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::net::SocketAddr;
use std::sync::Arc;

type St = State<Arc<IssuerState>>;

fn json_body(body: &Bytes) -> Result<serde_json::Value, OAuthError> {
    serde_json::from_slice(body)
        .map_err(|_| OAuthError::new(ErrorCode::InvalidClientMetadata, "the body must be JSON"))
}

fn reply<T: serde::Serialize>(
    st: &IssuerState,
    what: &'static str,
    status: StatusCode,
    r: Result<T, OAuthError>,
) -> Response {
    match r {
        Ok(v) => {
            st.metrics.count(what, "ok");
            let mut resp = (status, Json(v)).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => {
            st.metrics.count(what, e.code.as_str());
            e.into_response()
        }
    }
}

/// `POST /register`.
pub(super) async fn register_create_post(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = client_ip(&st, peer.ip(), &headers).to_string();
    let token = auth_param(&headers, "Bearer");
    let r = match json_body(&body) {
        Ok(v) => st.core.register(&v, token, &ip).await,
        Err(e) => Err(e),
    };
    let (client_id, result) = match &r {
        Ok(v) => (
            serde_json::to_value(v)
                .ok()
                .and_then(|v| v.get("client_id")?.as_str().map(str::to_owned))
                .unwrap_or_default(),
            "ok",
        ),
        Err(e) => (String::new(), e.code.as_str()),
    };
    audit::client_event("client_registered", &client_id, result, &ip);
    reply(&st, "register", StatusCode::CREATED, r)
}

fn outcome<T>(r: &Result<T, OAuthError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    }
}

/// `GET /register/{client_id}`.
pub(super) async fn register_read_get(
    State(st): St,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = st
        .core
        .registration_read(&id, auth_param(&headers, "Bearer"))
        .await;
    reply(&st, "register_read", StatusCode::OK, r)
}

/// `PUT /register/{client_id}`.
pub(super) async fn register_update_put(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = auth_param(&headers, "Bearer");
    let r = match json_body(&body) {
        Ok(v) => st.core.registration_update(&id, token, &v).await,
        Err(e) => Err(e),
    };
    let ip = client_ip(&st, peer.ip(), &headers).to_string();
    audit::client_event("client_updated", &id, outcome(&r), &ip);
    reply(&st, "register_update", StatusCode::OK, r)
}

/// `DELETE /register/{client_id}` (204).
pub(super) async fn register_delete_delete(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = st
        .core
        .registration_delete(&id, auth_param(&headers, "Bearer"))
        .await;
    let ip = client_ip(&st, peer.ip(), &headers).to_string();
    audit::client_event("client_deleted", &id, outcome(&r), &ip);
    match r {
        Ok(()) => {
            st.metrics.count("register_delete", "ok");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            st.metrics.count("register_delete", e.code.as_str());
            e.into_response()
        }
    }
}
