//! RFC 9728 OAuth 2.0 Protected Resource Metadata, one document per
//! resource, chosen by (forwarded) Host and the path after the well-known
//! prefix (§3.1).

use super::verifier_state::VerifierState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The well-known prefix (RFC 9728 §3).
pub const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

/// The facts one document is built from.
#[derive(Debug, Clone)]
pub struct PrmEntry {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub resource_name: Option<String>,
}

/// Prebuilt documents keyed by (lower-case host, resource path).
#[derive(Debug, Clone, Default)]
pub struct PrmDocs {
    docs: Vec<(String, String, bytes::Bytes)>,
}

/// The metadata URL for a resource: the well-known prefix inserted between
/// origin and path (RFC 9728 §3.1).
pub fn prm_url(resource: &url::Url) -> String {
    let path = resource.path().trim_end_matches('/');
    format!(
        "{}{PRM_PATH}{path}",
        resource.origin().ascii_serialization()
    )
}

// === impl PrmDocs ===

impl PrmDocs {
    pub fn new(entries: &[PrmEntry]) -> Self {
        let mut docs = Vec::new();
        for e in entries {
            let Ok(u) = url::Url::parse(&e.resource) else {
                continue;
            };
            let mut doc = serde_json::json!({
                "resource": e.resource,
                "authorization_servers": e.authorization_servers,
                "bearer_methods_supported": ["header"],
            });
            let scopes: Vec<&String> = e
                .scopes_supported
                .iter()
                .filter(|s| *s != "offline_access")
                .collect();
            if !scopes.is_empty() {
                doc["scopes_supported"] = serde_json::json!(scopes);
            }
            if let Some(n) = &e.resource_name {
                doc["resource_name"] = serde_json::json!(n);
            }
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            let path = u.path().trim_end_matches('/').to_owned();
            if docs.iter().any(|(h, p, _)| *h == host && *p == path) {
                continue;
            }
            docs.push((host, path, bytes::Bytes::from(doc.to_string())));
        }
        Self { docs }
    }

    /// The document for `host` (no port) and resource `path`; falls back to
    /// a path-only match when the host is unknown and the path unique.
    pub fn find(&self, host: &str, path: &str) -> Option<bytes::Bytes> {
        let path = path.trim_end_matches('/');
        if let Some((_, _, d)) = self
            .docs
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(host) && p == path)
        {
            return Some(d.clone());
        }
        let mut by_path = self.docs.iter().filter(|(_, p, _)| p == path);
        match (by_path.next(), by_path.next()) {
            (Some((_, _, d)), None) => Some(d.clone()),
            _ => None,
        }
    }
}

/// `GET /.well-known/oauth-protected-resource`.
pub async fn prm_root_get(
    State(st): State<Arc<VerifierState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    prm_serve(&st, peer, &headers, "")
}

/// `GET /.well-known/oauth-protected-resource/<path>`.
pub async fn prm_path_get(
    State(st): State<Arc<VerifierState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(rest): Path<String>,
) -> Response {
    prm_serve(&st, peer, &headers, &format!("/{rest}"))
}

fn prm_serve(st: &VerifierState, peer: SocketAddr, headers: &HeaderMap, path: &str) -> Response {
    let host = super::forward_auth::effective_host(st, peer, headers);
    let host = crate::verify::request::host_without_port(host);
    match st.prm.find(host, path) {
        Some(doc) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            doc,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no protected resource here\n").into_response(),
    }
}
