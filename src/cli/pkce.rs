//! The client side of PKCE (RFC 7636, S256 only), the `state` value, and
//! the checks on the authorization response (`state`, RFC 9207 `iss`).

use super::{sanitize, Error};
use crate::domain::secret::{ct_eq, pkce_s256, random_b64, AuthCode, PkceVerifier, RngError};

/// What the login sent and expects back.
#[derive(Debug)]
pub(crate) struct Pending {
    pub verifier: PkceVerifier,
    pub challenge: String,
    pub state: String,
}

/// What the authorization response must carry besides the code.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    pub state: String,
    /// The issuer identifier (RFC 9207 `iss` must equal it when present).
    pub issuer: String,
    /// The issuer advertised `authorization_response_iss_parameter_supported`,
    /// so `iss` must be present.
    pub(crate) iss_required: bool,
}

/// Why a callback was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not our request (missing or wrong `state`): ignore it and keep
    /// waiting for the real one.
    Foreign,
    /// Our request, but the answer is an error or unusable: the login fails.
    Failed(String),
}

// === impl Pending ===

impl Pending {
    /// A fresh verifier (32 random bytes → 43 characters), its challenge,
    /// and a 128-bit `state`.
    pub(crate) fn new() -> Result<Self, Error> {
        let rng = |e: RngError| Error::Login(e.to_string());
        let verifier = random_b64(32).map_err(rng)?;
        Ok(Self {
            challenge: pkce_s256(&verifier),
            verifier: PkceVerifier::new(verifier),
            state: random_b64(16).map_err(rng)?,
        })
    }
}

// === impl Expect ===

impl Expect {
    /// Checks the redirect's query parameters (RFC 6749 §4.1.2 and §4.1.2.1,
    /// RFC 9207 §2.4) and returns the code.
    pub(crate) fn check(&self, query: &[(String, String)]) -> Result<AuthCode, Rejection> {
        let one = |name: &str| -> Result<Option<&str>, Rejection> {
            let mut it = query.iter().filter(|(k, _)| k == name);
            match (it.next(), it.next()) {
                (None, _) => Ok(None),
                (Some((_, v)), None) => Ok(Some(v.as_str())),
                (Some(_), Some(_)) => Err(Rejection::Failed(format!("parameter {name} repeated"))),
            }
        };
        match one("state") {
            Ok(Some(s)) if ct_eq(s.as_bytes(), self.state.as_bytes()) => {}
            _ => return Err(Rejection::Foreign),
        }
        match one("iss")? {
            Some(iss) if iss != self.issuer => {
                return Err(Rejection::Failed(format!(
                    "the response came from issuer {} instead of {} (mix-up attack?)",
                    sanitize(iss),
                    self.issuer
                )))
            }
            None if self.iss_required => {
                return Err(Rejection::Failed(
                    "the response lacks the iss parameter the issuer promised (RFC 9207)".into(),
                ))
            }
            _ => {}
        }
        if let Some(e) = one("error")? {
            let d = one("error_description")?
                .map(|d| format!(": {}", sanitize(d)))
                .unwrap_or_default();
            return Err(Rejection::Failed(format!(
                "the issuer answered {}{d}",
                sanitize(e)
            )));
        }
        match one("code")? {
            Some(c) if !c.is_empty() => Ok(AuthCode::new(c)),
            _ => Err(Rejection::Failed("the response has no code".into())),
        }
    }
}

// === impl Rejection ===

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Foreign => Error::Login("state mismatch".into()),
            Rejection::Failed(m) => Error::Login(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expect(iss_required: bool) -> Expect {
        Expect {
            state: "st".into(),
            issuer: "https://as.example".into(),
            iss_required,
        }
    }

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pending_values_are_fresh_and_well_formed() {
        let a = Pending::new().unwrap();
        let b = Pending::new().unwrap();
        assert_eq!(a.verifier.secret().len(), 43);
        assert!(a
            .verifier
            .secret()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(a.challenge, pkce_s256(a.verifier.secret()));
        assert_ne!(a.verifier.secret(), b.verifier.secret());
        assert_ne!(a.state, b.state);
        assert!(a.state.len() >= 22);
    }

    #[test]
    fn accepts_a_good_response() {
        let c = expect(true)
            .check(&q(&[
                ("code", "abc"),
                ("state", "st"),
                ("iss", "https://as.example"),
            ]))
            .unwrap();
        assert_eq!(c.secret(), "abc");
        // iss optional when not advertised.
        assert!(expect(false)
            .check(&q(&[("code", "abc"), ("state", "st")]))
            .is_ok());
    }

    #[test]
    fn ignores_foreign_state() {
        for query in [
            q(&[("code", "abc")]),
            q(&[("code", "abc"), ("state", "other")]),
            q(&[("code", "abc"), ("state", "st"), ("state", "st")]),
        ] {
            assert!(matches!(
                expect(false).check(&query),
                Err(Rejection::Foreign)
            ));
        }
    }

    #[test]
    fn fails_on_mix_up_missing_iss_errors_and_no_code() {
        let bad = [
            (
                true,
                q(&[("code", "a"), ("state", "st"), ("iss", "https://evil")]),
            ),
            (
                false,
                q(&[("code", "a"), ("state", "st"), ("iss", "https://evil")]),
            ),
            (true, q(&[("code", "a"), ("state", "st")])),
            (false, q(&[("state", "st")])),
            (false, q(&[("state", "st"), ("code", "a"), ("code", "b")])),
        ];
        for (req, query) in bad {
            assert!(
                matches!(expect(req).check(&query), Err(Rejection::Failed(_))),
                "{query:?}"
            );
        }
        let e = expect(false)
            .check(&q(&[
                ("state", "st"),
                ("error", "access_denied"),
                ("error_description", "no\u{1b}[31m"),
            ]))
            .unwrap_err();
        let Rejection::Failed(m) = e else { panic!() };
        assert!(m.contains("access_denied") && !m.contains('\u{1b}'), "{m}");
    }
}
