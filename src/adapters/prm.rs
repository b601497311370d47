//! RFC 9728 OAuth 2.0 Protected Resource Metadata, one document per
//! resource, chosen by (forwarded) Host and the path after the well-known
//! prefix (§3.1); and, for clients that look for it at the MCP server's
//! origin (the 2025-03-26 MCP revision, some connectors), the authorization
//! server's RFC 8414 / OpenID metadata. Both readable cross-origin (CORS)
//! by browser-based clients. The documents themselves are built in
//! `verify/resource_metadata.rs`; this file answers them.

use super::verifier_state::VerifierState;
use crate::domain::well_known::{OAUTH_METADATA_PATH, OIDC_METADATA_PATH};
use crate::verify::resource_metadata::{AsDocKind, AsMetadata, PRM_PATH};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// `GET /.well-known/oauth-protected-resource`.
pub(crate) async fn prm_root_get(
    State(st): State<Arc<VerifierState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    prm_serve(&st, peer, &headers, "")
}

/// `GET /.well-known/oauth-protected-resource/<path>`.
pub(crate) async fn prm_path_get(
    State(st): State<Arc<VerifierState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(rest): Path<String>,
) -> Response {
    prm_serve(&st, peer, &headers, &format!("/{rest}"))
}

fn prm_serve(st: &VerifierState, peer: SocketAddr, headers: &HeaderMap, path: &str) -> Response {
    let host = st.effective_host(peer, headers);
    let host = crate::verify::request::host_without_port(host);
    match st.prm.find(host, path) {
        Some(doc) => json_doc(doc),
        None => (StatusCode::NOT_FOUND, "no protected resource here\n").into_response(),
    }
}

fn as_answer(m: &AsMetadata, kind: AsDocKind) -> Response {
    let Some(issuer) = m.issuer() else {
        return (
            StatusCode::NOT_FOUND,
            "no authorization server metadata here\n",
        )
            .into_response();
    };
    if m.serve_copy() {
        if let Some(doc) = m.cached(kind) {
            return json_doc(doc);
        }
    }
    match kind.url_for(issuer) {
        Some(u) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, u)]).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn json_doc(doc: bytes::Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        doc,
    )
        .into_response()
}

/// `GET /.well-known/oauth-authorization-server[/<path>]`.
pub(crate) async fn prm_as_metadata_get(State(st): State<Arc<VerifierState>>) -> Response {
    as_answer(&st.as_metadata, AsDocKind::OAuth)
}

/// `GET /.well-known/openid-configuration[/<path>]`.
pub(crate) async fn prm_oidc_metadata_get(State(st): State<Arc<VerifierState>>) -> Response {
    as_answer(&st.as_metadata, AsDocKind::Oidc)
}

/// The well-known routes (protected-resource and authorization-server
/// metadata) with CORS for browser-based clients: any origin, no
/// credentials (these documents are public and read no cookies), GET and
/// preflight; `MCP-Protocol-Version` is the header MCP clients add.
pub(crate) fn routes(state: Arc<VerifierState>) -> axum::Router {
    use axum::http::{HeaderName, Method};
    use axum::routing::get;
    use tower_http::cors::{Any, CorsLayer};
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    axum::Router::new()
        .route(PRM_PATH, get(prm_root_get))
        .route(&format!("{PRM_PATH}/{{*path}}"), get(prm_path_get))
        .route(OAUTH_METADATA_PATH, get(prm_as_metadata_get))
        .route(
            &format!("{OAUTH_METADATA_PATH}/{{*path}}"),
            get(prm_as_metadata_get),
        )
        .route(OIDC_METADATA_PATH, get(prm_oidc_metadata_get))
        .route(
            &format!("{OIDC_METADATA_PATH}/{{*path}}"),
            get(prm_oidc_metadata_get),
        )
        .layer(cors)
        .with_state(state)
}
