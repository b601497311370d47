//! PKCE (RFC 7636), S256 only: `plain` is refused (OAuth 2.1 §4.1.1, MCP).

use crate::domain::secret::{ct_eq, pkce_s256, PkceVerifier};
use crate::issue::error::OAuthError;

/// The only supported `code_challenge_method`.
pub(crate) const S256: &str = "S256";

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_unreserved_43_128(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks an authorization request's PKCE parameters; returns the challenge.
/// A missing challenge, `plain` or an unknown method is `invalid_request`.
pub(crate) fn validate_challenge(
    method: Option<&str>,
    challenge: Option<&str>,
) -> Result<String, OAuthError> {
    let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
        return Err(OAuthError::invalid_request(
            "code_challenge is required (PKCE S256)",
        ));
    };
    match method {
        Some(S256) => {}
        Some("plain") | None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ))
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "unsupported code_challenge_method",
            ))
        }
    }
    // base64url(SHA-256) without padding is exactly 43 characters.
    if challenge.len() != 43 || !is_unreserved_43_128(challenge) {
        return Err(OAuthError::invalid_request("malformed code_challenge"));
    }
    Ok(challenge.to_owned())
}

/// Whether `unverified` is well formed and matches `challenge`, compared in
/// constant time.
pub(crate) fn verify(challenge: &str, unverified: &PkceVerifier) -> bool {
    let v = unverified.secret();
    is_unreserved_43_128(v) && ct_eq(pkce_s256(v).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_vector() {
        assert_eq!(pkce_s256(VERIFIER), CHALLENGE);
        assert!(verify(CHALLENGE, &PkceVerifier::new(VERIFIER)));
        assert!(!verify(CHALLENGE, &PkceVerifier::new(&VERIFIER[1..])));
        let mut wrong = VERIFIER.to_owned();
        wrong.replace_range(0..1, "e");
        assert!(!verify(CHALLENGE, &PkceVerifier::new(wrong)));
    }

    #[test]
    fn challenge_rules() {
        assert!(validate_challenge(Some("S256"), Some(CHALLENGE)).is_ok());
        assert!(validate_challenge(Some("plain"), Some(CHALLENGE)).is_err());
        assert!(validate_challenge(None, Some(CHALLENGE)).is_err());
        assert!(validate_challenge(Some("S256"), None).is_err());
        assert!(validate_challenge(Some("S256"), Some("short")).is_err());
        assert!(validate_challenge(Some("s256"), Some(CHALLENGE)).is_err());
    }

    #[test]
    fn verifier_charset() {
        let bad = "a".repeat(42);
        assert!(!verify(&pkce_s256(&bad), &PkceVerifier::new(bad)));
        let spaced = format!("{} ", "a".repeat(43));
        assert!(!verify(&pkce_s256(&spaced), &PkceVerifier::new(spaced)));
    }
}
