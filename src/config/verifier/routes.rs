//! `[[routes]]`: per-route policy in the verifier's TOML file.

use crate::config::common::{bad, ConfigError};
use crate::domain::claims::Scopes;
use crate::verify::policy::{Route, ToolRule};
use crate::verify::resource_metadata::{prm_url, PrmEntry};
use serde::Deserialize;

/// One `[[routes]]` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Exact host to match. Defaults to any host.
    pub host: Option<String>,
    /// Path prefix (segment boundary). Defaults to the resource's path.
    pub path_prefix: Option<String>,
    /// Canonical resource URI. Required.
    pub resource: Option<String>,
    /// Metadata `resource_name`. Defaults to none.
    pub resource_name: Option<String>,
    /// Scopes every request needs. Defaults to none.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Metadata `scopes_supported`. Defaults to the required and tool scopes.
    pub scopes_supported: Option<Vec<String>>,
    /// No authentication. Defaults to false.
    #[serde(default)]
    pub public: bool,
    /// Keep allowing when revocation data is stale. Defaults to false.
    #[serde(default)]
    pub fail_open_on_stale_revocation: bool,
    /// Extra scopes per MCP method/name. Defaults to none.
    #[serde(default)]
    pub tool_scopes: Vec<RawToolRule>,
}

/// One `tool_scopes` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToolRule {
    /// `Mcp-Method` value, e.g. tools/call. Required.
    pub method: String,
    /// `Mcp-Name` value. Defaults to every name.
    pub name: Option<String>,
    /// Scopes needed. Required.
    pub scopes: Vec<String>,
}

/// The route as the core decides on it, and its RFC 9728 document (`None`
/// for a public route, which has none).
pub(super) fn validate_route(
    i: usize,
    r: RawRoute,
    authorization_servers: &[String],
) -> Result<(Route, Option<PrmEntry>), ConfigError> {
    let key = |f: &str| format!("routes[{i}].{f}");
    let resource = r
        .resource
        .ok_or_else(|| bad(&key("resource"), "required"))?;
    let resource_url = url::Url::parse(&resource).map_err(|e| bad(&key("resource"), e))?;
    if resource_url.fragment().is_some() || !matches!(resource_url.scheme(), "https" | "http") {
        return Err(bad(
            &key("resource"),
            "must be an http(s) URI without fragment (RFC 8707)",
        ));
    }
    let path_prefix = r
        .path_prefix
        .unwrap_or_else(|| resource_url.path().to_owned());
    if !path_prefix.starts_with('/') {
        return Err(bad(&key("path_prefix"), "must start with /"));
    }
    let required_scopes = Scopes::from_iter(r.required_scopes.iter().cloned());
    let mut tool_scopes = Vec::new();
    let mut supported: Vec<String> = required_scopes.iter().map(str::to_owned).collect();
    for (j, t) in r.tool_scopes.into_iter().enumerate() {
        if t.method.is_empty() || t.scopes.is_empty() {
            return Err(bad(
                &key(&format!("tool_scopes[{j}]")),
                "needs a method and scopes",
            ));
        }
        supported.extend(t.scopes.iter().cloned());
        tool_scopes.push(ToolRule {
            method: t.method,
            name: t.name,
            scopes: Scopes::from_iter(t.scopes),
        });
    }
    let mut scopes_supported = r.scopes_supported.unwrap_or(supported);
    scopes_supported.retain(|s| s != "offline_access");
    scopes_supported.sort();
    scopes_supported.dedup();
    let prm = (!r.public).then(|| PrmEntry {
        resource: resource.clone(),
        authorization_servers: authorization_servers.to_vec(),
        scopes_supported,
        resource_name: r.resource_name,
    });
    let route = Route::new(
        r.host,
        path_prefix,
        resource,
        required_scopes,
        tool_scopes,
        r.public,
        r.fail_open_on_stale_revocation,
        prm_url(&resource_url),
    );
    Ok((route, prm))
}
