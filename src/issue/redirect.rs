//! Redirect URI rules (OAuth 2.1 §2.3, RFC 8252 §7, MCP "exact match"):
//! https, loopback http (127.0.0.1, [::1], localhost), or a private-use
//! scheme in reverse-domain form for native apps; never a fragment.

use url::{Host, Url};

/// Schemes that must never be redirect targets, even if they look like
/// reverse domains.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "about",
    "blob",
    "filesystem",
    "ftp",
    "ws",
    "wss",
];

/// Longest accepted redirect URI.
pub const MAX_LEN: usize = 2000;

/// Why a redirect URI was refused (safe to show).
pub type Reason = &'static str;

/// Whether `host` is a loopback host name or address.
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Validates a redirect URI for registration.
pub fn validate(uri: &str) -> Result<Url, Reason> {
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
            if FORBIDDEN_SCHEMES.contains(&scheme) {
                return Err("redirect URI scheme not allowed");
            }
            // RFC 8252 §7.1: a reverse-domain private-use scheme.
            if !scheme.contains('.') {
                return Err("custom redirect URI schemes must be reverse-domain names");
            }
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("redirect URI must not contain credentials");
    }
    Ok(url)
}

/// Whether `candidate` matches a registered redirect URI: exact string match,
/// or, for a registered loopback IP literal without a port, the same URI on
/// any port (RFC 8252 §7.3).
pub fn matches(registered: &str, candidate: &str) -> bool {
    if registered == candidate {
        return true;
    }
    let (Ok(r), Ok(c)) = (Url::parse(registered), Url::parse(candidate)) else {
        return false;
    };
    let loopback_ip = matches!(r.host(), Some(Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(r.host(), Some(Host::Ipv6(ip)) if ip.is_loopback());
    // Only a canonical, port-less loopback registration gets port leeway.
    if r.scheme() != "http" || !loopback_ip || r.port().is_some() || r.as_str() != registered {
        return false;
    }
    let mut expected = r.clone();
    if expected.set_port(c.port()).is_err() {
        return false;
    }
    expected.as_str() == candidate
}

/// What the consent page shows for a redirect URI: its host, or the scheme
/// for a private-use scheme.
pub fn display_host(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(u) => match u.host_str() {
            Some(h) => h.to_owned(),
            None => format!("{}:", u.scheme()),
        },
        Err(_) => String::from("(invalid)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts() {
        for u in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:33418/callback",
            "http://[::1]:8080/cb",
            "http://localhost:3000/oauth/callback",
            "com.example.app:/oauth2redirect",
            "com.example.app://cb",
        ] {
            assert!(validate(u).is_ok(), "{u}");
        }
    }

    #[test]
    fn rejects() {
        for u in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "javascript:alert(1)",
            "data:text/html,hi",
            "myapp:/cb",
            "/relative",
            "https:///nohost",
            "https://user:pw@app.example.com/cb",
            "http://127.0.0.2.nip.io/cb",
            "https://app.example.com/c b",
        ] {
            assert!(validate(u).is_err(), "{u}");
        }
    }

    #[test]
    fn exact_matching_with_loopback_ports() {
        assert!(matches("https://a.example/cb", "https://a.example/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example/cb/"));
        assert!(!matches("https://a.example/cb", "https://a.example:443/cb"));
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb"));
        assert!(!matches("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb2"));
        assert!(!matches(
            "http://127.0.0.1:80/cb",
            "http://127.0.0.1:5555/cb"
        ));
        assert!(!matches("http://localhost/cb", "http://localhost:5555/cb"));
    }

    proptest! {
        #[test]
        fn never_panics_and_never_accepts_fragments(s in "\\PC{0,80}") {
            if let Ok(u) = validate(&s) {
                prop_assert!(!s.contains('#'));
                prop_assert!(u.fragment().is_none());
            }
        }

        #[test]
        fn http_only_for_loopback(host in "[a-z]{1,10}\\.[a-z]{2,5}", path in "/[a-z]{0,8}") {
            let uri = format!("http://{host}{path}");
            prop_assert!(validate(&uri).is_err());
            let https = format!("https://{host}{path}");
            prop_assert!(validate(&https).is_ok());
        }

        #[test]
        fn dangerous_schemes_refused(scheme in prop::sample::select(FORBIDDEN_SCHEMES.to_vec()), rest in "[a-z/.:]{0,20}") {
            let uri = format!("{scheme}:{rest}");
            prop_assert!(validate(&uri).is_err());
        }

        #[test]
        fn matching_is_reflexive_and_exact(a in "https://[a-z]{1,8}\\.example/[a-z]{0,8}", b in "https://[a-z]{1,8}\\.example/[a-z]{0,8}") {
            prop_assert!(matches(&a, &a));
            prop_assert_eq!(matches(&a, &b), a == b);
        }
    }
}
