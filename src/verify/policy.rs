//! Per-route policy: host/path prefix → resource, required scopes, per-tool
//! scopes, public routes; RFC 8707 audience matching; RFC 6750 / MCP
//! challenges.

use super::decision::DenyReason;
use super::request::{canonical_host, decode_mcp_header, headers_bound_to_body};
use super::route_index::RouteIndex;
use crate::domain::claims::{Audience, Scopes};
use std::borrow::Cow;

/// Scopes an MCP operation needs, keyed by the `Mcp-Method` and optional
/// `Mcp-Name` request headers.
#[derive(Debug, Clone)]
pub(crate) struct ToolRule {
    pub method: String,
    /// `None` matches every name of the method.
    pub name: Option<String>,
    pub scopes: Scopes,
}

/// One protected (or public) resource. Built by [`Route::new`] (which
/// precomputes its challenges) and read by the decision; others see its
/// name through the accessors.
#[derive(Debug, Clone)]
pub struct Route {
    /// Exact host (case-insensitive, no port); `None` matches any host.
    pub(super) host: Option<String>,
    pub(super) path_prefix: String,
    /// Canonical resource URI (RFC 8707), the expected `aud`.
    pub(super) resource: String,
    pub(super) required_scopes: Scopes,
    pub(super) tool_scopes: Vec<ToolRule>,
    /// The required scopes plus every tool rule's: what a request that
    /// cannot be classified needs on a route with tool rules.
    pub(super) strongest_scopes: Scopes,
    pub(super) public: bool,
    pub(super) fail_open_on_stale_revocation: bool,
    /// URL of this resource's RFC 9728 metadata document.
    pub(super) prm_url: String,
    /// Precomputed challenge for a request without a token.
    pub(super) challenge_missing: String,
    /// Precomputed challenge for a rejected token.
    pub(super) challenge_invalid: String,
}

/// Routes, matched by host then longest path prefix at a segment boundary
/// (through an index built here, so the cost does not grow with the count).
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes {
    routes: Vec<Route>,
    index: RouteIndex,
}

// === impl Route ===

impl Route {
    /// Builds a route, precomputing its challenges. `offline_access` is
    /// never offered in a challenge.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
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
        let strongest_scopes = tool_scopes
            .iter()
            .fold(required_scopes.clone(), |acc, r| acc.union(&r.scopes));
        // Routes are matched against canonical hosts; a configured host
        // that has no canonical form can only be matched exactly.
        let host = host.map(|h| match canonical_host(&h) {
            Ok(c) => c.into_owned(),
            Err(_) => h.to_ascii_lowercase(),
        });
        Self {
            host,
            path_prefix,
            resource,
            required_scopes,
            tool_scopes,
            strongest_scopes,
            public,
            fail_open_on_stale_revocation,
            prm_url,
            challenge_missing,
            challenge_invalid,
        }
    }

    /// The path prefix it matches (its name in the logs).
    pub(crate) fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// Its canonical resource URI (RFC 8707), the expected `aud`.
    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }

    /// Scopes needed for this request: the route's plus matching tool rules.
    pub(crate) fn scopes_for(
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

    /// Scopes this request needs, from what can be known of the MCP
    /// operation (DESIGN.md §4, one source of truth per fact):
    /// - a route without tool rules: its required scopes (nothing parsed);
    /// - a forwarded JSON-RPC body: the union over its messages (a batch
    ///   included) of what each `method` / tool name needs; `Mcp-Method` /
    ///   `Mcp-Name` headers that disagree with the body are refused;
    /// - else, on a POST: the (decoded) headers when the protocol version
    ///   binds them to the body (2026-07-28 and later), otherwise the
    ///   strongest scopes the route's rules can require;
    /// - any other method (GET stream, DELETE session): the required ones.
    pub(crate) fn needed_scopes(
        &self,
        http_method: &str,
        mcp_method: Option<&str>,
        mcp_name: Option<&str>,
        protocol_version: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Cow<'_, Scopes>, DenyReason> {
        if self.tool_scopes.is_empty() {
            return Ok(Cow::Borrowed(&self.required_scopes));
        }
        let bad = |_| DenyReason::BadRequest;
        let hm = mcp_method.map(decode_mcp_header).transpose().map_err(bad)?;
        let hn = mcp_name.map(decode_mcp_header).transpose().map_err(bad)?;
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            let Some(calls) = rpc_calls(body) else {
                return Ok(Cow::Borrowed(&self.strongest_scopes));
            };
            let mut out: Option<Scopes> = None;
            for c in &calls {
                let method = c.method.as_deref();
                let name = match method {
                    Some("resources/read") => c.uri(),
                    _ => c.name(),
                };
                if hm.as_deref().is_some_and(|h| Some(h) != method)
                    || hn.as_deref().is_some_and(|h| Some(h) != name)
                {
                    return Err(DenyReason::McpMismatch);
                }
                if let Cow::Owned(s) = self.scopes_for(method, name) {
                    out = Some(match out {
                        Some(o) => o.union(&s),
                        None => s,
                    });
                }
            }
            return Ok(match out {
                Some(s) => Cow::Owned(s),
                None => Cow::Borrowed(&self.required_scopes),
            });
        }
        if !http_method.eq_ignore_ascii_case("POST") {
            return Ok(Cow::Borrowed(&self.required_scopes));
        }
        match hm {
            Some(m) if headers_bound_to_body(protocol_version) => Ok(Cow::Owned(
                self.scopes_for(Some(&m), hn.as_deref()).into_owned(),
            )),
            _ => Ok(Cow::Borrowed(&self.strongest_scopes)),
        }
    }

    /// The 403 step-up challenge (MCP 2025-11-25).
    pub(crate) fn challenge_insufficient(&self, needed: &Scopes) -> String {
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
            challenge_scope(needed),
            self.prm_url
        )
    }

    /// RFC 8707 audience check: exact, or (if allowed) a parent resource at
    /// a path boundary.
    pub(crate) fn audience_ok(&self, aud: &Audience, allow_parent: bool) -> bool {
        aud.iter()
            .any(|a| a == self.resource || (allow_parent && is_parent_resource(a, &self.resource)))
    }

    #[cfg(test)]
    fn matches(&self, host: &str, path: &str) -> bool {
        self.host.as_deref().is_none_or(|h| h == host)
            && prefix_at_boundary(&self.path_prefix, path)
    }
}

/// One JSON-RPC message, only the fields the policy reads, borrowed from
/// the body (everything else is skipped unparsed).
#[derive(serde::Deserialize)]
struct RpcMessage<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<RpcParams<'a>>,
}

#[derive(serde::Deserialize)]
struct RpcParams<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
}

impl RpcMessage<'_> {
    fn name(&self) -> Option<&str> {
        self.params.as_ref().and_then(|p| p.name.as_deref())
    }
    fn uri(&self) -> Option<&str> {
        self.params.as_ref().and_then(|p| p.uri.as_deref())
    }
}

/// The messages of a JSON-RPC body (one object or a non-empty batch), or
/// `None` when it is not one we can read (then nothing is assumed).
/// serde rejects duplicate keys, so `{"method":"a","method":"b"}` is not
/// read either way.
fn rpc_calls(body: &[u8]) -> Option<Vec<RpcMessage<'_>>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        let v: Vec<RpcMessage<'_>> = serde_json::from_slice(body).ok()?;
        (!v.is_empty()).then_some(v)
    } else {
        serde_json::from_slice(body).ok().map(|m| vec![m])
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

/// `prefix` is `path` or a parent of it at a `/` boundary: the linear rule,
/// kept as the route index's test oracle.
#[cfg(test)]
fn prefix_at_boundary(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() || prefix == "/" {
        return true;
    }
    let p = prefix.trim_end_matches('/');
    path.strip_prefix(p)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `parent` equals `child` up to a path boundary (`https://a/x` is a parent
/// of `https://a/x/y`, not of `https://a/xy`).
pub(crate) fn is_parent_resource(parent: &str, child: &str) -> bool {
    let p = parent.trim_end_matches('/');
    child
        .strip_prefix(p)
        .is_some_and(|rest| rest.starts_with('/'))
        && p.matches('/').count() >= 2
}

// === impl Routes ===

impl Routes {
    pub(crate) fn new(routes: Vec<Route>) -> Self {
        let index = RouteIndex::new(
            routes
                .iter()
                .map(|r| (r.host.as_deref(), r.path_prefix.as_str())),
        );
        Self { routes, index }
    }

    /// The route for a canonical `host` and `path`: host-specific
    /// routes win over any-host ones, then the longest prefix, then the
    /// later route.
    pub(crate) fn find(&self, host: &str, path: &str) -> Option<&Route> {
        self.index.find(host, path).and_then(|i| self.routes.get(i))
    }

    /// The rule [`Routes::find`] implements, as a scan: the tests' oracle.
    #[cfg(test)]
    pub(crate) fn find_linear(&self, host: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.matches(host, path))
            .max_by_key(|r| (r.host.is_some(), r.path_prefix.trim_end_matches('/').len()))
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

    #[test]
    fn needed_scopes_classify_every_client() {
        let r = route(
            None,
            "/mcp",
            vec![
                ToolRule {
                    method: "tools/call".into(),
                    name: Some("delete_repo".into()),
                    scopes: Scopes::parse("mcp:admin"),
                },
                ToolRule {
                    method: "resources/read".into(),
                    name: Some("file:///secret".into()),
                    scopes: Scopes::parse("files:read"),
                },
            ],
        );
        let new = Some("2026-07-28");
        let old = Some("2025-11-25");
        let need = |m: &str, mm, mn, v, b: Option<&str>| {
            r.needed_scopes(m, mm, mn, v, b.map(str::as_bytes))
                .map(|c| c.into_owned())
        };
        let admin = |s: &Scopes| s.contains("mcp:admin");
        let call = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{"x":[1,{{"y":"z"}}]}}}}}}"#
            )
        };
        // Headers, decoded, on 2026-07-28.
        assert!(admin(
            &need("POST", Some("tools/call"), Some("delete_repo"), new, None).unwrap()
        ));
        assert!(admin(
            &need(
                "POST",
                Some("tools/call"),
                Some("=?base64?ZGVsZXRlX3JlcG8=?="),
                new,
                None
            )
            .unwrap()
        ));
        assert!(!admin(
            &need("POST", Some("tools/call"), Some("read"), new, None).unwrap()
        ));
        // Unclassifiable POSTs: the strongest scopes.
        for (mm, v) in [
            (None, new),
            (Some("tools/call"), old),
            (Some("tools/call"), None),
        ] {
            let s = need("POST", mm, Some("read"), v, None).unwrap();
            assert!(admin(&s) && s.contains("files:read"), "{mm:?} {v:?}");
        }
        assert!(!admin(&need("GET", None, None, None, None).unwrap()));
        // The body decides, for every protocol version.
        assert!(admin(
            &need("POST", None, None, old, Some(&call("delete_repo"))).unwrap()
        ));
        assert!(!admin(
            &need("POST", None, None, None, Some(&call("read"))).unwrap()
        ));
        let batch = format!("[{}, {}]", call("read"), call("delete_repo"));
        assert!(admin(
            &need("POST", None, None, None, Some(&batch)).unwrap()
        ));
        let res = r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///secret"}}"#;
        assert!(need("POST", None, None, None, Some(res))
            .unwrap()
            .contains("files:read"));
        // Not JSON-RPC we can read (duplicate keys, truncated): strongest.
        let dup =
            r#"{"method":"tools/list","method":"tools/call","params":{"name":"delete_repo"}}"#;
        assert!(admin(&need("POST", None, None, None, Some(dup)).unwrap()));
        assert!(admin(
            &need("POST", None, None, None, Some(&call("read")[..40])).unwrap()
        ));
        assert!(admin(&need("POST", None, None, None, Some("[]")).unwrap()));
        // Headers that disagree with the body: refused.
        assert_eq!(
            need(
                "POST",
                Some("tools/call"),
                Some("read"),
                new,
                Some(&call("delete_repo"))
            ),
            Err(DenyReason::McpMismatch)
        );
        assert_eq!(
            need("POST", Some("tools/list"), None, new, Some(&call("read"))),
            Err(DenyReason::McpMismatch)
        );
        assert_eq!(
            need(
                "POST",
                Some("tools/call"),
                Some("=?BASE64?eA==?="),
                new,
                None
            ),
            Err(DenyReason::BadRequest)
        );
        assert!(need(
            "POST",
            Some("tools/call"),
            Some("=?base64?cmVhZA==?="),
            new,
            Some(&call("read"))
        )
        .is_ok());
        // No tool rules: nothing parsed, nothing refused.
        let plain = route(None, "/", vec![]);
        assert!(plain
            .needed_scopes("POST", Some("=?BASE64?"), None, None, Some(b"{"))
            .is_ok());
    }

    #[test]
    fn route_hosts_are_canonical() {
        let rs = Routes::new(vec![
            route(None, "/", vec![]),
            route(Some("Strict.Example."), "/", vec![]),
        ]);
        assert!(rs.find("strict.example", "/").unwrap().host.is_some());
    }
}
