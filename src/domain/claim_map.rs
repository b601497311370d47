//! Reading access-token claims from other authorization servers (Keycloak,
//! Okta, Entra ID, Auth0, ...): which claims carry the scopes, the client
//! and the user, whether `jti` is required, and optional roles/groups to
//! scopes. The defaults read mcpgate's own RFC 9068 tokens.

use super::claims::{AccessClaims, Audience, Scopes};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How one issuer's tokens carry the claims the verifier needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// Refuse tokens without `jti`. Without it, a token cannot be revoked
    /// by itself, only by subject or client watermark.
    pub require_jti: bool,
    /// Claims whose scopes are granted (a space-separated string or an
    /// array of strings each), merged.
    pub scope_claims: Vec<String>,
    /// Claims tried in order for the client id.
    pub client_id_claims: Vec<String>,
    /// The user id claim.
    pub user_id_claim: String,
    /// Claims tried in order for the user name.
    pub name_claims: Vec<String>,
    /// The email claim.
    pub(crate) email_claim: String,
    /// Claims holding roles or groups (string or array of strings).
    pub(crate) role_claims: Vec<String>,
    /// Scopes granted for a role or group found in `role_claims`.
    pub role_scopes: BTreeMap<String, Vec<String>>,
}

/// A token's claims do not have the shape this issuer's mapping needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim `{0}` is missing or malformed")]
pub(crate) struct ClaimError(pub &'static str);

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            require_jti: true,
            scope_claims: vec!["scope".into()],
            client_id_claims: vec!["client_id".into()],
            user_id_claim: "sub".into(),
            name_claims: vec!["username".into(), "name".into()],
            email_claim: "email".into(),
            role_claims: Vec::new(),
            role_scopes: BTreeMap::new(),
        }
    }
}

/// Strings of a claim: a space-separated string, or an array of strings
/// (other elements ignored).
fn words(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => s.split(' ').filter(|t| !t.is_empty()).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn string<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// A NumericDate (RFC 7519 §2): non-negative, possibly fractional.
fn numeric(m: &Map<String, Value>, k: &'static str) -> Result<Option<u64>, ClaimError> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => Ok(Some(n)),
            (None, Some(f)) if (0.0..1e15).contains(&f) => Ok(Some(f as u64)),
            _ => Err(ClaimError(k)),
        },
    }
}

// === impl ClaimMapping ===

impl ClaimMapping {
    /// The verified payload read into [`AccessClaims`]; `scope` holds the
    /// union of the scope claims and the mapped roles. `iss`, `sub` (or
    /// the user id claim), `aud` and `exp` are required, `jti` if
    /// configured.
    pub(crate) fn read(&self, payload: &[u8]) -> Result<AccessClaims, ClaimError> {
        let v: Value = serde_json::from_slice(payload).map_err(|_| ClaimError("payload"))?;
        let m = v.as_object().ok_or(ClaimError("payload"))?;
        let iss = string(m, "iss").ok_or(ClaimError("iss"))?.to_owned();
        let sub = string(m, &self.user_id_claim)
            .ok_or(ClaimError("sub"))?
            .to_owned();
        let aud: Audience = m
            .get("aud")
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .ok_or(ClaimError("aud"))?;
        let exp = numeric(m, "exp")?.ok_or(ClaimError("exp"))?;
        let iat = numeric(m, "iat")?.unwrap_or(0);
        let nbf = numeric(m, "nbf")?;
        let jti = match (m.get("jti"), self.require_jti) {
            (Some(Value::String(j)), _) if !j.is_empty() => j.clone(),
            (None, false) => String::new(),
            _ => return Err(ClaimError("jti")),
        };
        let mut scopes = Scopes::default();
        for c in &self.scope_claims {
            scopes = scopes.union(&Scopes::from_iter(words(m.get(c))));
        }
        for c in &self.role_claims {
            for role in words(m.get(c)) {
                if let Some(s) = self.role_scopes.get(role) {
                    scopes = scopes.union(&Scopes::from_iter(s.iter().cloned()));
                }
            }
        }
        let first = |claims: &[String]| claims.iter().find_map(|c| string(m, c)).map(str::to_owned);
        Ok(AccessClaims {
            iss,
            sub,
            aud,
            exp,
            iat,
            nbf,
            jti,
            client_id: first(&self.client_id_claims),
            scope: Some(scopes.to_string()).filter(|s| !s.is_empty()),
            // The name goes out in `username` (the verifier's name header
            // reads `username`, then `name`).
            username: first(&self.name_claims),
            email: string(m, &self.email_claim).map(str::to_owned),
            name: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(m: &ClaimMapping, v: Value) -> Result<AccessClaims, ClaimError> {
        m.read(&serde_json::to_vec(&v).unwrap())
    }

    fn base() -> Value {
        json!({"iss": "https://idp", "sub": "u1", "aud": "https://mcp/mcp", "exp": 2000, "iat": 1000})
    }

    fn with(extra: Value) -> Value {
        let mut b = base();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    }

    #[test]
    fn defaults_read_mcpgate_tokens() {
        let c = read(
            &ClaimMapping::default(),
            with(json!({"jti": "j1", "scope": "a b", "client_id": "c", "username": "al", "email": "a@x"})),
        )
        .unwrap();
        assert_eq!((c.jti.as_str(), c.scope.as_deref()), ("j1", Some("a b")));
        assert_eq!(c.client_id.as_deref(), Some("c"));
        assert_eq!(c.username.as_deref(), Some("al"));
        assert_eq!(c.email.as_deref(), Some("a@x"));
        // Without jti: refused by default.
        assert_eq!(
            read(&ClaimMapping::default(), base()),
            Err(ClaimError("jti"))
        );
        // `scope` as an array (some servers) is read too.
        let c = read(
            &ClaimMapping::default(),
            with(json!({"jti": "j", "scope": ["a", "b", 3]})),
        )
        .unwrap();
        assert_eq!(c.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn third_party_shapes() {
        // Entra ID: scp string, roles array, appid/azp, oid as the user, no jti (uti).
        let entra = ClaimMapping {
            require_jti: false,
            scope_claims: vec!["scp".into()],
            client_id_claims: vec!["azp".into(), "appid".into()],
            user_id_claim: "oid".into(),
            name_claims: vec!["preferred_username".into(), "name".into()],
            email_claim: "upn".into(),
            role_claims: vec!["roles".into(), "groups".into()],
            role_scopes: BTreeMap::from([("Tools.Admin".into(), vec!["mcp:admin".into()])]),
        };
        let c = read(
            &entra,
            with(json!({"oid": "o-1", "scp": "mcp:tools mcp:read", "appid": "app-1", "roles": ["Tools.Admin", "Other"],
                        "preferred_username": "al@corp", "upn": "al@corp", "scope": "ignored"})),
        )
        .unwrap();
        assert_eq!(c.sub, "o-1");
        assert_eq!(c.jti, "");
        assert_eq!(c.scope.as_deref(), Some("mcp:admin mcp:read mcp:tools"));
        assert_eq!(c.client_id.as_deref(), Some("app-1"));
        assert_eq!(c.username.as_deref(), Some("al@corp"));
        // Okta: scp as an array, cid.
        let okta = ClaimMapping {
            scope_claims: vec!["scp".into()],
            client_id_claims: vec!["cid".into()],
            ..ClaimMapping::default()
        };
        let c = read(
            &okta,
            with(json!({"jti": "AT.x", "scp": ["mcp:tools"], "cid": "0oa"})),
        )
        .unwrap();
        assert_eq!(
            (c.scope.as_deref(), c.client_id.as_deref()),
            (Some("mcp:tools"), Some("0oa"))
        );
        // Keycloak / Auth0: scope string plus azp, permissions array.
        let kc = ClaimMapping {
            scope_claims: vec!["scope".into(), "permissions".into()],
            client_id_claims: vec!["client_id".into(), "azp".into()],
            ..ClaimMapping::default()
        };
        let c = read(&kc, with(json!({"jti": "j", "scope": "openid mcp:read", "permissions": ["mcp:write"], "azp": "kc"}))).unwrap();
        assert_eq!(c.scope.as_deref(), Some("mcp:read mcp:write openid"));
        assert_eq!(c.client_id.as_deref(), Some("kc"));
    }

    #[test]
    fn malformed_claims_are_refused() {
        let m = ClaimMapping {
            require_jti: false,
            ..ClaimMapping::default()
        };
        for bad in [
            json!({"iss": "https://idp", "aud": "a", "exp": 1}),
            json!({"iss": "https://idp", "sub": 5, "aud": "a", "exp": 1}),
            json!({"iss": "https://idp", "sub": "u", "aud": 5, "exp": 1}),
            json!({"iss": "https://idp", "sub": "u", "aud": "a", "exp": -1}),
            json!({"iss": "https://idp", "sub": "u", "aud": "a", "exp": "1"}),
            json!({"iss": "https://idp", "sub": "u", "aud": "a", "exp": 1, "jti": 7}),
            json!({"sub": "u", "aud": "a", "exp": 1}),
            json!([1]),
        ] {
            assert!(read(&m, bad.clone()).is_err(), "{bad}");
        }
        // A role claim only grants what is mapped; scope strings never
        // smuggle roles in.
        let m = ClaimMapping {
            role_claims: vec!["groups".into()],
            role_scopes: BTreeMap::from([("admins".into(), vec!["mcp:admin".into()])]),
            ..m
        };
        let c = read(&m, with(json!({"groups": "admins2 x", "scope": "admins"}))).unwrap();
        assert_eq!(c.scope.as_deref(), Some("admins"));
    }
}
