//! [`AuthzRequest`]: what every protocol adapter reduces a request to.

/// A protocol-neutral authorization question, borrowed from the wire
/// request so the hot path copies nothing. Header values are untrusted.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthzRequest<'a> {
    /// HTTP method of the original request.
    pub method: &'a str,
    /// Host (authority) of the original request, without the port if the
    /// adapter could strip it.
    pub host: &'a str,
    /// Path of the original request (query string allowed; it is ignored).
    pub path: &'a str,
    /// The raw `Authorization` header, if any.
    pub unverified_authorization: Option<&'a str>,
    /// The `Mcp-Method` header (e.g. `tools/call`), if any.
    pub mcp_method: Option<&'a str>,
    /// The `Mcp-Name` header (e.g. a tool name), if any.
    pub mcp_name: Option<&'a str>,
}

/// Strips a `:port` suffix and lower-cases nothing (hosts are compared
/// case-insensitively by the policy).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map(|(h, _)| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The path without its query string or fragment.
pub fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths() {
        assert_eq!(host_without_port("a.example:8443"), "a.example");
        assert_eq!(host_without_port("a.example"), "a.example");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(path_only("/mcp?x=1"), "/mcp");
        assert_eq!(path_only("/mcp#f"), "/mcp");
    }
}
