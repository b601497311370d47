//! Access-token claims (RFC 9068 JWT profile) and scope sets.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The `typ` header of an RFC 9068 access token.
pub const AT_JWT_TYP: &str = "at+jwt";

/// The claims mcpgate issues and the verifier reads (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated scopes (RFC 9068 §2.2.3, RFC 8693 §4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The `aud` claim: one string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A set of OAuth scopes (RFC 6749 §3.3), kept sorted and de-duplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(BTreeSet<String>);

// === impl AccessClaims ===

impl AccessClaims {
    pub fn scopes(&self) -> Scopes {
        self.scope.as_deref().map(Scopes::parse).unwrap_or_default()
    }
}

// === impl Audience ===

impl Audience {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let v: Vec<&str> = match self {
            Audience::One(s) => vec![s.as_str()],
            Audience::Many(v) => v.iter().map(String::as_str).collect(),
        };
        v.into_iter()
    }

    pub fn contains(&self, aud: &str) -> bool {
        self.iter().any(|a| a == aud)
    }
}

// === impl Scopes ===

impl Scopes {
    /// Parses a space-delimited scope string; empty tokens are ignored.
    pub(crate) fn parse(s: &str) -> Self {
        Self(
            s.split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    #[allow(clippy::should_implement_trait)]
    pub(crate) fn from_iter<I: IntoIterator<Item = S>, S: Into<String>>(it: I) -> Self {
        Self(it.into_iter().map(Into::into).collect())
    }

    pub(crate) fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub(crate) fn is_superset(&self, other: &Scopes) -> bool {
        self.0.is_superset(&other.0)
    }

    pub(crate) fn union(&self, other: &Scopes) -> Scopes {
        Self(self.0.union(&other.0).cloned().collect())
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// RFC 6749 §3.3 scope-token characters: %x21 / %x23-5B / %x5D-7E.
pub(crate) fn is_valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_superset() {
        let have = Scopes::parse("a  b c");
        assert!(!have.is_superset(&Scopes::parse("b d")));
        assert!(have.is_superset(&Scopes::parse("c b")));
        assert_eq!(have.to_string(), "a b c");
    }

    #[test]
    fn audience_forms() {
        let one: Audience = serde_json::from_str("\"x\"").unwrap();
        let many: Audience = serde_json::from_str("[\"x\",\"y\"]").unwrap();
        assert!(one.contains("x"));
        assert!(many.contains("y"));
        assert!(!many.contains("z"));
    }

    #[test]
    fn scope_token_chars() {
        assert!(is_valid_scope_token("files:read"));
        assert!(!is_valid_scope_token("a b"));
        assert!(!is_valid_scope_token("a\"b"));
        assert!(!is_valid_scope_token(""));
    }
}
