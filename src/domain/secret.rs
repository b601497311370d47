//! Secrets are types: redacted `Debug`, no `Display`, explicit `.secret()`
//! access and constant-time comparison.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Constant-time equality of two byte strings (length may leak, content not).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The RFC 7636 S256 code challenge of a verifier: unpadded
/// base64url(SHA-256(verifier)). One definition for the issuer, the
/// upstream-login client and the CLI.
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The system random number generator failed (it does not, in practice:
/// callers fail closed rather than fall back to anything weaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub(crate) struct RngError;

/// A fresh random token: `bytes` bytes from the system CSPRNG, unpadded
/// base64url. The one generator for every token, code, `state` and PKCE
/// verifier the issuer and the CLI make.
pub(crate) fn random_b64(bytes: usize) -> Result<String, RngError> {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| RngError)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

macro_rules! secret_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        // No `PartialEq`: a secret is compared with `matches` (constant
        // time), never with `==`.
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            /// The secret value. Callers must not log it.
            pub fn secret(&self) -> &str {
                &self.0
            }
            /// Constant-time comparison with an untrusted candidate.
            pub fn matches(&self, unverified: &str) -> bool {
                ct_eq(self.0.as_bytes(), unverified.as_bytes())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// A bearer access token as received on the wire.
    BearerToken
);
secret_type!(
    /// An OAuth client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// A one-time authorization code (RFC 6749 §4.1.2).
    AuthCode
);
secret_type!(
    /// A PKCE code verifier (RFC 7636 §4.1).
    PkceVerifier
);
secret_type!(
    /// An RFC 7592 registration access token.
    RegistrationToken
);
secret_type!(
    /// An operator's admin API token.
    AdminToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = ClientSecret::new("hunter2");
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3"));
        assert!(!s.matches("hunter"));
    }
}
