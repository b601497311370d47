//! `mcpgate login <MCP server URL>`: find the authorization server the way
//! an MCP client does: ask the server without a token, follow the 401's
//! `resource_metadata` (RFC 9728 §5.1) or try the well-known locations
//! (path-inserted, then root; MCP 2025-11-25), and read the protected
//! resource metadata's `resource` and `authorization_servers`.

use super::Error;
use serde_json::Value;
use std::time::Duration;

/// What the server's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Discovered {
    /// The authorization server to log in with (the first listed).
    pub issuer: String,
    /// The resource to ask a token for (RFC 8707).
    pub resource: String,
    /// Scopes the 401 asked for, if any.
    pub scope: Option<String>,
}

/// A quoted parameter of a `WWW-Authenticate: Bearer` challenge.
pub(crate) fn challenge_param(header: &str, name: &str) -> Option<String> {
    let rest = header.trim_start();
    let rest = rest
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("bearer "))
        .map(|_| &rest[7..])?;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            let v = v.trim();
            return Some(
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
                    .to_owned(),
            );
        }
    }
    None
}

/// The well-known metadata URLs of a resource URL, path-inserted first.
pub(crate) fn prm_candidates(server: &url::Url) -> Vec<String> {
    let origin = server.origin().ascii_serialization();
    let path = server.path().trim_end_matches('/');
    let mut v = Vec::new();
    if !path.is_empty() {
        v.push(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ));
    }
    v.push(format!("{origin}/.well-known/oauth-protected-resource"));
    v
}

/// Whether the metadata's `resource` is `server` or a parent of it (same
/// origin, path prefix at a `/` boundary).
fn names_server(resource: &str, server: &url::Url) -> bool {
    let Ok(r) = url::Url::parse(resource) else {
        return false;
    };
    if r.origin() != server.origin() || r.query().is_some() {
        return false;
    }
    let (rp, sp) = (
        r.path().trim_end_matches('/'),
        server.path().trim_end_matches('/'),
    );
    sp == rp
        || sp
            .strip_prefix(rp)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Asks `server` and its metadata for the authorization server.
pub(crate) async fn discover(server: &str) -> Result<Discovered, Error> {
    let url = url::Url::parse(server).map_err(|e| Error::Config(format!("{server}: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::Config(format!("{server}: not an http(s) URL")));
    }
    let http = crate::infra::http_client::build(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("mcpgate-cli/", env!("CARGO_PKG_VERSION"))),
    )
    .map_err(Error::Config)?;
    let http_err = |u: &str| {
        let u = u.to_owned();
        move |source| Error::Http { url: u, source }
    };
    let r = http
        .get(url.as_str())
        .header("accept", "application/json, text/event-stream")
        .send()
        .await
        .map_err(http_err(server))?;
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let scope = challenge_param(&www, "scope");
    let mut candidates = prm_candidates(&url);
    if let Some(m) = challenge_param(&www, "resource_metadata") {
        candidates.insert(0, m);
    }
    let mut last = Error::protocol(server, "no protected resource metadata found");
    for c in candidates {
        let r = http.get(&c).send().await.map_err(http_err(&c))?;
        if !r.status().is_success() {
            last = Error::protocol(&c, format!("HTTP {}", r.status().as_u16()));
            continue;
        }
        let doc: Value = r
            .json()
            .await
            .map_err(|e| Error::protocol(&c, format!("not JSON: {e}")))?;
        let resource = doc["resource"].as_str().unwrap_or_default().to_owned();
        let Some(issuer) = doc["authorization_servers"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
        else {
            last = Error::protocol(&c, "no authorization_servers");
            continue;
        };
        // RFC 9728 §3.3 / MCP: the metadata must be about this server (its
        // URL, or a parent of it at a path boundary), or a token for
        // another resource would be handed to it.
        if !names_server(&resource, &url) {
            return Err(Error::protocol(
                &c,
                format!(
                    "metadata is for {}, not this server",
                    super::sanitize(&resource)
                ),
            ));
        }
        return Ok(Discovered {
            issuer: issuer.to_owned(),
            resource,
            scope,
        });
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params() {
        let h = r#"Bearer resource_metadata="https://m.example/.well-known/oauth-protected-resource/mcp", scope="mcp:tools mcp:read""#;
        assert_eq!(
            challenge_param(h, "resource_metadata").as_deref(),
            Some("https://m.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            challenge_param(h, "scope").as_deref(),
            Some("mcp:tools mcp:read")
        );
        assert_eq!(challenge_param("Basic realm=\"x\"", "realm"), None);
        assert_eq!(
            challenge_param("bearer error=invalid_token", "error").as_deref(),
            Some("invalid_token")
        );
    }

    #[test]
    fn metadata_must_name_this_server() {
        let s = url::Url::parse("https://m.example/mcp").unwrap();
        assert!(names_server("https://m.example/mcp", &s));
        assert!(names_server("https://m.example/mcp/", &s));
        assert!(names_server("https://m.example/", &s));
        assert!(names_server("https://M.example/mcp", &s));
        assert!(!names_server("https://m.example/mc", &s));
        assert!(!names_server("https://evil.example/mcp", &s));
        assert!(!names_server("http://m.example/mcp", &s));
        assert!(!names_server("https://m.example/mcp/deeper", &s));
        assert!(!names_server("not a url", &s));
    }

    #[test]
    fn well_known_order() {
        let u = url::Url::parse("https://m.example/mcp/").unwrap();
        assert_eq!(
            prm_candidates(&u),
            vec![
                "https://m.example/.well-known/oauth-protected-resource/mcp",
                "https://m.example/.well-known/oauth-protected-resource"
            ]
        );
    }
}
