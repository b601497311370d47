//! Traefik ForwardAuth, nginx `auth_request` and caddy `forward_auth`:
//! the original request arrives as `X-Forwarded-*` / `X-Original-*`
//! headers, trusted only from configured proxy CIDRs. Answers 200 with the
//! identity headers, or 401/403 with `WWW-Authenticate` (nginx copies it
//! with `auth_request_set`), or 503 when revocation data is stale.

use super::verifier_state::VerifierState;
use crate::verify::decision::Decision;
use crate::verify::request::AuthzRequest;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// The ForwardAuth path; any method, any sub-path.
pub const AUTH_PATH: &str = "/auth";

/// The verifier's HTTP routes: ForwardAuth, PRM, health, metrics.
pub fn routes(state: Arc<VerifierState>) -> Router {
    use super::{health, prm};
    Router::new()
        .route(AUTH_PATH, any(forward_auth_check_any))
        .route("/auth/{*rest}", any(forward_auth_check_any))
        .route("/healthz", get(health::health_live_get))
        .route("/readyz", get(health::health_ready_get))
        .route("/metrics", get(health::health_metrics_get))
        .with_state(state.clone())
        .merge(prm::routes(state))
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The Host of the original request: `X-Forwarded-Host` /
/// `X-Original-Host` from a trusted proxy, else `Host`.
pub fn effective_host<'a>(st: &VerifierState, peer: SocketAddr, h: &'a HeaderMap) -> &'a str {
    if st.is_trusted_proxy(peer.ip()) {
        if let Some(v) =
            header_str(h, "x-forwarded-host").or_else(|| header_str(h, "x-original-host"))
        {
            return v.split(',').next().unwrap_or(v).trim();
        }
    }
    header_str(h, "host").unwrap_or("")
}

/// `ANY /auth[/*]`.
pub async fn forward_auth_check_any(
    State(st): State<Arc<VerifierState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let trusted = st.is_trusted_proxy(peer.ip());
    let fwd = |a: &str, b: &str| {
        if trusted {
            header_str(&headers, a).or_else(|| header_str(&headers, b))
        } else {
            None
        }
    };
    let own_path = uri
        .path()
        .strip_prefix(AUTH_PATH)
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let areq = AuthzRequest {
        method: fwd("x-forwarded-method", "x-original-method").unwrap_or(method.as_str()),
        host: effective_host(&st, peer, &headers),
        path: fwd("x-forwarded-uri", "x-original-uri").unwrap_or(own_path),
        unverified_authorization: header_str(&headers, "authorization"),
        mcp_method: header_str(&headers, "mcp-method"),
        mcp_name: header_str(&headers, "mcp-name"),
    };
    let d = st.authorizer.check(&areq).await;
    st.record("http", &d);
    encode(&st, d)
}

fn encode(st: &VerifierState, d: Decision) -> Response {
    match d {
        Decision::Allow(identity) => {
            let mut out = HeaderMap::new();
            if let Some(vt) = identity {
                for (name, v) in st.headers.http_names.iter().zip(vt.header_values.iter()) {
                    if let Some(Ok(v)) = v.as_deref().map(HeaderValue::from_str) {
                        out.insert(name.clone(), v);
                    }
                }
            }
            (StatusCode::OK, out).into_response()
        }
        Decision::Deny(deny) => {
            let status = StatusCode::from_u16(deny.status).unwrap_or(StatusCode::FORBIDDEN);
            let mut out = HeaderMap::new();
            if let Some(v) = deny.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                out.insert(header::WWW_AUTHENTICATE, v);
            }
            out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            (status, out).into_response()
        }
    }
}
