//! `[[issuer_claims]]`: how a trusted issuer's tokens carry their claims
//! (file only). See [`crate::domain::claim_map::ClaimMapping`].

use crate::config::common::ConfigError;
use crate::domain::claim_map::ClaimMapping;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// One `[[issuer_claims]]` entry; omitted fields keep mcpgate's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuerClaims {
    /// The issuer (one of `issuers`). Required.
    pub issuer: Option<String>,
    /// Refuse tokens without `jti`. Defaults to true.
    pub require_jti: Option<bool>,
    /// Claims carrying scopes (string or array). Defaults to ["scope"].
    pub scope_claims: Option<Vec<String>>,
    /// Claims tried for the client id. Defaults to ["client_id"].
    pub client_id_claims: Option<Vec<String>>,
    /// The user id claim. Defaults to "sub".
    pub user_id_claim: Option<String>,
    /// Claims tried for the user name. Defaults to ["username", "name"].
    pub name_claims: Option<Vec<String>>,
    /// The email claim. Defaults to "email".
    pub(crate) email_claim: Option<String>,
    /// Claims holding roles or groups. Defaults to ["roles", "groups"] when
    /// `role_scopes` is set.
    pub(crate) role_claims: Option<Vec<String>>,
    /// Role or group → scopes it grants. Defaults to none.
    pub role_scopes: Option<BTreeMap<String, Vec<String>>>,
}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError {
        key: "issuer_claims".into(),
        msg: msg.into(),
    }
}

/// Validates the entries against the trusted issuers.
pub(crate) fn validate_issuer_claims(
    raw: Vec<RawIssuerClaims>,
    issuers: &[String],
) -> Result<HashMap<String, ClaimMapping>, ConfigError> {
    let mut out = HashMap::new();
    for r in raw {
        let issuer = r.issuer.ok_or_else(|| bad("every entry needs `issuer`"))?;
        if !issuers.contains(&issuer) {
            return Err(bad(format!("{issuer} is not one of `issuers`")));
        }
        let d = ClaimMapping::default();
        let nonempty = |v: Option<Vec<String>>, d: Vec<String>, what: &str| match v {
            Some(v) if v.is_empty() || v.iter().any(|c| c.is_empty()) => {
                Err(bad(format!("{what} must list claim names")))
            }
            Some(v) => Ok(v),
            None => Ok(d),
        };
        let role_scopes = r.role_scopes.unwrap_or_default();
        let default_roles = if role_scopes.is_empty() {
            Vec::new()
        } else {
            vec!["roles".into(), "groups".into()]
        };
        let m = ClaimMapping {
            require_jti: r.require_jti.unwrap_or(true),
            scope_claims: nonempty(r.scope_claims, d.scope_claims, "scope_claims")?,
            client_id_claims: nonempty(r.client_id_claims, d.client_id_claims, "client_id_claims")?,
            user_id_claim: r.user_id_claim.unwrap_or(d.user_id_claim),
            name_claims: nonempty(r.name_claims, d.name_claims, "name_claims")?,
            email_claim: r.email_claim.unwrap_or(d.email_claim),
            role_claims: r.role_claims.unwrap_or(default_roles),
            role_scopes,
        };
        if out.insert(issuer.clone(), m).is_some() {
            return Err(bad(format!("{issuer} is listed twice")));
        }
    }
    Ok(out)
}
