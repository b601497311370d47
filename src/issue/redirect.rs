//! Redirect URI rules (OAuth 2.1 §2.3, RFC 8252 §7, MCP "exact match"):
//! https, loopback http (127.0.0.1, [::1], localhost; any port at
//! authorization time, RFC 8252 §7.3 / §8.3), or a private-use scheme for
//! native apps (RFC 8252 §7.1) other than the dangerous ones; never a
//! fragment.

use crate::domain::net::is_loopback_host;
use url::Url;

/// Schemes that must never be redirect targets: script and document
/// schemes a browser would run or render, local files, sockets, and
/// network schemes that are not private-use schemes.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "about",
    "blob",
    "filesystem",
    "view-source",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "urn",
    "chrome",
    "chrome-extension",
    "moz-extension",
    "resource",
    "intent",
    "jar",
    "content",
    "ms-settings",
    "shell",
    "smb",
    "ssh",
    "telnet",
    "gopher",
    "news",
    "nntp",
    "ldap",
    "mms",
    "rtsp",
    "irc",
    "git",
];

/// Which private-use (custom) schemes registration accepts (RFC 8252 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum PrivateUseSchemes {
    /// Any scheme except the dangerous ones (`cursor://`, `vscode://`,
    /// `claude://`, `com.example.app:/`). What MCP clients use.
    #[default]
    Any,
    /// Only reverse-domain schemes (`com.example.app`), as RFC 8252 §7.1
    /// recommends.
    ReverseDomain,
    /// None: https and loopback http only.
    None,
}

impl PrivateUseSchemes {
    /// Parses the config value `any`, `reverse_domain` or `none`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "any" => Some(Self::Any),
            "reverse_domain" => Some(Self::ReverseDomain),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// Longest accepted redirect URI.
pub(crate) const MAX_LEN: usize = 2000;

/// Why a redirect URI was refused (safe to show).
pub(crate) type Reason = &'static str;

/// Validates a redirect URI for registration (or a metadata document).
pub(crate) fn validate(uri: &str, schemes: PrivateUseSchemes) -> Result<Url, Reason> {
    if uri.len() > MAX_LEN {
        return Err("redirect URI too long");
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("redirect URI contains whitespace or control characters");
    }
    if uri.contains('#') {
        return Err("redirect URI must not contain a fragment");
    }
    let url = Url::parse(uri).map_err(|_| "redirect URI is not an absolute URI")?;
    let special = matches!(url.scheme(), "https" | "http");
    let after = uri.get(url.scheme().len()..).unwrap_or("");
    if special && (!after.starts_with("://") || after[3..].starts_with('/')) {
        return Err("redirect URI needs scheme://host");
    }
    match url.scheme() {
        "https" => {
            if url.host().is_none() {
                return Err("https redirect URI needs a host");
            }
        }
        "http" => match url.host() {
            Some(h) if is_loopback_host(&h) => {}
            _ => return Err("http redirect URIs are only allowed for loopback hosts"),
        },
        scheme => {
            // `Url` lower-cases the scheme, so `JavaScript:` lands here too.
            if FORBIDDEN_SCHEMES.contains(&scheme) {
                return Err("redirect URI scheme not allowed");
            }
            match schemes {
                PrivateUseSchemes::Any => {}
                PrivateUseSchemes::ReverseDomain if scheme.contains('.') => {}
                PrivateUseSchemes::ReverseDomain => {
                    return Err("custom redirect URI schemes must be reverse-domain names")
                }
                PrivateUseSchemes::None => {
                    return Err("custom redirect URI schemes are not allowed here")
                }
            }
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("redirect URI must not contain credentials");
    }
    Ok(url)
}

/// Whether `candidate` matches a registered redirect URI: exact string
/// match, or, for a loopback http registration (127.0.0.1, [::1] or
/// localhost, with or without a port), the same URI on any port (RFC 8252
/// §7.3: the authorization server MUST allow any port for loopback IP
/// redirects; native apps pick an ephemeral port at request time).
pub(crate) fn matches(registered: &str, candidate: &str) -> bool {
    if registered == candidate {
        return true;
    }
    let (Ok(r), Ok(c)) = (Url::parse(registered), Url::parse(candidate)) else {
        return false;
    };
    let loopback = r.host().is_some_and(|h| is_loopback_host(&h));
    if r.scheme() != "http" || !loopback {
        return false;
    }
    // Compare canonical forms with the port removed on both sides; the
    // candidate must itself be canonical (no case, dot-segment or
    // percent-encoding variants of the registered URI).
    if c.as_str() != candidate || c.scheme() != "http" {
        return false;
    }
    let (mut r0, mut c0) = (r.clone(), c.clone());
    if r0.set_port(None).is_err() || c0.set_port(None).is_err() {
        return false;
    }
    r0.as_str() == c0.as_str()
}

/// What the consent page shows for a redirect URI: its host, or, for a
/// private-use scheme, the app that scheme opens.
pub(crate) fn display_host(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => match u.host_str() {
            Some(h) => h.to_owned(),
            None => String::from("(invalid)"),
        },
        Ok(u) => format!("the app registered for \"{}:\" links", u.scheme()),
        Err(_) => String::from("(invalid)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(u: &str) -> bool {
        validate(u, PrivateUseSchemes::Any).is_ok()
    }

    #[test]
    fn accepts() {
        for u in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:33418/callback",
            "http://[::1]:8080/cb",
            "http://localhost:3000/oauth/callback",
            "http://localhost/callback",
            "com.example.app:/oauth2redirect",
            "com.example.app://cb",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "vscode://vscode.github-authentication/did-authenticate",
            "claude://claude.ai/oauth/callback",
            "myapp:/cb",
        ] {
            assert!(ok(u), "{u}");
        }
    }

    #[test]
    fn rejects() {
        for u in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "jAvAsCrIpT://x/%0aalert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "vbscript:msgbox",
            "blob:https://a.example/x",
            "ws://127.0.0.1/cb",
            "wss://a.example/cb",
            "about:blank",
            "ftp://a.example/cb",
            "view-source:https://a.example",
            "/relative",
            "https:///nohost",
            "https://user:pw@app.example.com/cb",
            "http://127.0.0.2.nip.io/cb",
            "http://localhost.evil.example/cb",
            "https://app.example.com/c b",
            "cursor://a/cb\n",
        ] {
            assert!(!ok(u), "{u}");
        }
    }

    #[test]
    fn scheme_policy_switch() {
        let rd = PrivateUseSchemes::ReverseDomain;
        assert!(validate("com.example.app:/cb", rd).is_ok());
        assert!(validate("cursor://anysphere.cursor-mcp/oauth/callback", rd).is_err());
        let none = PrivateUseSchemes::None;
        assert!(validate("com.example.app:/cb", none).is_err());
        assert!(validate("https://a.example/cb", none).is_ok());
        assert!(validate("http://127.0.0.1/cb", none).is_ok());
        assert_eq!(
            PrivateUseSchemes::parse("any"),
            Some(PrivateUseSchemes::Any)
        );
        assert_eq!(PrivateUseSchemes::parse("ANY"), None);
    }

    #[test]
    fn exact_matching_with_loopback_ports() {
        assert!(matches("https://a.example/cb", "https://a.example/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example/cb/"));
        assert!(!matches("https://a.example/cb", "https://a.example:443/cb"));
        assert!(!matches(
            "https://a.example/cb",
            "https://a.example:8443/cb"
        ));
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb"));
        assert!(!matches("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb2"));
        // Registered with a port, used with another (Copilot CLI).
        assert!(matches(
            "http://127.0.0.1:80/cb",
            "http://127.0.0.1:5555/cb"
        ));
        assert!(matches(
            "http://127.0.0.1:3000/cb",
            "http://127.0.0.1:5555/cb"
        ));
        assert!(matches("http://127.0.0.1:3000/cb", "http://127.0.0.1/cb"));
        // localhost (Claude Code's metadata document) and [::1].
        assert!(matches(
            "http://localhost/callback",
            "http://localhost:49152/callback"
        ));
        assert!(matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        // Never another host, scheme, path, query or a non-canonical spelling.
        assert!(!matches("http://localhost/cb", "http://127.0.0.1:5555/cb"));
        assert!(!matches("http://127.0.0.1/cb", "http://[::1]:5555/cb"));
        assert!(!matches("http://127.0.0.1/cb", "https://127.0.0.1:5555/cb"));
        assert!(!matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5555/cb?x=1"
        ));
        assert!(!matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5555/x/../cb"
        ));
        assert!(!matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5555/%63b"
        ));
        assert!(!matches("http://127.0.0.1/cb", "http://LOCALHOST:5555/cb"));
        assert!(!matches("http://localhost/cb", "http://LocalHost:5555/cb"));
        assert!(!matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5555/cb#x"
        ));
        assert!(!matches(
            "http://127.0.0.1/cb",
            "http://u@127.0.0.1:5555/cb"
        ));
        // Private-use schemes match exactly.
        assert!(matches(
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "cursor://anysphere.cursor-mcp/oauth/callback"
        ));
        assert!(!matches(
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "cursor://anysphere.cursor-mcp:1/oauth/callback"
        ));
    }

    #[test]
    fn consent_names_the_app() {
        assert_eq!(display_host("https://a.example/cb"), "a.example");
        assert_eq!(display_host("http://127.0.0.1:5/cb"), "127.0.0.1");
        assert!(
            display_host("cursor://anysphere.cursor-mcp/oauth/callback").contains("\"cursor:\"")
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_never_accepts_fragments(s in "\\PC{0,80}") {
            if let Ok(u) = validate(&s, PrivateUseSchemes::Any) {
                prop_assert!(!s.contains('#'));
                prop_assert!(u.fragment().is_none());
            }
        }

        #[test]
        fn http_only_for_loopback(host in "[a-z]{1,10}\\.[a-z]{2,5}", path in "/[a-z]{0,8}") {
            let uri = format!("http://{host}{path}");
            prop_assert!(!ok(&uri));
            let https = format!("https://{host}{path}");
            prop_assert!(ok(&https));
        }

        #[test]
        fn dangerous_schemes_refused(scheme in prop::sample::select(FORBIDDEN_SCHEMES.to_vec()), upper in any::<bool>(), rest in "[a-z/.:]{0,20}") {
            let scheme = if upper { scheme.to_uppercase() } else { scheme.to_owned() };
            let uri = format!("{scheme}:{rest}");
            prop_assert!(!ok(&uri));
        }

        #[test]
        fn matching_is_reflexive_and_exact(a in "https://[a-z]{1,8}\\.example/[a-z]{0,8}", b in "https://[a-z]{1,8}\\.example/[a-z]{0,8}") {
            prop_assert!(matches(&a, &a));
            prop_assert_eq!(matches(&a, &b), a == b);
        }

        #[test]
        fn loopback_any_port(host in prop::sample::select(vec!["127.0.0.1", "[::1]", "localhost"]), reg in prop::option::of(1u16..), used in 1024u16.., path in "/[a-z]{1,8}") {
            let r = match reg { Some(p) => format!("http://{host}:{p}{path}"), None => format!("http://{host}{path}") };
            let c = format!("http://{host}:{used}{path}");
            prop_assert!(matches(&r, &c), "{} vs {}", r, c);
            let other = format!("http://{host}:{used}{path}x");
            prop_assert!(!matches(&r, &other));
        }
    }
}
