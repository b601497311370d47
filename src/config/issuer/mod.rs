//! Issuer configuration: a TOML file (`--config <path>` or
//! `MCPGW_ISSUER_CONFIG`) plus `MCPGW_ISSUER_*` environment overrides for
//! secrets and scalars → [`RawConfig`] → [`RawConfig::validate`] →
//! [`IssuerConfig`]. Every `Raw*` field is documented here, ending with
//! "Defaults to …"; [`markdown_reference`] renders these docs for the README.

pub(crate) mod dev;
#[cfg(test)]
mod tests;
mod validate;

use crate::config::common::{bad, list};
pub use crate::config::common::{ConfigError, Env, Strings};
use serde::Deserialize;
pub use validate::*;

/// Defaults of the issuer's keys: `validate` uses them, and
/// `doc_tests::doc_defaults_are_the_constants` checks that the generated
/// README reference states the same values.
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const ACCESS_TOKEN_TTL_SECS: u64 = 3600;
    pub const REFRESH_TOKEN_TTL_SECS: u64 = 2_592_000;
    pub const REFRESH_TOKEN_MAX_LIFETIME_SECS: u64 = 2_592_000;
    pub const REFRESH_GRACE_SECS: u64 = 30;
    pub const CODE_TTL_SECS: u64 = 60;
    pub const SESSION_TTL_SECS: u64 = 28_800;
    pub const CONSENT_TTL_SECS: u64 = 7_776_000;
    pub const LOGIN_TIMEOUT_SECS: u64 = 600;
    pub const STORAGE_KIND: &str = "embedded";
    pub const SIGNING_ALG: &str = "RS256";
    pub const REGISTRATION_RATE_LIMIT: u64 = 20;
    pub const REGISTRATION_RATE_WINDOW_SECS: u64 = 3600;
    pub const CIMD_DEFAULT_CACHE_SECS: u64 = 300;
    pub const CIMD_MAX_CACHE_SECS: u64 = 86_400;

    /// `(key, default)` as the README reference spells them.
    pub fn documented() -> Vec<(&'static str, String)> {
        vec![
            ("listen", format!("`{LISTEN}`")),
            ("access_token_ttl_secs", ACCESS_TOKEN_TTL_SECS.to_string()),
            ("refresh_token_ttl_secs", REFRESH_TOKEN_TTL_SECS.to_string()),
            (
                "refresh_token_max_lifetime_secs",
                REFRESH_TOKEN_MAX_LIFETIME_SECS.to_string(),
            ),
            ("refresh_grace_secs", REFRESH_GRACE_SECS.to_string()),
            ("code_ttl_secs", CODE_TTL_SECS.to_string()),
            ("session_ttl_secs", SESSION_TTL_SECS.to_string()),
            ("consent_ttl_secs", CONSENT_TTL_SECS.to_string()),
            ("login_timeout_secs", LOGIN_TIMEOUT_SECS.to_string()),
            ("storage.kind", format!("`{STORAGE_KIND}`")),
            ("signing.alg", format!("`{SIGNING_ALG}`")),
            (
                "registration.rate_limit",
                REGISTRATION_RATE_LIMIT.to_string(),
            ),
            (
                "registration.rate_window_secs",
                REGISTRATION_RATE_WINDOW_SECS.to_string(),
            ),
            (
                "cimd.default_cache_secs",
                CIMD_DEFAULT_CACHE_SECS.to_string(),
            ),
            ("cimd.max_cache_secs", CIMD_MAX_CACHE_SECS.to_string()),
        ]
    }
}

/// Names the TOML file.
pub const ENV_CONFIG: &str = "MCPGW_ISSUER_CONFIG";
pub const ENV_ISSUER: &str = "MCPGW_ISSUER_ISSUER";
pub const ENV_LISTEN: &str = "MCPGW_ISSUER_LISTEN";
pub const ENV_ADMIN_LISTEN: &str = "MCPGW_ISSUER_ADMIN_LISTEN";
pub const ENV_ADMIN_TOKEN: &str = "MCPGW_ISSUER_ADMIN_TOKEN";
pub const ENV_ALLOW_LIST: &str = "MCPGW_ISSUER_ALLOW_LIST";
pub const ENV_STORAGE_KIND: &str = "MCPGW_ISSUER_STORAGE_KIND";
pub const ENV_STORAGE_PATH: &str = "MCPGW_ISSUER_STORAGE_PATH";
pub const ENV_STORAGE_REDIS_URLS: &str = "MCPGW_ISSUER_STORAGE_REDIS_URLS";
pub const ENV_REVOCATION_REDIS_URLS: &str = "MCPGW_ISSUER_REVOCATION_REDIS_URLS";
pub const ENV_SIGNING_KEY_FILE: &str = "MCPGW_ISSUER_SIGNING_KEY_FILE";
pub const ENV_SIGNING_ENCRYPTION_KEY: &str = "MCPGW_ISSUER_SIGNING_ENCRYPTION_KEY";
pub const ENV_SIGNING_ENCRYPTION_KEY_FILE: &str = "MCPGW_ISSUER_SIGNING_ENCRYPTION_KEY_FILE";
pub const ENV_INITIAL_ACCESS_TOKEN: &str = "MCPGW_ISSUER_REGISTRATION_INITIAL_ACCESS_TOKEN";
/// `MCPGW_ISSUER_PROVIDER_<ID>_CLIENT_SECRET` (id upper-cased, `-` → `_`).
pub const ENV_PROVIDER_PREFIX: &str = "MCPGW_ISSUER_PROVIDER_";
/// The provider fields the environment can set.
const PROVIDER_ENV_FIELDS: [&str; 2] = ["CLIENT_ID", "CLIENT_SECRET"];

/// Every fixed `MCPGW_ISSUER_*` variable; anything else with that prefix
/// (but a configured provider's fields) stops the start. A test checks
/// that each `ENV_*` constant of this file is listed.
pub const ENV_NAMES: &[&str] = &[
    ENV_CONFIG,
    ENV_ISSUER,
    ENV_LISTEN,
    ENV_ADMIN_LISTEN,
    ENV_ADMIN_TOKEN,
    ENV_ALLOW_LIST,
    ENV_STORAGE_KIND,
    ENV_STORAGE_PATH,
    ENV_STORAGE_REDIS_URLS,
    ENV_REVOCATION_REDIS_URLS,
    ENV_SIGNING_KEY_FILE,
    ENV_SIGNING_ENCRYPTION_KEY,
    ENV_SIGNING_ENCRYPTION_KEY_FILE,
    ENV_INITIAL_ACCESS_TOKEN,
];

/// The issuer's TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The issuer identifier: the `iss` of every token and the base URL of every endpoint (https in production; a path is allowed). Defaults to `http://<listen address>`, which is only allowed when listening on loopback.
    pub issuer: Option<String>,
    /// HTTP listen address (port 0 picks a free port). Defaults to `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Listen address of the admin API (`/admin/*`) and Prometheus `/metrics`, which the public `listen` port does not serve: keep it on loopback or on a cluster-internal port no Ingress routes; env `MCPGW_ISSUER_ADMIN_LISTEN`. Defaults to `127.0.0.1:8090` (`127.0.0.1:0`, a free port, when `listen` has port 0).
    pub admin_listen: Option<String>,
    /// Every scope the issuer grants (`scopes_supported`). Defaults to the union of the resources' scopes.
    pub scopes: Option<Vec<String>>,
    /// Scopes granted when an authorization request names none (or only scopes the resource does not offer), kept to those the resource offers; a resource's own `default_scopes` wins. Defaults to the resource's scopes except admin ones: a scope is an admin scope when one of its `:`, `.` or `/`-separated parts is `admin` (`mcp:admin`, `admin`, `repo.admin`), so `mcp:admin` is never granted without being asked for.
    pub default_scopes: Option<Vec<String>>,
    /// The resource of authorization and token requests that send no `resource` (RFC 8707). Defaults to the only resource when there is one (requests must name one otherwise).
    pub default_resource: Option<String>,
    /// Access-token lifetime in seconds. Defaults to 3600.
    pub access_token_ttl_secs: Option<u64>,
    /// Refresh-token lifetime in seconds (renewed on every rotation). Defaults to 2592000 (30 days).
    pub refresh_token_ttl_secs: Option<u64>,
    /// Absolute lifetime of a refresh-token family in seconds, counted from the user's login: rotation never extends a grant beyond it and the user must log in again. Defaults to 2592000 (30 days).
    pub refresh_token_max_lifetime_secs: Option<u64>,
    /// Seconds after a rotation during which the old refresh token still gets a fresh token pair instead of revoking the family as reuse (RFC 9700 §4.14.2: a lost response, two tabs refreshing at once); 0 = none. Defaults to 30.
    pub refresh_grace_secs: Option<u64>,
    /// Authorization-code lifetime in seconds. Defaults to 60.
    pub code_ttl_secs: Option<u64>,
    /// Browser login-session lifetime in seconds (repeated authorizations skip the login). Defaults to 28800 (8 hours).
    pub session_ttl_secs: Option<u64>,
    /// How long a user's consent to a client is remembered, in seconds. Defaults to 7776000 (90 days).
    pub consent_ttl_secs: Option<u64>,
    /// Time a user has to log in and consent, in seconds. Defaults to 600.
    pub login_timeout_secs: Option<u64>,
    /// Bearer token of the `/admin` API and of admin introspection; env `MCPGW_ISSUER_ADMIN_TOKEN`. Defaults to none (admin API disabled).
    pub admin_token: Option<String>,
    /// Who may log in through GitHub, Google or OIDC, each entry bound to a provider and an identity it keeps stable: `*`, `github:<login>` (pinned to the account's numeric id at its first login; a later owner of the login is refused, a rename keeps access), `github:id:<numeric id>` (or `github:<numeric id>`), `<provider id>:<sub>` (an OIDC/Google subject, exact), a verified email, or `@domain` (verified emails of that domain). OIDC `preferred_username` never matches; a bare name is a GitHub login when GitHub is the only upstream provider and refused otherwise. Env `MCPGW_ISSUER_ALLOW_LIST` (comma-separated). Static users are always allowed. Defaults to none (required when such a provider is configured).
    pub allow_list: Option<Vec<String>>,
    /// CIDRs of reverse proxies whose `X-Forwarded-For` is believed (the client address of the registration and login limits; without one, the connection's address counts). Defaults to none.
    pub trusted_proxies: Option<Vec<String>>,
    /// Protected resources (RFC 8707) tokens are minted for. Defaults to none (at least one is required).
    pub resources: Option<Vec<RawResource>>,
    /// Where state lives. Defaults to the embedded store at `.mcpgate/issuer.redb`.
    pub storage: Option<RawStorage>,
    /// Where access-token revocations are published. Defaults to `local` (in-process).
    pub revocation: Option<RawRevocation>,
    /// Token signing keys. Defaults to RS256 keys generated and kept in the store.
    pub signing: Option<RawSigning>,
    /// Dynamic client registration (RFC 7591/7592). Defaults to enabled, open, rate-limited.
    pub registration: Option<RawRegistration>,
    /// Client ID Metadata Documents. Defaults to enabled, public addresses only.
    pub cimd: Option<RawCimd>,
    /// Login providers, shown in this order. Defaults to none (at least one is required).
    pub providers: Option<Vec<RawProvider>>,
}

/// One `[[resources]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    /// The canonical resource URI, e.g. `https://mcp.example.com/mcp`; becomes the token `aud`. Defaults to none (required).
    pub resource: Option<String>,
    /// Scopes grantable for this resource. Defaults to all of `scopes`.
    pub scopes: Option<Vec<String>>,
    /// Scopes granted for this resource when a request names none. Defaults to the top-level `default_scopes`, else this resource's scopes except admin ones.
    pub default_scopes: Option<Vec<String>>,
}

/// The `[storage]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// `embedded` (one redb file, single replica), `redis` (Redis or Redis Cluster, any number of replicas) or `memory` (tests; lost on restart); env `MCPGW_ISSUER_STORAGE_KIND`. Defaults to `embedded`.
    pub kind: Option<String>,
    /// File of the embedded store (created 0600 in a 0700 directory; a file readable by group or others, or a directory writable by others, is refused at startup); env `MCPGW_ISSUER_STORAGE_PATH`. Defaults to `.mcpgate/issuer.redb`.
    pub path: Option<String>,
    /// Redis URLs (`redis://`; `rediss://` TLS is not supported yet); several mean cluster seeds; env `MCPGW_ISSUER_STORAGE_REDIS_URLS` (comma-separated). Defaults to none (required for `redis`).
    pub redis_urls: Option<Vec<String>>,
    /// Use Redis Cluster even with one seed URL, for the store and the revocation sink (a seed that reports `cluster_enabled:1` selects cluster mode anyway). Defaults to false.
    pub redis_cluster: Option<bool>,
}

/// The `[revocation]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    /// `local` (in-process; for the all-in-one dev mode) or `redis` (what verifiers mirror). Defaults to `redis` when `redis_urls` is set, else `local`.
    pub kind: Option<String>,
    /// Redis URLs the verifiers subscribe to; env `MCPGW_ISSUER_REVOCATION_REDIS_URLS`. Defaults to the storage Redis URLs.
    pub redis_urls: Option<Vec<String>>,
}

/// The `[signing]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    /// `RS256`, `ES256` or `EdDSA`. Defaults to `RS256`.
    pub alg: Option<String>,
    /// PKCS#8 PEM private key to sign with (RSA may also be PKCS#1); env `MCPGW_ISSUER_SIGNING_KEY_FILE`. Defaults to none (keys generated and stored).
    pub key_file: Option<String>,
    /// PEM key published in the JWKS ahead of a file-based rotation. Defaults to none.
    pub next_key_file: Option<String>,
    /// PEM keys no longer signing but still published. Defaults to none.
    pub retired_key_files: Option<Vec<String>>,
    /// Rotate stored keys automatically this often, in seconds (0 = only via `POST /admin/keys/rotate`). Defaults to 0.
    pub rotation_interval_secs: Option<u64>,
    /// File holding a 32-byte key (base64, e.g. `openssl rand -base64 32`, or raw) that encrypts the stored signing keys with AES-256-GCM, so a copy of the store (Redis dump, backup) holds no usable private key; mount it from a Secret. Env `MCPGW_ISSUER_SIGNING_ENCRYPTION_KEY_FILE`, or the key itself in env `MCPGW_ISSUER_SIGNING_ENCRYPTION_KEY`. Turning it on replaces unencrypted stored keys with new ones (tokens they signed stop verifying; clients refresh). Defaults to none (stored keys unencrypted).
    pub encryption_key_file: Option<String>,
    /// The encryption key itself (base64), instead of the file; env `MCPGW_ISSUER_SIGNING_ENCRYPTION_KEY`. Defaults to none.
    pub encryption_key: Option<String>,
}

/// The `[registration]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistration {
    /// Serve `POST /register`. Defaults to true.
    pub enabled: Option<bool>,
    /// Registrations allowed per client IP per window (0 = unlimited). Defaults to 20.
    pub rate_limit: Option<u64>,
    /// The rate-limit window in seconds. Defaults to 3600.
    pub rate_window_secs: Option<u64>,
    /// Registration lifetime in seconds (0 = never expires). Defaults to 0.
    pub client_lifetime_secs: Option<u64>,
    /// Require `Authorization: Bearer <token>` on `POST /register`; env `MCPGW_ISSUER_REGISTRATION_INITIAL_ACCESS_TOKEN`. Defaults to none (open registration).
    pub initial_access_token: Option<String>,
    /// Refuse scopes outside a client's registered `scope`. Off by default: a dynamically registered client asserts its own `scope`, so enforcing it secures nothing and breaks MCP step-up authorization (the user's consent is the boundary). Defaults to false.
    pub enforce_client_scope: Option<bool>,
    /// Private-use redirect URI schemes clients may register (and metadata documents list): `any` (all but dangerous ones such as `javascript`, `data`, `file`, `ws`; e.g. `cursor://`, `vscode://`), `reverse_domain` (only `com.example.app:` style, RFC 8252 §7.1) or `none` (https and loopback http only). Defaults to `any`.
    pub private_use_schemes: Option<String>,
}

/// The `[cimd]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCimd {
    /// Accept https URLs as `client_id` and fetch their metadata documents. Defaults to true.
    pub enabled: Option<bool>,
    /// Let documents be fetched from private, loopback and link-local addresses (SSRF risk). Defaults to false.
    pub allow_private_addresses: Option<bool>,
    /// Cache time in seconds when a document has no `max-age`. Defaults to 300.
    pub default_cache_secs: Option<u64>,
    /// Longest cache time in seconds. Defaults to 86400.
    pub max_cache_secs: Option<u64>,
}

/// One `[[providers]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// `static` (local users), `github`, `google` or `oidc`. Defaults to none (required).
    pub kind: Option<String>,
    /// Short id used in URLs and subjects (`/callback/<id>`, `<id>:<user>`). Defaults to the kind (`local` for static).
    pub id: Option<String>,
    /// Name on the login page. Defaults to the kind's usual name.
    pub display_name: Option<String>,
    /// OAuth client id at the provider; env `MCPGW_ISSUER_PROVIDER_<ID>_CLIENT_ID`. Defaults to none (required except for static).
    pub client_id: Option<String>,
    /// OAuth client secret at the provider; env `MCPGW_ISSUER_PROVIDER_<ID>_CLIENT_SECRET`. Defaults to none (required for github and google).
    pub client_secret: Option<String>,
    /// OIDC issuer URL (discovery at `<issuer>/.well-known/openid-configuration`). Defaults to none (required for oidc).
    pub issuer: Option<String>,
    /// Scopes requested upstream. Defaults to the provider's usual scopes.
    pub scopes: Option<Vec<String>>,
    /// GitHub web base URL (GitHub Enterprise, tests). Defaults to `https://github.com`.
    pub web_base: Option<String>,
    /// GitHub API base URL. Defaults to `https://api.github.com`.
    pub api_base: Option<String>,
    /// Users of a `static` provider. Defaults to none.
    pub users: Option<Vec<RawUser>>,
}

/// One `[[providers.users]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// Login name. Defaults to none (required).
    pub username: Option<String>,
    /// Argon2 PHC hash (`$argon2id$…`; `mcpgate hash-password` prints one). Defaults to none (required).
    pub password_hash: Option<String>,
    /// The user's (trusted) email. Defaults to none.
    pub email: Option<String>,
    /// Display name. Defaults to none.
    pub name: Option<String>,
}

/// The env name of a provider's secret field.
pub fn provider_env(id: &str, field: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{ENV_PROVIDER_PREFIX}{id}_{field}")
}

// === impl RawConfig ===

impl RawConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        crate::config::common::from_toml(text).map_err(|e| bad(&e.path, &e))
    }

    /// Reads the file named by `path` or `MCPGW_ISSUER_CONFIG` (if any),
    /// then applies the env overrides.
    pub fn load(path: Option<&str>, env: &dyn Strings) -> Result<Self, ConfigError> {
        let path = path.map(str::to_owned).or_else(|| env.get(ENV_CONFIG));
        let mut raw = match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| bad(ENV_CONFIG, format!("cannot read {p}: {e}")))?;
                Self::from_toml(&text)?
            }
            None => Self::default(),
        };
        raw.check_env_names(env)?;
        raw.apply_env(env);
        Ok(raw)
    }

    /// Refuses an `MCPGW_ISSUER_*` variable that nothing reads: a typo, or
    /// a provider secret for a provider id the file does not configure.
    fn check_env_names(&self, env: &dyn Strings) -> Result<(), ConfigError> {
        let provider_vars: Vec<String> = self
            .providers
            .iter()
            .flatten()
            .map(|p| p.id.clone().or_else(|| p.kind.clone()).unwrap_or_default())
            .flat_map(|id| PROVIDER_ENV_FIELDS.map(|f| provider_env(&id, f)))
            .collect();
        let mut known: Vec<&str> = ENV_NAMES.to_vec();
        known.extend(provider_vars.iter().map(String::as_str));
        match crate::config::common::unknown_env("MCPGW_ISSUER_", &env.names(), &known, |_| false) {
            None => Ok(()),
            Some((name, hint)) => Err(bad(
                &name,
                match hint {
                    Some(h) => format!("unknown variable; did you mean `{h}`?"),
                    None if name.starts_with(ENV_PROVIDER_PREFIX) => {
                        "no configured provider has this id (ids come from `providers[].id`, else `kind`)".into()
                    }
                    None => "unknown variable (see the README's issuer configuration)".into(),
                },
            )),
        }
    }

    pub fn apply_env(&mut self, env: &dyn Strings) {
        if let Some(v) = env.get(ENV_ISSUER) {
            self.issuer = Some(v);
        }
        if let Some(v) = env.get(ENV_LISTEN) {
            self.listen = Some(v);
        }
        if let Some(v) = env.get(ENV_ADMIN_LISTEN) {
            self.admin_listen = Some(v);
        }
        if let Some(v) = env.get(ENV_ADMIN_TOKEN) {
            self.admin_token = Some(v);
        }
        if let Some(v) = env.get(ENV_ALLOW_LIST) {
            self.allow_list = Some(list(&v));
        }
        let st = self.storage.get_or_insert_with(RawStorage::default);
        if let Some(v) = env.get(ENV_STORAGE_KIND) {
            st.kind = Some(v);
        }
        if let Some(v) = env.get(ENV_STORAGE_PATH) {
            st.path = Some(v);
        }
        if let Some(v) = env.get(ENV_STORAGE_REDIS_URLS) {
            st.redis_urls = Some(list(&v));
        }
        if let Some(v) = env.get(ENV_REVOCATION_REDIS_URLS) {
            self.revocation
                .get_or_insert_with(RawRevocation::default)
                .redis_urls = Some(list(&v));
        }
        if let Some(v) = env.get(ENV_SIGNING_KEY_FILE) {
            self.signing
                .get_or_insert_with(RawSigning::default)
                .key_file = Some(v);
        }
        if let Some(v) = env.get(ENV_SIGNING_ENCRYPTION_KEY) {
            self.signing
                .get_or_insert_with(RawSigning::default)
                .encryption_key = Some(v);
        }
        if let Some(v) = env.get(ENV_SIGNING_ENCRYPTION_KEY_FILE) {
            self.signing
                .get_or_insert_with(RawSigning::default)
                .encryption_key_file = Some(v);
        }
        if let Some(v) = env.get(ENV_INITIAL_ACCESS_TOKEN) {
            self.registration
                .get_or_insert_with(RawRegistration::default)
                .initial_access_token = Some(v);
        }
        for p in self.providers.iter_mut().flatten() {
            let id = p.id.clone().or_else(|| p.kind.clone()).unwrap_or_default();
            if let Some(v) = env.get(&provider_env(&id, "CLIENT_SECRET")) {
                p.client_secret = Some(v);
            }
            if let Some(v) = env.get(&provider_env(&id, "CLIENT_ID")) {
                p.client_id = Some(v);
            }
        }
    }
}

/// The `Raw*` docs as a Markdown reference (`key | doc`), straight from the
/// `///` comments of this file, so it cannot drift.
pub fn markdown_reference() -> String {
    let src = include_str!("mod.rs");
    let mut out = String::from("| Key | Description |\n|---|---|\n");
    let mut table = "";
    let mut doc = String::new();
    for line in src.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("pub struct Raw") {
            table = match name.trim_end_matches(" {") {
                "Config" => "",
                "Resource" => "resources[].",
                "Storage" => "storage.",
                "Revocation" => "revocation.",
                "Signing" => "signing.",
                "Registration" => "registration.",
                "Cimd" => "cimd.",
                "Provider" => "providers[].",
                "User" => "providers[].users[].",
                _ => "?",
            };
        } else if let Some(d) = line.strip_prefix("/// ") {
            doc = d.to_owned();
        } else if let Some(field) = line
            .strip_prefix("pub ")
            .filter(|l| !l.starts_with("fn "))
            .and_then(|l| l.split_once(": Option<"))
        {
            out.push_str(&format!(
                "| `{table}{}` | {} |\n",
                field.0,
                doc.replace('|', "\\|")
            ));
            doc.clear();
        } else if !line.starts_with("#[") {
            doc.clear();
        }
    }
    out
}

#[cfg(test)]
mod doc_tests {
    #[test]
    fn doc_defaults_are_the_constants() {
        let reference = super::markdown_reference();
        for (key, value) in super::defaults::documented() {
            let row = reference
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("no README row for {key}"));
            assert!(
                row.contains(&format!("Defaults to {value}")),
                "{key}: the docs do not say `Defaults to {value}`: {row}"
            );
        }
    }

    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_raw_field_is_documented_with_a_default() {
        let src = include_str!("mod.rs");
        let lines: Vec<&str> = src.lines().map(str::trim).collect();
        let mut fields = 0;
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("pub ") && !l.starts_with("pub fn") && l.contains(": Option<") {
                fields += 1;
                let doc = lines[i - 1];
                assert!(
                    doc.starts_with("/// ") && doc.contains("Defaults to"),
                    "field `{l}` needs a `///` doc ending in \"Defaults to …\""
                );
            }
        }
        assert!(fields > 40);
        let md = markdown_reference();
        assert!(md.contains("| `storage.kind` |"));
        assert!(md.contains("| `providers[].users[].password_hash` |"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = RawConfig::from_toml("issuer = \"https://a\"\nbogus = 1\n").unwrap_err();
        assert_eq!(e.key, "bogus");
        let e = RawConfig::from_toml("[storage]\nkind = \"embedded\"\npth = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "storage.pth");
        assert!(e.to_string().contains("line 3, column 1"), "{e}");
        assert!(e.to_string().contains("did you mean `path`?"), "{e}");
        let e = RawConfig::from_toml(
            "[[resources]]\nresource = \"https://r\"\nscopes = \"mcp:tools\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "resources[0].scopes");
        assert!(e.to_string().contains("line 3, column 10"), "{e}");
    }

    #[test]
    fn every_env_constant_is_known() {
        let src = include_str!("mod.rs");
        for line in src.lines().filter(|l| l.starts_with("pub const ENV_")) {
            let name = line["pub const ".len()..].split(':').next().unwrap();
            if name == "ENV_PROVIDER_PREFIX" || name == "ENV_NAMES" {
                continue;
            }
            assert!(
                src.contains(&format!("    {name},\n")),
                "{name} is missing from ENV_NAMES"
            );
        }
    }

    #[test]
    fn unknown_environment_variables_stop_the_load() {
        let with = |k: &str| -> HashMap<String, String> { [(k.to_owned(), "x".to_owned())].into() };
        let toml = "[[providers]]\nkind = \"github\"\nid = \"gh\"\nclient_id = \"id\"\n";
        let path =
            std::env::temp_dir().join(format!("mcpgate-envcheck-{}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let p = path.to_str();
        let e = RawConfig::load(p, &with("MCPGW_ISSUER_ADMIN_TOKN")).unwrap_err();
        assert_eq!(e.key, "MCPGW_ISSUER_ADMIN_TOKN");
        assert!(
            e.msg.contains("did you mean `MCPGW_ISSUER_ADMIN_TOKEN`"),
            "{e}"
        );
        let e = RawConfig::load(p, &with("MCPGW_ISSUER_PROVIDER_OKTA_CLIENT_SECRET")).unwrap_err();
        assert!(
            e.msg.contains("no configured provider") || e.msg.contains("did you mean"),
            "{e}"
        );
        assert!(RawConfig::load(p, &with("MCPGW_ISSUER_PROVIDER_GH_CLIENT_SECRET")).is_ok());
        assert!(RawConfig::load(p, &with("MCPGW_ISSUERX")).is_ok());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn env_overrides_secrets() {
        let mut raw =
            RawConfig::from_toml("[[providers]]\nkind = \"github\"\nclient_id = \"id\"\n").unwrap();
        let env: HashMap<String, String> = [
            (ENV_ADMIN_TOKEN.to_owned(), "adm".to_owned()),
            (
                "MCPGW_ISSUER_PROVIDER_GITHUB_CLIENT_SECRET".to_owned(),
                "s".to_owned(),
            ),
        ]
        .into();
        raw.apply_env(&env);
        assert_eq!(raw.admin_token.as_deref(), Some("adm"));
        assert_eq!(
            raw.providers.unwrap()[0].client_secret.as_deref(),
            Some("s")
        );
    }
}
