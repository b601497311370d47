//! Per-route policy: host/path prefix → resource, required scopes, per-tool
//! scopes, public routes; RFC 8707 audience matching; RFC 6750 / MCP
//! challenges.

use crate::domain::claims::{Audience, Scopes};

/// Scopes an MCP operation needs, keyed by the `Mcp-Method` and optional
/// `Mcp-Name` request headers.
#[derive(Debug, Clone)]
pub struct ToolRule {
    pub method: String,
    /// `None` matches every name of the method.
    pub name: Option<String>,
    pub scopes: Scopes,
}

/// One protected (or public) resource.
#[derive(Debug, Clone)]
pub struct Route {
    /// Exact host (case-insensitive, no port); `None` matches any host.
    pub host: Option<String>,
    pub path_prefix: String,
    /// Canonical resource URI (RFC 8707), the expected `aud`.
    pub resource: String,
    pub required_scopes: Scopes,
    pub tool_scopes: Vec<ToolRule>,
    pub public: bool,
    pub fail_open_on_stale_revocation: bool,
    /// URL of this resource's RFC 9728 metadata document.
    pub prm_url: String,
    /// Precomputed challenge for a request without a token.
    pub challenge_missing: String,
    /// Precomputed challenge for a rejected token.
    pub challenge_invalid: String,
}

/// Routes, matched by host then longest path prefix at a segment boundary.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

// === impl Route ===

impl Route {
    /// Builds a route, precomputing its challenges. `offline_access` is
    /// never offered in a challenge.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: Option<String>,
        path_prefix: String,
        resource: String,
        required_scopes: Scopes,
        tool_scopes: Vec<ToolRule>,
        public: bool,
        fail_open_on_stale_revocation: bool,
        prm_url: String,
    ) -> Self {
        let scope = challenge_scope(&required_scopes);
        let scope_part = if scope.is_empty() {
            String::new()
        } else {
            format!(", scope=\"{scope}\"")
        };
        let challenge_missing = format!("Bearer resource_metadata=\"{prm_url}\"{scope_part}");
        let challenge_invalid =
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{prm_url}\"{scope_part}");
        Self {
            host: host.map(|h| h.to_ascii_lowercase()),
            path_prefix,
            resource,
            required_scopes,
            tool_scopes,
            public,
            fail_open_on_stale_revocation,
            prm_url,
            challenge_missing,
            challenge_invalid,
        }
    }

    /// Scopes needed for this request: the route's plus matching tool rules.
    pub fn scopes_for(
        &self,
        mcp_method: Option<&str>,
        mcp_name: Option<&str>,
    ) -> std::borrow::Cow<'_, Scopes> {
        let Some(m) = mcp_method else {
            return std::borrow::Cow::Borrowed(&self.required_scopes);
        };
        let mut out: Option<Scopes> = None;
        for r in &self.tool_scopes {
            let name_ok = r.name.as_deref().is_none_or(|n| Some(n) == mcp_name);
            if r.method == m && name_ok {
                let base = out.take().unwrap_or_else(|| self.required_scopes.clone());
                out = Some(base.union(&r.scopes));
            }
        }
        match out {
            Some(s) => std::borrow::Cow::Owned(s),
            None => std::borrow::Cow::Borrowed(&self.required_scopes),
        }
    }

    /// The 403 step-up challenge (MCP 2025-11-25).
    pub fn challenge_insufficient(&self, needed: &Scopes) -> String {
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
            challenge_scope(needed),
            self.prm_url
        )
    }

    /// RFC 8707 audience check: exact, or (if allowed) a parent resource at
    /// a path boundary.
    pub fn audience_ok(&self, aud: &Audience, allow_parent: bool) -> bool {
        aud.iter()
            .any(|a| a == self.resource || (allow_parent && is_parent_resource(a, &self.resource)))
    }

    fn matches(&self, host: &str, path: &str) -> bool {
        self.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && prefix_at_boundary(&self.path_prefix, path)
    }
}

/// The scopes offered in a challenge, without `offline_access`.
fn challenge_scope(s: &Scopes) -> String {
    let mut out = String::new();
    for sc in s.iter().filter(|s| *s != "offline_access") {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(sc);
    }
    out
}

/// `prefix` is `path` or a parent of it at a `/` boundary.
pub fn prefix_at_boundary(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() || prefix == "/" {
        return true;
    }
    let p = prefix.trim_end_matches('/');
    path.strip_prefix(p)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `parent` equals `child` up to a path boundary (`https://a/x` is a parent
/// of `https://a/x/y`, not of `https://a/xy`).
pub fn is_parent_resource(parent: &str, child: &str) -> bool {
    let p = parent.trim_end_matches('/');
    child
        .strip_prefix(p)
        .is_some_and(|rest| rest.starts_with('/'))
        && p.matches('/').count() >= 2
}

// === impl Routes ===

impl Routes {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// The route for `host` (no port) and `path` (no query): host-specific
    /// routes win over any-host ones, then the longest prefix.
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.matches(host, path))
            .max_by_key(|r| (r.host.is_some(), r.path_prefix.trim_end_matches('/').len()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: &str, tools: Vec<ToolRule>) -> Route {
        Route::new(
            host.map(str::to_owned),
            prefix.into(),
            format!("https://mcp.example.com{prefix}"),
            Scopes::parse("mcp offline_access"),
            tools,
            false,
            false,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into(),
        )
    }

    #[test]
    fn matching_and_challenges() {
        let rs = Routes::new(vec![
            route(None, "/", vec![]),
            route(Some("A.example"), "/mcp", vec![]),
        ]);
        assert_eq!(rs.find("a.example", "/mcp/x").unwrap().path_prefix, "/mcp");
        assert_eq!(rs.find("a.example", "/mcpx").unwrap().path_prefix, "/");
        assert_eq!(rs.find("b.example", "/mcp").unwrap().path_prefix, "/");
        let r = rs.find("a.example", "/mcp").unwrap();
        assert!(r.challenge_missing.ends_with("scope=\"mcp\""));
        assert!(!r.challenge_invalid.contains("offline_access"));
    }

    #[test]
    fn tool_scopes_and_audience() {
        let r = route(
            None,
            "/mcp",
            vec![ToolRule {
                method: "tools/call".into(),
                name: Some("delete_file".into()),
                scopes: Scopes::parse("files:write"),
            }],
        );
        assert!(r
            .scopes_for(Some("tools/call"), Some("delete_file"))
            .contains("files:write"));
        assert!(!r
            .scopes_for(Some("tools/call"), Some("read"))
            .contains("files:write"));
        assert!(r.audience_ok(&Audience::One("https://mcp.example.com/mcp".into()), false));
        assert!(!r.audience_ok(&Audience::One("https://mcp.example.com".into()), false));
        assert!(is_parent_resource(
            "https://mcp.example.com",
            "https://mcp.example.com/mcp"
        ));
        assert!(!is_parent_resource(
            "https://mcp.example.com/m",
            "https://mcp.example.com/mcp"
        ));
    }
}
