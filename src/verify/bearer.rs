//! RFC 6750 §2.1 `Authorization: Bearer <token>` parsing.

/// Longest token accepted; larger headers are refused before any decoding.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why an `Authorization` header could not yield a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BearerError {
    #[error("authorization scheme is not Bearer")]
    NotBearer,
    #[error("bearer token is empty")]
    Empty,
    #[error("bearer token is too large")]
    TooLarge,
    #[error("bearer token has characters outside token68")]
    BadChars,
}

/// The RFC 6750 b64token alphabet (before the trailing `=` padding), as a
/// table: one load per byte of a ~1 KB token on every request.
static TOKEN68: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

/// Extracts the token from an `Authorization` header value. The scheme is
/// case-insensitive; the token must be RFC 7235 token68.
pub(crate) fn parse_bearer(header: &str) -> Result<&str, BearerError> {
    let h = header.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = h.split_once([' ', '\t']).unwrap_or((h, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::NotBearer);
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(BearerError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(BearerError::TooLarge);
    }
    let body = token.trim_end_matches('=');
    if body.is_empty() || !body.bytes().all(|b| TOKEN68[usize::from(b)]) {
        return Err(BearerError::BadChars);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_rejects() {
        assert_eq!(parse_bearer("Bearer abc.def-_"), Ok("abc.def-_"));
        assert_eq!(parse_bearer("bearer   abc=="), Ok("abc=="));
        assert_eq!(parse_bearer("Basic abc"), Err(BearerError::NotBearer));
        assert_eq!(parse_bearer("Bearer"), Err(BearerError::Empty));
        assert_eq!(parse_bearer("Bearer a b"), Err(BearerError::BadChars));
        assert_eq!(parse_bearer("Bearer ==="), Err(BearerError::BadChars));
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(parse_bearer(&big), Err(BearerError::TooLarge));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_bearer(&s);
        }

        #[test]
        fn round_trips_token68(t in "[A-Za-z0-9._~+/-]{1,200}=*", scheme in "(?i)bearer", sp in "[ \t]{1,3}") {
            let header = format!("{scheme}{sp}{t}");
            prop_assert_eq!(parse_bearer(&header), Ok(t.as_str()));
        }

        #[test]
        fn output_is_token68(s in ".{0,300}") {
            if let Ok(t) = parse_bearer(&s) {
                prop_assert!(!t.is_empty() && t.len() <= MAX_TOKEN_LEN);
                prop_assert!(!t.contains(' '));
            }
        }
    }
}
