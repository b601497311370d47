//! The authorization server's well-known metadata paths (RFC 8414 §3,
//! OpenID Connect Discovery 1.0 §4) and the order in which a client looks
//! for them: one home for the issuer's router, the verifier's copy at the
//! resource origin, the verifier's JWKS discovery and the CLI.

/// RFC 8414 §3.
pub(crate) const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect Discovery 1.0 §4.
pub(crate) const OIDC_METADATA_PATH: &str = "/.well-known/openid-configuration";

/// The metadata URLs of `issuer`, in the order of the MCP authorization
/// spec (2025-11-25, "Authorization Server Metadata Discovery"): RFC 8414
/// with the path inserted, OpenID with the path inserted, then OpenID
/// appended to the path (the last only for an issuer with a path).
pub(crate) fn metadata_urls(issuer: &url::Url) -> Vec<String> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let mut out = vec![
        format!("{origin}{OAUTH_METADATA_PATH}{path}"),
        format!("{origin}{OIDC_METADATA_PATH}{path}"),
    ];
    if !path.is_empty() {
        out.push(format!("{origin}{path}{OIDC_METADATA_PATH}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_order_with_and_without_a_path() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            metadata_urls(&u("https://as.example")),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls(&u("https://as.example/t1/")),
            [
                "https://as.example/.well-known/oauth-authorization-server/t1",
                "https://as.example/.well-known/openid-configuration/t1",
                "https://as.example/t1/.well-known/openid-configuration"
            ]
        );
    }
}
