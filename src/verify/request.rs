//! [`AuthzRequest`]: what every protocol adapter reduces a request to, and
//! the canonical forms the core decides on (DESIGN.md §4).
//!
//! The adapters hand over what they read, untouched; [`canonical_path`],
//! [`canonical_host`] and [`decode_mcp_header`] turn it into the one form
//! the policy is matched against. Anything that has no single canonical
//! form is refused, never matched against a weaker route.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::borrow::Cow;

/// A protocol-neutral authorization question, borrowed from the wire
/// request so the hot path copies nothing. Header values are untrusted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AuthzRequest<'a> {
    /// HTTP method of the original request.
    pub method: &'a str,
    /// Host (authority) of the original request, as received (port,
    /// case and trailing dot are canonicalised by the core).
    pub host: &'a str,
    /// Path of the original request as received (query string allowed; it
    /// is ignored).
    pub path: &'a str,
    /// The raw `Authorization` header, if any.
    pub(crate) unverified_authorization: Option<&'a str>,
    /// The `Mcp-Method` header (e.g. `tools/call`), if any, as received.
    pub(crate) mcp_method: Option<&'a str>,
    /// The `Mcp-Name` header (e.g. a tool name), if any, as received.
    pub(crate) mcp_name: Option<&'a str>,
    /// The `MCP-Protocol-Version` header, if any.
    pub(crate) protocol_version: Option<&'a str>,
    /// The complete request body, when the proxy forwarded it (Envoy
    /// `with_request_body`, Traefik `forwardBody`). `None` when it was not
    /// sent or was truncated.
    pub body: Option<&'a [u8]>,
    /// The adapter saw several copies, or disagreeing sources, of one fact
    /// (two `Authorization` headers, `X-Forwarded-Uri` ≠ `X-Original-URI`,
    /// ...): the request is refused with 400.
    pub(crate) ambiguous: bool,
}

/// Why a request target has no canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CanonError {
    #[error("path is not absolute")]
    NotAbsolute,
    #[error("path has an encoded slash or backslash")]
    EncodedSeparator,
    #[error("path has a backslash")]
    Backslash,
    #[error("path has a NUL or control character")]
    Control,
    #[error("path has a malformed percent-encoding")]
    BadEscape,
    #[error("path's percent-encoding does not decode to UTF-8")]
    NotUtf8,
    #[error("path climbs above the root")]
    AboveRoot,
    #[error("path has a dot-segment after an empty segment")]
    AmbiguousDotSegment,
    #[error("host is empty or not a valid host name")]
    BadHost,
    #[error("MCP header value is malformed")]
    BadMcpHeader,
}

/// The path without its query string or fragment.
pub(crate) fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` (no query) is already canonical: no escapes, no
/// backslash or control bytes, no empty segment, no dot-segment. One pass,
/// no allocation: the common case.
fn is_canonical(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let mut seg_start = 1;
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b == b'%' || b == b'\\' || b < 0x21 || b == 0x7f {
            return false;
        }
        if b == b'/' {
            let seg = &path[seg_start..i];
            if seg.is_empty() || seg == b"." || seg == b".." {
                return false;
            }
            seg_start = i + 1;
        }
    }
    let last = &path[seg_start..];
    last != b"." && last != b".."
}

/// The canonical form of a request path (DESIGN.md §4): the query and
/// fragment dropped; percent-escapes of unreserved characters decoded and
/// other escapes upper-cased; runs of `/` merged; dot-segments removed
/// (RFC 3986 §5.2.4). Refused: a path not starting with `/`, an encoded
/// `/` or `\` (`%2F`, `%5C`), a literal `\`, NUL or other control bytes, a
/// malformed escape, a `..` above the root, and a dot-segment right after
/// an empty segment (`/a//../b`: normalisers disagree on it).
pub(crate) fn canonical_path(raw: &str) -> Result<Cow<'_, str>, CanonError> {
    let path = path_only(raw);
    if is_canonical(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(CanonError::NotAbsolute);
    }
    // Decode each segment, then resolve dot-segments on the decoded form
    // (`%2e%2e` is `..`).
    let mut out: Vec<String> = Vec::new();
    let mut prev_empty = false;
    let segments: Vec<&str> = path[1..].split('/').collect();
    let n = segments.len();
    for (i, seg) in segments.into_iter().enumerate() {
        let last = i + 1 == n;
        let s = decode_segment(seg)?;
        match s.as_str() {
            "" => {
                // An empty segment: merged away, except a trailing slash.
                prev_empty = true;
                if last {
                    out.push(String::new());
                }
                continue;
            }
            "." | ".." if prev_empty => return Err(CanonError::AmbiguousDotSegment),
            "." => {
                if last {
                    out.push(String::new());
                }
            }
            ".." => {
                if out.pop().is_none() {
                    return Err(CanonError::AboveRoot);
                }
                if last {
                    out.push(String::new());
                }
            }
            _ => out.push(s),
        }
        prev_empty = false;
    }
    let mut p = String::with_capacity(path.len());
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() {
        p.push('/');
    }
    Ok(Cow::Owned(p))
}

fn decode_segment(seg: &str) -> Result<String, CanonError> {
    let b = seg.as_bytes();
    let mut out = String::with_capacity(b.len());
    // The segment fully decoded, to refuse escapes that are not UTF-8
    // (`/%aa`): backends disagree on those (reject, replace, pass raw), so
    // no route may be decided on them.
    let mut escaped_high = false;
    let mut decoded: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                let v = match (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => h * 16 + l,
                    _ => return Err(CanonError::BadEscape),
                };
                match v {
                    b'/' | b'\\' => return Err(CanonError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(CanonError::Control),
                    v if unreserved(v) => out.push(char::from(v)),
                    v => {
                        escaped_high |= v >= 0x80;
                        out.push('%');
                        out.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                        out.push(char::from(b"0123456789ABCDEF"[usize::from(v & 15)]));
                    }
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(CanonError::Backslash),
            0..=0x20 | 0x7f => return Err(CanonError::Control),
            _ => {
                // Copy the run of ordinary bytes (UTF-8 stays intact).
                let start = i;
                while i < b.len() && !matches!(b[i], b'%' | b'\\' | 0..=0x20 | 0x7f) {
                    i += 1;
                }
                out.push_str(&seg[start..i]);
                decoded.extend_from_slice(&b[start..i]);
            }
        }
    }
    if escaped_high && std::str::from_utf8(&decoded).is_err() {
        return Err(CanonError::NotUtf8);
    }
    Ok(out)
}

/// Strips a `:port` suffix (an IPv6 literal keeps its brackets).
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map(|(h, _)| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The canonical form of a Host / authority: port stripped, one trailing
/// dot removed, lower-case, IDNA (UTS #46) to ASCII. Refused: an empty
/// host, an empty label, forbidden code points (`%`, `/`, `@`, spaces,
/// ...), and anything IDNA rejects. Already-canonical ASCII names are
/// returned borrowed.
pub(crate) fn canonical_host(raw: &str) -> Result<Cow<'_, str>, CanonError> {
    let h = host_without_port(raw);
    if let Some(v6) = h.strip_prefix('[') {
        let inner = v6.strip_suffix(']').ok_or(CanonError::BadHost)?;
        let ip: std::net::Ipv6Addr = inner.parse().map_err(|_| CanonError::BadHost)?;
        let canon = format!("[{ip}]");
        return Ok(if canon == h {
            Cow::Borrowed(h)
        } else {
            Cow::Owned(canon)
        });
    }
    let h = h.strip_suffix('.').unwrap_or(h);
    // One pass over the name: empty labels are refused; a name of
    // lower-case letters, digits and `-` with no Punycode label (`xn--`,
    // which IDNA must check) is already canonical.
    let b = h.as_bytes();
    if b.is_empty() || b[0] == b'.' || b[b.len() - 1] == b'.' {
        return Err(CanonError::BadHost);
    }
    let mut plain = true;
    let mut label_start = true;
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            if label_start {
                return Err(CanonError::BadHost);
            }
            label_start = true;
            continue;
        }
        if label_start && (c == b'x' || c == b'X') && b[i..].len() >= 4 {
            plain &= !b[i..i + 4].eq_ignore_ascii_case(b"xn--");
        }
        label_start = false;
        plain &= c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
    }
    if plain {
        return Ok(Cow::Borrowed(h));
    }
    let ascii = idna::domain_to_ascii_cow(h.as_bytes(), idna::AsciiDenyList::URL)
        .map_err(|_| CanonError::BadHost)?;
    if ascii.is_empty() || ascii.ends_with('.') || ascii.contains("..") {
        return Err(CanonError::BadHost);
    }
    Ok(Cow::Owned(ascii.into_owned()))
}

const B64_PREFIX: &str = "=?base64?";
const B64_SUFFIX: &str = "?=";

/// Decodes an `Mcp-Method` / `Mcp-Name` value: the 2026-07-28 transport
/// sends a value that is not plain visible ASCII as `=?base64?{b64}?=`
/// (standard alphabet, padded, UTF-8). A value that only looks like that
/// form (other case, bad Base64, not UTF-8) or holds control characters is
/// refused.
pub(crate) fn decode_mcp_header(v: &str) -> Result<Cow<'_, str>, CanonError> {
    if let Some(rest) = v.strip_prefix(B64_PREFIX) {
        let b64 = rest
            .strip_suffix(B64_SUFFIX)
            .ok_or(CanonError::BadMcpHeader)?;
        let bytes = STANDARD.decode(b64).map_err(|_| CanonError::BadMcpHeader)?;
        let s = String::from_utf8(bytes).map_err(|_| CanonError::BadMcpHeader)?;
        return Ok(Cow::Owned(s));
    }
    if v.len() >= B64_PREFIX.len()
        && v.as_bytes()[..B64_PREFIX.len()].eq_ignore_ascii_case(B64_PREFIX.as_bytes())
    {
        return Err(CanonError::BadMcpHeader);
    }
    if v.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(CanonError::BadMcpHeader);
    }
    Ok(Cow::Borrowed(v))
}

/// Whether `MCP-Protocol-Version` names 2026-07-28 or later: the first
/// revision whose servers must check `Mcp-Method`/`Mcp-Name` against the
/// body. Anything else (absent, older, not a date) is not.
pub(crate) fn headers_bound_to_body(version: Option<&str>) -> bool {
    let Some(v) = version else { return false };
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && v >= "2026-07-28"
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<String, CanonError> {
        canonical_path(s).map(Cow::into_owned)
    }

    #[test]
    fn paths() {
        assert!(matches!(
            canonical_path("/mcp/x?q=/../a"),
            Ok(Cow::Borrowed("/mcp/x"))
        ));
        assert_eq!(p("/mcp#f").unwrap(), "/mcp");
        assert_eq!(p("/").unwrap(), "/");
        assert_eq!(p("/public/../admin").unwrap(), "/admin");
        assert_eq!(p("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(p("/public/%2E./admin").unwrap(), "/admin");
        assert_eq!(p("/a/./b/.").unwrap(), "/a/b/");
        assert_eq!(p("/a/b/..").unwrap(), "/a/");
        assert_eq!(p("//a///b/").unwrap(), "/a/b/");
        assert_eq!(p("/%6Dcp").unwrap(), "/mcp");
        assert_eq!(p("/a%20b%7e%3a").unwrap(), "/a%20b~%3A");
        // Escaped UTF-8 is kept (upper-cased); escapes that are not UTF-8
        // are refused, whatever the case of their hex digits.
        assert_eq!(p("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(p("/caf%C3%A9/x").unwrap(), "/caf%C3%A9/x");
        assert_eq!(p("/%aa"), Err(CanonError::NotUtf8));
        assert_eq!(p("/mcp/%AA"), Err(CanonError::NotUtf8));
        assert_eq!(p("/%c3"), Err(CanonError::NotUtf8));
        assert_eq!(p("/%c3é"), Err(CanonError::NotUtf8));
        assert_eq!(p("/%ff%fe/admin"), Err(CanonError::NotUtf8));
        assert_eq!(p("/mcp/..%2fadmin"), Err(CanonError::EncodedSeparator));
        assert_eq!(p("/mcp/%2Fadmin"), Err(CanonError::EncodedSeparator));
        assert_eq!(p("/mcp/%5cadmin"), Err(CanonError::EncodedSeparator));
        assert_eq!(p("/mcp\\admin"), Err(CanonError::Backslash));
        assert_eq!(p("/mcp%00"), Err(CanonError::Control));
        assert_eq!(p("/mcp%zz"), Err(CanonError::BadEscape));
        assert_eq!(p("/mcp%2"), Err(CanonError::BadEscape));
        assert_eq!(p("/.."), Err(CanonError::AboveRoot));
        assert_eq!(p("/a/../../b"), Err(CanonError::AboveRoot));
        assert_eq!(p("/public//../admin"), Err(CanonError::AmbiguousDotSegment));
        assert_eq!(p("mcp"), Err(CanonError::NotAbsolute));
        assert_eq!(p("http://evil/mcp"), Err(CanonError::NotAbsolute));
        assert_eq!(p(""), Err(CanonError::NotAbsolute));
    }

    #[test]
    fn hosts() {
        let h = |s| canonical_host(s).map(Cow::into_owned);
        assert!(matches!(
            canonical_host("a.example"),
            Ok(Cow::Borrowed("a.example"))
        ));
        assert!(matches!(
            canonical_host("a.example:8443"),
            Ok(Cow::Borrowed("a.example"))
        ));
        assert_eq!(h("Strict.Example.").unwrap(), "strict.example");
        assert_eq!(h("strict.example.:443").unwrap(), "strict.example");
        assert_eq!(h("BÜCHER.example").unwrap(), "xn--bcher-kva.example");
        assert_eq!(h("[::1]:80").unwrap(), "[::1]");
        assert_eq!(h("[0:0::1]").unwrap(), "[::1]");
        assert_eq!(h("127.0.0.1:80").unwrap(), "127.0.0.1");
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "a b",
            "a%2eb",
            "a/b",
            "a@b",
            "[zz]",
            "a.example..",
            "xn--a",
        ] {
            assert!(h(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mcp_headers() {
        let d = |s| decode_mcp_header(s).map(Cow::into_owned);
        assert_eq!(d("tools/call").unwrap(), "tools/call");
        assert_eq!(d("=?base64?ZGVsZXRlX3JlcG8=?=").unwrap(), "delete_repo");
        assert_eq!(d("=?base64?SGVsbG8sIOS4lueVjA==?=").unwrap(), "Hello, 世界");
        assert!(d("=?BASE64?ZGVsZXRlX3JlcG8=?=").is_err());
        assert!(d("=?base64?ZGVsZXRlX3JlcG8?=").is_err()); // unpadded
        assert!(d("=?base64?%%%?=").is_err());
        assert!(d("=?base64?//79?=").is_err()); // not UTF-8
        assert!(d("=?base64?ZGVs").is_err());
        assert!(d("a\tb").is_err());
        assert!(headers_bound_to_body(Some("2026-07-28")));
        assert!(headers_bound_to_body(Some("2027-01-01")));
        assert!(!headers_bound_to_body(Some("2025-11-25")));
        assert!(!headers_bound_to_body(Some("2026-7-28x")));
        assert!(!headers_bound_to_body(None));
    }

    /// What a normalising backend serves, written independently of the
    /// code under test: decode everything, then resolve segments with a
    /// stack (merging empty segments first).
    fn backend_normalise(path: &str) -> Option<String> {
        let bytes = path.as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let s = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                decoded.push(u8::from_str_radix(s, 16).ok()?);
                i += 3;
            } else {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
        let s = String::from_utf8(decoded).ok()?;
        let mut stack: Vec<&str> = Vec::new();
        for seg in s.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    stack.pop();
                }
                x => stack.push(x),
            }
        }
        Some(format!("/{}", stack.join("/")))
    }

    fn route_of(p: &str) -> &'static str {
        for r in ["/admin", "/public", "/mcp/admin", "/mcp"] {
            if p == r || p.starts_with(&format!("{r}/")) {
                return r;
            }
        }
        "/"
    }

    fn seg() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("admin".to_owned()),
            Just("public".to_owned()),
            Just("mcp".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("%2e%2e".to_owned()),
            Just("%2E".to_owned()),
            Just(".%2e".to_owned()),
            Just("".to_owned()),
            Just("%61dmin".to_owned()),
            Just("%2f".to_owned()),
            Just("%5C".to_owned()),
            Just("a%00".to_owned()),
            "[a-z%.]{1,4}",
        ]
    }

    proptest! {
        /// The route decided on is the route of the path a normalising
        /// backend serves, or the path is refused.
        #[test]
        fn route_equals_backend_route(segs in proptest::collection::vec(seg(), 0..6), q in "(\\?[a-z/.]{0,5})?") {
            let raw = format!("/{}{q}", segs.join("/"));
            if let Ok(c) = canonical_path(&raw) {
                let served = backend_normalise(path_only(&raw));
                prop_assert!(served.is_some(), "{raw} accepted as {c}");
                let served = served.unwrap_or_default();
                prop_assert_eq!(route_of(c.as_ref()), route_of(&served), "{} -> {} vs {}", raw, c, served);
                // Canonical is a fixed point.
                prop_assert_eq!(canonical_path(c.as_ref()).map(Cow::into_owned), Ok(c.clone().into_owned()));
            }
        }

        #[test]
        fn path_never_panics(s in "\\PC*") {
            let _ = canonical_path(&s);
        }

        /// Any spelling of a host (case, trailing dot, port) lands on the
        /// same canonical name, which a host-specific route matches.
        #[test]
        fn host_spellings_agree(name in "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,8}){0,3}", upper in proptest::collection::vec(any::<bool>(), 0..40), dot in any::<bool>(), port in proptest::option::of(1u16..)) {
            let mut spelled: String = name.chars().zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c }).collect();
            if dot { spelled.push('.'); }
            if let Some(p) = port { spelled.push_str(&format!(":{p}")); }
            prop_assert_eq!(canonical_host(&spelled).map(Cow::into_owned), Ok(name.clone()));
        }

        #[test]
        fn host_never_panics(s in "\\PC*") {
            let _ = canonical_host(&s);
        }

        #[test]
        fn base64_round_trips(v in "\\PC{0,40}") {
            let enc = format!("=?base64?{}?=", STANDARD.encode(v.as_bytes()));
            prop_assert_eq!(decode_mcp_header(&enc).map(Cow::into_owned), Ok(v));
        }
    }
}
