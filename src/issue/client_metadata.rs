//! Client metadata (RFC 7591 §2): the type a stored client carries
//! (`records::ClientRecord::metadata`) and the rules every client's metadata
//! passes, whether it registered (`registration.rs`) or names a Client ID
//! Metadata Document (`cimd.rs`). Only [`validate`] builds the metadata of a
//! stored client.

use crate::domain::claims::{is_valid_scope_token, Scopes};
use crate::issue::error::{ErrorCode, OAuthError};
use crate::issue::redirect;
use serde::{Deserialize, Serialize};

pub(crate) const AUTH_NONE: &str = "none";
pub(crate) const AUTH_BASIC: &str = "client_secret_basic";
pub(crate) const AUTH_POST: &str = "client_secret_post";
pub(crate) const GRANT_CODE: &str = "authorization_code";
pub(crate) const GRANT_REFRESH: &str = "refresh_token";

/// Client metadata (RFC 7591 §2). Unknown fields are ignored (§2, "MUST
/// ignore"). After
/// [`validate`], defaults are filled in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientMetadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub response_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) contacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// `web` or `native` (OIDC Registration §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) application_type: Option<String>,
}

fn bad_meta(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

/// Bidirectional overrides/isolates/marks and zero-width characters: they
/// let a name display as another ("\u{202e}" reverses what follows).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

fn clean_text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, OAuthError> {
    match v {
        Some(s)
            if s.chars().count() > max
                || s.chars().any(|c| c.is_control() || is_invisible_format(c)) =>
        {
            Err(bad_meta(format!(
                "{field} is too long or has control, bidi or zero-width characters"
            )))
        }
        other => Ok(other.filter(|s| !s.trim().is_empty())),
    }
}

fn web_uri(field: &str, v: Option<String>) -> Result<Option<String>, OAuthError> {
    if let Some(u) = &v {
        let ok = url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "https" | "http"));
        if !ok || u.len() > redirect::MAX_LEN {
            return Err(bad_meta(format!("{field} must be an http(s) URL")));
        }
    }
    Ok(v)
}

/// A redirect URI as it may be echoed in an error: control characters
/// escaped, at most 200 characters.
fn printable(u: &str) -> String {
    u.chars().take(200).flat_map(char::escape_debug).collect()
}

/// Validates client metadata against policy and fills in defaults:
/// `token_endpoint_auth_method` = client_secret_basic (RFC 7591 §2),
/// `grant_types` = authorization_code + refresh_token, `response_types` =
/// code.
pub(crate) fn validate(
    mut m: ClientMetadata,
    supported: &Scopes,
    schemes: redirect::PrivateUseSchemes,
) -> Result<ClientMetadata, OAuthError> {
    if m.redirect_uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "redirect_uris is required",
        ));
    }
    if m.redirect_uris.len() > 20 {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "too many redirect_uris",
        ));
    }
    let web = m.application_type.as_deref() == Some("web");
    // Every unusable URI is named with its reason, so a client (or its
    // developer) can fix them all at once.
    let mut refused = Vec::new();
    for u in &m.redirect_uris {
        match redirect::validate(u, schemes) {
            Ok(url) if web && !matches!(url.scheme(), "https" | "http") => {
                refused.push(format!(
                    "{}: web clients cannot use custom URI schemes",
                    printable(u)
                ));
            }
            Ok(_) => {}
            Err(r) => refused.push(format!("{}: {r}", printable(u))),
        }
    }
    if !refused.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            refused.join("; "),
        ));
    }
    match m.application_type.as_deref() {
        None | Some("web") | Some("native") => {}
        Some(_) => return Err(bad_meta("application_type must be web or native")),
    }
    let method = m
        .token_endpoint_auth_method
        .get_or_insert_with(|| AUTH_BASIC.into());
    if ![AUTH_NONE, AUTH_BASIC, AUTH_POST].contains(&method.as_str()) {
        return Err(bad_meta("unsupported token_endpoint_auth_method"));
    }
    if m.grant_types.is_empty() {
        m.grant_types = vec![GRANT_CODE.into(), GRANT_REFRESH.into()];
    }
    if m.grant_types
        .iter()
        .any(|g| g != GRANT_CODE && g != GRANT_REFRESH)
    {
        return Err(bad_meta("unsupported grant_types"));
    }
    if !m.grant_types.iter().any(|g| g == GRANT_CODE) {
        return Err(bad_meta("grant_types must include authorization_code"));
    }
    if m.response_types.is_empty() {
        m.response_types = vec!["code".into()];
    }
    if m.response_types.iter().any(|r| r != "code") {
        return Err(bad_meta("response_types must be [\"code\"]"));
    }
    if let Some(s) = &m.scope {
        for t in s.split(' ').filter(|t| !t.is_empty()) {
            if !is_valid_scope_token(t) || (!supported.is_empty() && !supported.contains(t)) {
                return Err(bad_meta(format!("unsupported scope: {t}")));
            }
        }
    }
    m.client_name = clean_text("client_name", m.client_name.take(), 200)?;
    m.software_id = clean_text("software_id", m.software_id.take(), 200)?;
    m.software_version = clean_text("software_version", m.software_version.take(), 100)?;
    m.client_uri = web_uri("client_uri", m.client_uri.take())?;
    m.logo_uri = web_uri("logo_uri", m.logo_uri.take())?;
    m.tos_uri = web_uri("tos_uri", m.tos_uri.take())?;
    m.policy_uri = web_uri("policy_uri", m.policy_uri.take())?;
    if m.contacts.len() > 10 || m.contacts.iter().any(|c| c.len() > 200) {
        return Err(bad_meta("too many or too long contacts"));
    }
    Ok(m)
}

/// Parses a JSON body into metadata (wrong types are
/// `invalid_client_metadata`).
pub(crate) fn parse_metadata(body: &serde_json::Value) -> Result<ClientMetadata, OAuthError> {
    if !body.is_object() {
        return Err(bad_meta("the body must be a JSON object"));
    }
    serde_json::from_value(body.clone()).map_err(|e| bad_meta(format!("malformed metadata: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: redirect::PrivateUseSchemes = redirect::PrivateUseSchemes::Any;

    fn meta(uris: &[&str]) -> ClientMetadata {
        ClientMetadata {
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_filled() {
        let m = validate(meta(&["https://a.example/cb"]), &Scopes::default(), ANY).unwrap();
        assert_eq!(m.token_endpoint_auth_method.as_deref(), Some(AUTH_BASIC));
        assert_eq!(m.response_types, vec!["code"]);
        assert!(m.grant_types.contains(&GRANT_REFRESH.to_string()));
    }

    #[test]
    fn rejects_bad_metadata() {
        let s = Scopes::parse("mcp:tools");
        let e = validate(meta(&[]), &s, ANY).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRedirectUri);
        let e = validate(meta(&["javascript:alert(1)"]), &s, ANY).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRedirectUri);
        let mut m = meta(&["https://a.example/cb"]);
        m.scope = Some("admin".into());
        assert_eq!(
            validate(m, &s, ANY).unwrap_err().code,
            ErrorCode::InvalidClientMetadata
        );
        let mut m = meta(&["https://a.example/cb"]);
        m.token_endpoint_auth_method = Some("private_key_jwt".into());
        assert!(validate(m, &s, ANY).is_err());
        let mut m = meta(&["https://a.example/cb"]);
        m.grant_types = vec!["implicit".into()];
        assert!(validate(m, &s, ANY).is_err());
        let mut m = meta(&["com.example.app:/cb"]);
        m.application_type = Some("web".into());
        assert!(validate(m, &s, ANY).is_err());
        let bad = serde_json::json!({"redirect_uris": "https://a.example/cb"});
        assert!(parse_metadata(&bad).is_err());
    }

    #[test]
    fn every_refused_redirect_uri_is_named() {
        let s = Scopes::default();
        let m = meta(&[
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "javascript:alert(1)",
            "http://evil.example/cb",
            "http://localhost/callback",
            "data:x\n",
        ]);
        let e = validate(m, &s, ANY).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRedirectUri);
        let d = e.description.unwrap_or_default();
        assert!(
            d.contains("javascript:alert(1): redirect URI scheme not allowed"),
            "{d}"
        );
        assert!(
            d.contains("http://evil.example/cb: http redirect URIs"),
            "{d}"
        );
        assert!(d.contains("data:x\\n"), "{d}");
        assert!(!d.contains("cursor://"), "{d}");
        assert!(!d.contains('\n'), "{d}");
        let ok = meta(&[
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "http://localhost/callback",
        ]);
        assert!(validate(ok.clone(), &s, ANY).is_ok());
        let rd = redirect::PrivateUseSchemes::ReverseDomain;
        assert!(validate(ok, &s, rd).is_err());
    }
}
