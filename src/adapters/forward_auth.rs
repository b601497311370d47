//! Traefik ForwardAuth, nginx `auth_request` and caddy `forward_auth`:
//! the original request arrives as `X-Forwarded-*` / `X-Original-*`
//! headers, trusted only from configured proxy CIDRs. Answers 200 with the
//! identity headers, or 401/403 with `WWW-Authenticate` (nginx copies it
//! with `auth_request_set`), or 503 when revocation data is stale.

use super::verifier_state::{header_str, RequestIds, VerifierState};
use crate::verify::authorizer::Decision;
use crate::verify::decision::Verdict;
use crate::verify::request::AuthzRequest;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// The ForwardAuth path; any method, any sub-path.
pub(crate) const AUTH_PATH: &str = "/auth";

/// The one readable copy of a header. Several copies (any spelling: the
/// map is case-insensitive), or a value that is not visible ASCII, set
/// `ambiguous`: the request is refused rather than decided on one of them.
fn one<'a>(h: &'a HeaderMap, name: &str, ambiguous: &mut bool) -> Option<&'a str> {
    let mut it = h.get_all(name).iter();
    let first = it.next()?;
    if it.next().is_some() {
        *ambiguous = true;
    }
    match first.to_str() {
        Ok(v) => Some(v),
        Err(_) => {
            *ambiguous = true;
            None
        }
    }
}

/// `ANY /auth[/*]`. The original method, URI and host come from the
/// trusted proxy's `X-Forwarded-*` or `X-Original-*` headers; where both
/// are present they must agree (one source of truth), and every fact must
/// arrive once. A forwarded body (Traefik `forwardBody`) is the JSON-RPC
/// request the per-tool scopes are decided on.
pub(crate) async fn forward_auth_check_any(
    State(st): State<Arc<VerifierState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let trusted = st.is_trusted_proxy(peer.ip());
    let mut ambiguous = false;
    let mut fwd = |a: &str, b: &str| {
        if !trusted {
            return None;
        }
        let x = one(&headers, a, &mut ambiguous);
        let y = one(&headers, b, &mut ambiguous);
        match (x, y) {
            (Some(x), Some(y)) if x != y => {
                ambiguous = true;
                None
            }
            (x, y) => x.or(y),
        }
    };
    let own_path = uri
        .path()
        .strip_prefix(AUTH_PATH)
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let f_method = fwd("x-forwarded-method", "x-original-method");
    let f_path = fwd("x-forwarded-uri", "x-original-uri");
    let f_host = fwd("x-forwarded-host", "x-original-host");
    let host = match f_host {
        Some(h) => h,
        None => one(&headers, "host", &mut ambiguous).unwrap_or(""),
    };
    let authorization = match headers.get_all(header::AUTHORIZATION).iter().count() {
        0 | 1 => header_str(&headers, "authorization"),
        _ => {
            ambiguous = true;
            None
        }
    };
    let areq = AuthzRequest {
        method: f_method.unwrap_or(method.as_str()),
        host,
        path: f_path.unwrap_or(own_path),
        unverified_authorization: authorization,
        mcp_method: one(&headers, "mcp-method", &mut ambiguous),
        mcp_name: one(&headers, "mcp-name", &mut ambiguous),
        protocol_version: one(&headers, "mcp-protocol-version", &mut ambiguous),
        body: Some(body.as_ref()).filter(|b| !b.is_empty()),
        ambiguous,
    };
    let d = st.authorizer.check(&areq).await;
    // Correlation ids, for the log only (never part of the decision).
    let ids = RequestIds {
        request_id: header_str(&headers, "x-request-id"),
        traceparent: header_str(&headers, "traceparent"),
    };
    st.metrics.decision_took("http", started.elapsed());
    st.record("http", &areq, ids, &d);
    encode(&st, d)
}

fn encode(st: &VerifierState, d: Decision<'_>) -> Response {
    match d.verdict {
        Verdict::Allow(identity) => {
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
        Verdict::Deny(deny) => {
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
