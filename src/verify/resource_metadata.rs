//! RFC 9728 OAuth 2.0 Protected Resource Metadata: the documents the
//! verifier serves, one per protected resource, and the metadata URL its
//! challenges name (`verify/policy.rs`, RFC 6750 / RFC 9728 §5.1). Also the
//! copy of the authorization server's RFC 8414 / OpenID metadata served at
//! the resource origin. Built once from configuration; `adapters::prm`
//! answers them over HTTP.

/// The well-known prefix (RFC 9728 §3).
pub(crate) const PRM_PATH: &str = "/.well-known/oauth-protected-resource";
/// Which of the authorization server's documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AsDocKind {
    /// RFC 8414.
    OAuth,
    /// OpenID Connect Discovery.
    Oidc,
}

/// The authorization server's metadata as answered at the resource origin:
/// a cached copy (filled by `app::verifier`), else a 307 to the original
/// (answered by `adapters::prm`).
#[derive(Debug, Default)]
pub struct AsMetadata {
    /// The single authorization server; `None` = not served (404).
    issuer: Option<String>,
    /// Serve a copy when one is cached (else always redirect).
    serve_copy: bool,
    docs: std::sync::RwLock<(Option<bytes::Bytes>, Option<bytes::Bytes>)>,
}

/// The facts one document is built from.
#[derive(Debug, Clone)]
pub(crate) struct PrmEntry {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub resource_name: Option<String>,
}

/// Prebuilt documents keyed by (lower-case host, resource path).
#[derive(Debug, Clone, Default)]
pub(crate) struct PrmDocs {
    docs: Vec<(String, String, bytes::Bytes)>,
}

/// The metadata URL for a resource: the well-known prefix inserted between
/// origin and path (RFC 9728 §3.1).
pub(crate) fn prm_url(resource: &url::Url) -> String {
    let path = resource.path().trim_end_matches('/');
    format!(
        "{}{PRM_PATH}{path}",
        resource.origin().ascii_serialization()
    )
}

// === impl AsDocKind ===

impl AsDocKind {
    /// The document's URL for an issuer: the well-known prefix inserted
    /// between origin and path (RFC 8414 §3.1; OpenID path-inserted form).
    pub(crate) fn url_for(self, issuer: &str) -> Option<String> {
        let u = url::Url::parse(issuer).ok()?;
        let i = match self {
            Self::OAuth => 0,
            Self::Oidc => 1,
        };
        crate::domain::well_known::metadata_urls(&u)
            .into_iter()
            .nth(i)
    }
}

// === impl AsMetadata ===

impl AsMetadata {
    /// The single authorization server; `None` = not served (404).
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Serve a copy when one is cached (else always redirect).
    pub(crate) fn serve_copy(&self) -> bool {
        self.serve_copy
    }

    pub(crate) fn new(issuer: Option<String>, serve_copy: bool) -> Self {
        Self {
            issuer,
            serve_copy,
            docs: Default::default(),
        }
    }

    /// Stores a fetched document; it must be a JSON object naming this
    /// issuer (RFC 8414 §3.3), else it is dropped.
    pub(crate) fn store(&self, kind: AsDocKind, body: &[u8]) -> bool {
        let Some(issuer) = &self.issuer else {
            return false;
        };
        let ok = serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v.get("issuer").and_then(|i| i.as_str()) == Some(issuer.as_str()));
        if ok {
            if let Ok(mut d) = self.docs.write() {
                let b = Some(bytes::Bytes::copy_from_slice(body));
                match kind {
                    AsDocKind::OAuth => d.0 = b,
                    AsDocKind::Oidc => d.1 = b,
                }
            }
        }
        ok
    }

    /// Whether any copy is cached.
    pub(crate) fn has_copy(&self) -> bool {
        self.docs
            .read()
            .is_ok_and(|d| d.0.is_some() || d.1.is_some())
    }

    /// The cached document of this kind (else of the other kind: both carry
    /// the endpoints an MCP client needs).
    pub(crate) fn cached(&self, kind: AsDocKind) -> Option<bytes::Bytes> {
        let d = self.docs.read().ok()?;
        match kind {
            AsDocKind::OAuth => d.0.clone().or_else(|| d.1.clone()),
            AsDocKind::Oidc => d.1.clone().or_else(|| d.0.clone()),
        }
    }
}

// === impl PrmDocs ===

impl PrmDocs {
    pub(crate) fn new(entries: &[PrmEntry]) -> Self {
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
    pub(crate) fn find(&self, host: &str, path: &str) -> Option<bytes::Bytes> {
        let path = path.trim_end_matches('/');
        if let Some((_, _, d)) = self
            .docs
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(host) && p == path)
        {
            return Some(d.clone());
        }
        let mut by_path = self.docs.iter().filter(|(_, p, _)| p == path);
        if let (Some((_, _, d)), None) = (by_path.next(), by_path.next()) {
            return Some(d.clone());
        }
        // The root document (`/.well-known/oauth-protected-resource` with no
        // path, which clients try last) when the host has a single resource.
        if path.is_empty() {
            let mut on_host = self
                .docs
                .iter()
                .filter(|(h, _, _)| h.eq_ignore_ascii_case(host));
            if let (Some((_, _, d)), None) = (on_host.next(), on_host.next()) {
                return Some(d.clone());
            }
            if let [(_, _, d)] = self.docs.as_slice() {
                return Some(d.clone());
            }
        }
        None
    }
}
