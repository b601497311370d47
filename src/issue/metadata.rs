//! Endpoint paths (used by the router and the discovery documents alike, so
//! they cannot drift) and the RFC 8414 / OpenID discovery document.

use crate::issue::service::Issuer;
use serde_json::{json, Value};

pub(crate) use crate::domain::well_known::{OAUTH_METADATA_PATH, OIDC_METADATA_PATH};
pub(crate) const JWKS_PATH: &str = "/jwks";
pub(crate) const WELL_KNOWN_JWKS_PATH: &str = "/.well-known/jwks.json";
pub(crate) const REGISTER_PATH: &str = "/register";
pub(crate) const AUTHORIZE_PATH: &str = "/authorize";
pub(crate) const LOGIN_PATH: &str = "/login";
pub(crate) const CALLBACK_PATH: &str = "/callback";
pub(crate) const CONSENT_PATH: &str = "/consent";
/// Ends the issuer's browser session (GET confirms, POST with CSRF ends it).
pub(crate) const LOGOUT_PATH: &str = "/logout";
pub(crate) const TOKEN_PATH: &str = "/token";
pub(crate) const REVOKE_PATH: &str = "/revoke";
pub(crate) const INTROSPECT_PATH: &str = "/introspect";
pub(crate) const HEALTHZ_PATH: &str = "/healthz";
pub(crate) const READYZ_PATH: &str = "/readyz";
pub(crate) const METRICS_PATH: &str = "/metrics";
pub(crate) const ADMIN_PATH: &str = "/admin";

/// The path part of an issuer URL ("" for `https://as.example`,
/// "/tenant" for `https://as.example/tenant`).
pub(crate) fn issuer_path(issuer: &str) -> String {
    url::Url::parse(issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

// === impl Issuer ===

impl Issuer {
    /// The authorization server metadata (RFC 8414 §2), also served as the
    /// OpenID discovery document.
    pub(crate) fn server_metadata(&self) -> Value {
        let s = &self.settings;
        let mut m = json!({
            "issuer": s.issuer,
            "authorization_endpoint": s.url(AUTHORIZE_PATH),
            "token_endpoint": s.url(TOKEN_PATH),
            "jwks_uri": s.url(JWKS_PATH),
            "revocation_endpoint": s.url(REVOKE_PATH),
            "introspection_endpoint": s.url(INTROSPECT_PATH),
            // OpenID Connect RP-Initiated Logout 1.0 §2.1.
            "end_session_endpoint": s.url(LOGOUT_PATH),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": s.cimd.enabled && self.fetcher.is_some(),
            "subject_types_supported": ["public"],
            "access_token_signing_alg_values_supported": [self.keys_alg_name()],
        });
        if !s.scopes.is_empty() {
            m["scopes_supported"] = json!(s.scopes.iter().collect::<Vec<_>>());
        }
        if s.registration.enabled {
            m["registration_endpoint"] = json!(s.url(REGISTER_PATH));
        }
        m
    }

    fn keys_alg_name(&self) -> &'static str {
        self.keys.alg().name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_paths() {
        assert_eq!(issuer_path("https://as.example"), "");
        assert_eq!(issuer_path("https://as.example/"), "");
        assert_eq!(issuer_path("https://as.example/t1"), "/t1");
    }
}
