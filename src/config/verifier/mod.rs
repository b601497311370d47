//! Verifier configuration: TOML file and/or `MCPGW_VERIFIER_*` environment
//! (env wins) → [`RawConfig`] → [`RawConfig::validate`] → [`VerifierConfig`].
//! Key documentation lives in [`keys::KEYS`].

pub(crate) mod claims;
pub mod keys;
pub(crate) mod routes;

use crate::config::common::{bad, words};
pub use crate::config::common::{ConfigError, Env, Strings};
use crate::infra::jwks::JwksSettings;
use crate::verify::authorizer::AuthorizerSettings;
use crate::verify::jwt::JwtSettings;
use crate::verify::policy::Route;
use crate::verify::resource_metadata::PrmEntry;
use ipnet::IpNet;
use keys::*;
use routes::validate_route;
pub use routes::{RawRoute, RawToolRule};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The file/env form: everything optional (docs in `keys::KEYS`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// HTTP listen address. Defaults to 127.0.0.1:8081.
    pub http_addr: Option<String>,
    /// gRPC listen address. Defaults to 127.0.0.1:9191.
    pub grpc_addr: Option<String>,
    /// Prometheus `/metrics` listen address. Defaults to 127.0.0.1:8091.
    pub metrics_addr: Option<String>,
    /// Trusted issuers. Defaults to none (required).
    pub issuers: Option<Vec<String>>,
    /// Explicit JWKS URL (single issuer only). Defaults to discovery.
    pub jwks_uri: Option<String>,
    /// Shorthand catch-all resource. Defaults to none.
    pub resource: Option<String>,
    /// Shorthand resource name. Defaults to none.
    pub resource_name: Option<String>,
    /// Advertised authorization servers. Defaults to the issuers.
    pub authorization_servers: Option<Vec<String>>,
    /// AS metadata at the resource origin: serve, redirect or off.
    /// Defaults to serve with a single authorization server.
    pub authorization_server_metadata: Option<String>,
    /// Shorthand required scopes. Defaults to none.
    pub required_scopes: Option<Vec<String>>,
    /// Shorthand scopes_supported. Defaults to the required scopes.
    pub scopes_supported: Option<Vec<String>>,
    /// Redis URL(s). Defaults to none.
    pub redis_urls: Option<Vec<String>>,
    /// Staleness bound in seconds. Defaults to 30.
    pub revocation_staleness_secs: Option<f64>,
    /// Longest token lifetime in seconds. Defaults to 86400.
    pub(crate) max_token_lifetime_secs: Option<u64>,
    /// `exp`/`nbf`/`iat` leeway in seconds. Defaults to 60.
    pub(crate) leeway_secs: Option<u64>,
    /// Require `typ: at+jwt`. Defaults to false.
    pub(crate) require_at_jwt_typ: Option<bool>,
    /// Accept parent audiences. Defaults to false.
    pub(crate) allow_parent_audience: Option<bool>,
    /// Trusted proxy CIDRs. Defaults to loopback.
    pub trusted_proxies: Option<Vec<String>>,
    /// Forward Authorization upstream. Defaults to false.
    pub(crate) forward_authorization: Option<bool>,
    /// Header for `sub`. Defaults to X-User-Id.
    pub(crate) header_user_id: Option<String>,
    /// Header for the user name. Defaults to X-User-Name.
    pub(crate) header_user_name: Option<String>,
    /// Header for `email`. Defaults to X-User-Email.
    pub(crate) header_user_email: Option<String>,
    /// Header for scopes. Defaults to X-User-Scopes.
    pub(crate) header_user_scopes: Option<String>,
    /// Header for `client_id`. Defaults to X-Client-Id.
    pub(crate) header_client_id: Option<String>,
    /// JWKS refresh period (s). Defaults to 300.
    pub(crate) jwks_refresh_secs: Option<f64>,
    /// Least time between miss-triggered JWKS fetches (s). Defaults to 10.
    pub jwks_min_refetch_secs: Option<f64>,
    /// JWKS fetch time limit (s). Defaults to 5.
    pub(crate) jwks_timeout_secs: Option<f64>,
    /// Verified-token cache size. Defaults to 10000.
    pub(crate) token_cache_capacity: Option<u64>,
    /// Serving threads (0 = one per available CPU). Defaults to 0.
    pub worker_threads: Option<usize>,
    /// Longest drain of in-flight requests on shutdown (s). Defaults to 10.
    pub shutdown_grace_secs: Option<f64>,
    /// Share of allows logged at info (0.0–1.0). Defaults to 0.
    pub log_allow_sample: Option<f64>,
    /// Per-route policy. Defaults to one catch-all route for `resource`.
    pub routes: Option<Vec<RawRoute>>,
    /// Per-issuer claim mapping (file only). Defaults to mcpgate's claims.
    pub issuer_claims: Option<Vec<claims::RawIssuerClaims>>,
}

/// The validated configuration: the core's settings and routes as the
/// decision uses them, and what the composition root wires around it.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` (never on `http_addr`).
    pub metrics_addr: SocketAddr,
    /// The decision's settings (trusted issuers, leeway, claim mapping,
    /// audience rule, revocation staleness bound).
    pub authorizer: AuthorizerSettings,
    /// The routes, in configuration order (the shorthand route last).
    pub routes: Vec<Route>,
    /// One RFC 9728 document per protected (non-public) route.
    pub(crate) prm: Vec<PrmEntry>,
    /// Explicit JWKS URL of the single issuer (`None`: discovery).
    pub jwks_uri: Option<String>,
    pub authorization_servers: Vec<String>,
    /// Serving the authorization server's metadata at the resource origin.
    pub as_metadata: AsMetadataMode,
    pub redis_urls: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub(crate) forward_authorization: bool,
    /// Upstream header names, in `verify::decision::IDENTITY_SLOTS` order.
    pub(crate) identity_headers: [String; 5],
    /// JWKS refresh (also the period of the AS metadata copy's refresh).
    pub jwks: JwksSettings,
    pub(crate) jwks_timeout: Duration,
    pub(crate) token_cache_capacity: u64,
    /// Serving threads; 0 = one per available CPU.
    pub worker_threads: usize,
    /// Longest drain of in-flight requests on shutdown.
    pub(crate) shutdown_grace: Duration,
    /// Share of allows logged at info (0.0–1.0).
    pub log_allow_sample: f64,
}

/// What the verifier answers at the resource origin's authorization-server
/// metadata paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsMetadataMode {
    /// A cached copy of the authorization server's document.
    Serve,
    /// A 307 redirect to the authorization server's document.
    Redirect,
    /// 404.
    Off,
}

fn parse<T: std::str::FromStr>(env: &str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse().map_err(|e| bad(env, e))
}

fn secs(key: &str, v: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    Duration::try_from_secs_f64(v).map_err(|_| bad(key, "must be a non-negative number of seconds"))
}

/// Refuses an `MCPGW_VERIFIER_*` variable that no key reads (a typo would
/// otherwise leave a setting at its default without a word).
fn check_env_names(env: &dyn Strings) -> Result<(), ConfigError> {
    let known: Vec<&str> = KEYS.iter().filter_map(|k| k.env).collect();
    match crate::config::common::unknown_env("MCPGW_VERIFIER_", &env.names(), &known, |_| false) {
        None => Ok(()),
        Some((name, hint)) => Err(bad(
            &name,
            match hint {
                Some(h) => format!("unknown variable; did you mean `{h}`?"),
                None => "unknown variable (see the README's verifier configuration)".into(),
            },
        )),
    }
}

// === impl VerifierConfig ===

impl VerifierConfig {
    /// Reads the file named by `MCPGW_VERIFIER_CONFIG` (if any), applies the
    /// environment, validates.
    pub fn load(env: &dyn Strings) -> Result<Self, ConfigError> {
        check_env_names(env)?;
        let mut raw = match env.get(ENV_CONFIG) {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| bad(ENV_CONFIG, format!("{path}: {e}")))?;
                RawConfig::from_toml(&text)?
            }
            None => RawConfig::default(),
        };
        raw.apply_env(env)?;
        raw.validate()
    }
}

// === impl RawConfig ===

impl RawConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        crate::config::common::from_toml(text).map_err(|e| bad(&e.path, &e))
    }

    /// Overrides file values with the environment.
    pub fn apply_env(&mut self, env: &dyn Strings) -> Result<(), ConfigError> {
        let s = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
        macro_rules! set {
            ($field:ident, $env:expr, str) => {
                if let Some(v) = s($env) {
                    self.$field = Some(v.trim().to_owned());
                }
            };
            ($field:ident, $env:expr, list) => {
                if let Some(v) = s($env) {
                    self.$field = Some(words(&v));
                }
            };
            ($field:ident, $env:expr, parse) => {
                if let Some(v) = s($env) {
                    self.$field = Some(parse($env, &v)?);
                }
            };
        }
        set!(http_addr, ENV_HTTP_ADDR, str);
        set!(grpc_addr, ENV_GRPC_ADDR, str);
        set!(metrics_addr, ENV_METRICS_ADDR, str);
        set!(issuers, ENV_ISSUERS, list);
        set!(jwks_uri, ENV_JWKS_URI, str);
        set!(resource, ENV_RESOURCE, str);
        set!(resource_name, ENV_RESOURCE_NAME, str);
        set!(authorization_servers, ENV_AUTHORIZATION_SERVERS, list);
        set!(
            authorization_server_metadata,
            ENV_AUTHORIZATION_SERVER_METADATA,
            str
        );
        set!(required_scopes, ENV_REQUIRED_SCOPES, list);
        set!(scopes_supported, ENV_SCOPES_SUPPORTED, list);
        set!(redis_urls, ENV_REDIS_URL, list);
        set!(
            revocation_staleness_secs,
            ENV_REVOCATION_STALENESS_SECS,
            parse
        );
        set!(max_token_lifetime_secs, ENV_MAX_TOKEN_LIFETIME_SECS, parse);
        set!(leeway_secs, ENV_LEEWAY_SECS, parse);
        set!(require_at_jwt_typ, ENV_REQUIRE_AT_JWT_TYP, parse);
        set!(allow_parent_audience, ENV_ALLOW_PARENT_AUDIENCE, parse);
        set!(trusted_proxies, ENV_TRUSTED_PROXIES, list);
        set!(forward_authorization, ENV_FORWARD_AUTHORIZATION, parse);
        set!(header_user_id, ENV_HEADER_USER_ID, str);
        set!(header_user_name, ENV_HEADER_USER_NAME, str);
        set!(header_user_email, ENV_HEADER_USER_EMAIL, str);
        set!(header_user_scopes, ENV_HEADER_USER_SCOPES, str);
        set!(header_client_id, ENV_HEADER_CLIENT_ID, str);
        set!(jwks_refresh_secs, ENV_JWKS_REFRESH_SECS, parse);
        set!(jwks_min_refetch_secs, ENV_JWKS_MIN_REFETCH_SECS, parse);
        set!(jwks_timeout_secs, ENV_JWKS_TIMEOUT_SECS, parse);
        set!(token_cache_capacity, ENV_TOKEN_CACHE_CAPACITY, parse);
        set!(worker_threads, ENV_WORKER_THREADS, parse);
        set!(shutdown_grace_secs, ENV_SHUTDOWN_GRACE_SECS, parse);
        set!(log_allow_sample, ENV_LOG_ALLOW_SAMPLE, parse);
        Ok(())
    }

    pub fn validate(self) -> Result<VerifierConfig, ConfigError> {
        let addr = |key: &str, v: Option<String>, d: &str| -> Result<SocketAddr, ConfigError> {
            v.as_deref().unwrap_or(d).parse().map_err(|e| bad(key, e))
        };
        let http_addr = addr("http_addr", self.http_addr, DEFAULT_HTTP_ADDR)?;
        let grpc_addr = addr("grpc_addr", self.grpc_addr, DEFAULT_GRPC_ADDR)?;
        let metrics_addr = crate::config::common::admin_addr(
            "metrics_addr",
            self.metrics_addr.as_deref(),
            http_addr,
            DEFAULT_METRICS_ADDR,
        )
        .map_err(|m| bad("metrics_addr", m))?;
        let issuers = self.issuers.unwrap_or_default();
        if issuers.is_empty() {
            return Err(bad("issuers", "at least one issuer is required"));
        }
        for i in &issuers {
            https_or_loopback("issuers", i)?;
        }
        if self.jwks_uri.is_some() && issuers.len() != 1 {
            return Err(bad("jwks_uri", "only allowed with exactly one issuer"));
        }
        if let Some(u) = &self.jwks_uri {
            https_or_loopback("jwks_uri", u)?;
        }
        let claims =
            claims::validate_issuer_claims(self.issuer_claims.unwrap_or_default(), &issuers)?;
        let authorization_servers = self
            .authorization_servers
            .unwrap_or_else(|| issuers.clone());
        let single = authorization_servers.len() == 1;
        let as_metadata = match self.authorization_server_metadata.as_deref() {
            None if single => AsMetadataMode::Serve,
            None | Some("off") => AsMetadataMode::Off,
            Some("serve") if single => AsMetadataMode::Serve,
            Some("redirect") if single => AsMetadataMode::Redirect,
            Some("serve" | "redirect") => {
                return Err(bad(
                    "authorization_server_metadata",
                    "needs exactly one authorization server",
                ))
            }
            Some(_) => {
                return Err(bad(
                    "authorization_server_metadata",
                    "expected serve, redirect or off",
                ))
            }
        };
        let mut raw_routes = self.routes.unwrap_or_default();
        if let Some(resource) = self.resource {
            raw_routes.push(RawRoute {
                host: None,
                path_prefix: Some("/".into()),
                resource: Some(resource),
                resource_name: self.resource_name,
                required_scopes: self.required_scopes.unwrap_or_default(),
                scopes_supported: self.scopes_supported,
                ..RawRoute::default()
            });
        }
        if raw_routes.is_empty() {
            return Err(bad(
                "resource",
                "set `resource` or at least one [[routes]] entry",
            ));
        }
        let mut routes = Vec::with_capacity(raw_routes.len());
        let mut prm = Vec::new();
        for (i, r) in raw_routes.into_iter().enumerate() {
            let (route, doc) = validate_route(i, r, &authorization_servers)?;
            routes.push(route);
            prm.extend(doc);
        }
        let trusted_proxies = match self.trusted_proxies {
            None => DEFAULT_TRUSTED_PROXIES
                .split(',')
                .map(|c| parse::<IpNet>("trusted_proxies", c))
                .collect::<Result<_, _>>()?,
            Some(v) => v
                .iter()
                .map(|c| {
                    c.parse::<IpNet>()
                        .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|e| bad("trusted_proxies", format!("{c}: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };
        let header = |key: &str, v: Option<String>, d: &str| -> Result<String, ConfigError> {
            let v = v.unwrap_or_else(|| d.to_owned());
            http::HeaderName::from_bytes(v.as_bytes()).map_err(|e| bad(key, e))?;
            Ok(v.to_ascii_lowercase())
        };
        let redis_urls = self.redis_urls.unwrap_or_default();
        crate::config::common::check_redis_urls(&redis_urls).map_err(|e| bad("redis_urls", e))?;
        let authorizer = AuthorizerSettings {
            jwt: JwtSettings {
                issuers,
                leeway_secs: self.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS),
                require_at_jwt_typ: self.require_at_jwt_typ.unwrap_or(false),
                max_token_lifetime_secs: self
                    .max_token_lifetime_secs
                    .unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME_SECS),
                claims,
            },
            allow_parent_audience: self.allow_parent_audience.unwrap_or(false),
            revocation_staleness: secs(
                "revocation_staleness_secs",
                self.revocation_staleness_secs,
                DEFAULT_REVOCATION_STALENESS_SECS as f64,
            )?,
        };
        Ok(VerifierConfig {
            http_addr,
            grpc_addr,
            metrics_addr,
            authorizer,
            routes,
            prm,
            jwks_uri: self.jwks_uri,
            authorization_servers,
            as_metadata,
            redis_urls,
            trusted_proxies,
            forward_authorization: self.forward_authorization.unwrap_or(false),
            identity_headers: [
                header(
                    "header_user_id",
                    self.header_user_id,
                    DEFAULT_HEADER_USER_ID,
                )?,
                header(
                    "header_user_name",
                    self.header_user_name,
                    DEFAULT_HEADER_USER_NAME,
                )?,
                header(
                    "header_user_email",
                    self.header_user_email,
                    DEFAULT_HEADER_USER_EMAIL,
                )?,
                header(
                    "header_user_scopes",
                    self.header_user_scopes,
                    DEFAULT_HEADER_USER_SCOPES,
                )?,
                header(
                    "header_client_id",
                    self.header_client_id,
                    DEFAULT_HEADER_CLIENT_ID,
                )?,
            ],
            jwks: JwksSettings {
                refresh_interval: secs(
                    "jwks_refresh_secs",
                    self.jwks_refresh_secs,
                    DEFAULT_JWKS_REFRESH_SECS as f64,
                )?,
                min_refetch_interval: secs(
                    "jwks_min_refetch_secs",
                    self.jwks_min_refetch_secs,
                    DEFAULT_JWKS_MIN_REFETCH_SECS as f64,
                )?,
            },
            jwks_timeout: secs(
                "jwks_timeout_secs",
                self.jwks_timeout_secs,
                DEFAULT_JWKS_TIMEOUT_SECS as f64,
            )?,
            token_cache_capacity: self
                .token_cache_capacity
                .unwrap_or(DEFAULT_TOKEN_CACHE_CAPACITY),
            worker_threads: self.worker_threads.unwrap_or(DEFAULT_WORKER_THREADS),
            shutdown_grace: secs(
                "shutdown_grace_secs",
                self.shutdown_grace_secs,
                DEFAULT_SHUTDOWN_GRACE_SECS as f64,
            )?,
            log_allow_sample: match self.log_allow_sample.unwrap_or(0.0) {
                v if (0.0..=1.0).contains(&v) => v,
                _ => return Err(bad("log_allow_sample", "must be between 0.0 and 1.0")),
            },
        })
    }
}

fn https_or_loopback(key: &str, v: &str) -> Result<url::Url, ConfigError> {
    let u = url::Url::parse(v).map_err(|e| bad(key, format!("{v}: {e}")))?;
    let loopback = u
        .host()
        .is_some_and(|h| crate::domain::net::is_loopback_host(&h));
    if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
        return Err(bad(
            key,
            format!("{v}: must be https (http only for loopback)"),
        ));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shorthand_from_env() {
        let c = VerifierConfig::load(&env(&[
            (ENV_ISSUERS, "https://auth.example.com"),
            (ENV_RESOURCE, "https://mcp.example.com/mcp"),
            (ENV_REQUIRED_SCOPES, "mcp:read,offline_access"),
        ]))
        .unwrap();
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].path_prefix(), "/");
        assert_eq!(c.prm[0].scopes_supported, vec!["mcp:read"]);
        assert_eq!(c.authorizer.jwt.leeway_secs, 60);
        assert_eq!(c.identity_headers[0], "x-user-id");
    }

    #[test]
    fn errors_name_the_key() {
        let e = VerifierConfig::load(&env(&[(ENV_RESOURCE, "https://a/b")])).unwrap_err();
        assert_eq!(e.key, "issuers");
        let e = VerifierConfig::load(&env(&[
            (ENV_ISSUERS, "https://a"),
            (ENV_RESOURCE, "https://a/b"),
            (ENV_LEEWAY_SECS, "x"),
        ]))
        .unwrap_err();
        assert_eq!(e.key, ENV_LEEWAY_SECS);
        let e = RawConfig::from_toml("bogus = 1").unwrap_err();
        assert!(e.msg.contains("bogus"), "{e}");
        let e = RawConfig::from_toml(
            "issuers = [\"https://a\"]\n[[routes]]\nrequired_scopes = \"mcp\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "routes[0].required_scopes");
        assert!(e.to_string().contains("line 3, column 19"), "{e}");
    }

    #[test]
    fn a_misspelt_variable_stops_the_load_with_a_suggestion() {
        let e = VerifierConfig::load(&env(&[
            (ENV_ISSUERS, "https://a"),
            (ENV_RESOURCE, "https://a/b"),
            ("MCPGW_VERIFIER_REQUIRED_SCOPE", "mcp:tools"),
        ]))
        .unwrap_err();
        assert_eq!(e.key, "MCPGW_VERIFIER_REQUIRED_SCOPE");
        assert!(
            e.msg
                .contains("did you mean `MCPGW_VERIFIER_REQUIRED_SCOPES`"),
            "{e}"
        );
    }

    #[test]
    fn routes_from_toml() {
        let raw = RawConfig::from_toml(
            r#"
issuers = ["https://auth.example.com"]
[[routes]]
host = "mcp.example.com"
resource = "https://mcp.example.com/mcp"
required_scopes = ["mcp"]
tool_scopes = [{ method = "tools/call", name = "delete_file", scopes = ["files:write"] }]
"#,
        )
        .unwrap();
        let c = raw.validate().unwrap();
        assert_eq!(c.routes[0].path_prefix(), "/mcp");
        assert_eq!(c.prm[0].scopes_supported, vec!["files:write", "mcp"]);
    }
}
