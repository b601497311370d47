//! The validated issuer configuration and [`RawConfig::validate`].

use super::{
    defaults, RawCimd, RawConfig, RawProvider, RawRegistration, RawRevocation, RawSigning,
    RawStorage,
};
use crate::config::common::{bad, ConfigError};
use crate::domain::claims::{is_valid_scope_token, Scopes};
use crate::domain::secret::{AdminToken, ClientSecret, RegistrationToken};
use crate::issue::keys::SigningAlg;
use crate::issue::service::{CimdSettings, RegistrationSettings, ResourceSettings, Settings};
use crate::issue::users::{AllowList, StaticUser};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::infra::redis_store::RedisSettings;
/// Where issuer state lives: the one storage choice, defined next to the
/// code that opens it.
pub use crate::infra::store_backend::StoreBackend;

/// Where revocations are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationConfig {
    Local,
    /// `cluster`: force cluster mode with one seed (a seed that reports
    /// `cluster_enabled:1` selects it anyway); follows `storage.redis_cluster`.
    Redis {
        urls: Vec<String>,
        cluster: bool,
    },
}

/// Where the embedded store lives when `storage.path` is not set.
pub(crate) const DEFAULT_STORE_PATH: &str = ".mcpgate/issuer.redb";
/// The admin API and `/metrics` listener unless `admin_listen` says otherwise.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8090";
/// The default of earlier releases, refused so an upgrade does not start empty.
const LEGACY_STORE_PATH: &str = "./mcpgate-issuer.redb";

#[derive(Debug, Clone)]
pub struct SigningConfig {
    pub alg: SigningAlg,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) next_key_file: Option<PathBuf>,
    pub(crate) retired_key_files: Vec<PathBuf>,
    /// `None` = rotate only on request.
    pub(crate) rotation_interval: Option<Duration>,
    /// Encrypts the stored signing keys.
    pub(crate) encryption_key: Option<EncryptionKey>,
}

/// Where the signing-key encryption key comes from.
#[derive(Debug, Clone)]
pub(crate) enum EncryptionKey {
    /// `MCPGW_ISSUER_SIGNING_ENCRYPTION_KEY` (base64).
    Value(ClientSecret),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Static,
    GitHub,
    Google,
    Oidc,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub id: String,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    pub issuer: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub web_base: Option<String>,
    pub api_base: Option<String>,
    pub users: Vec<StaticUser>,
}

/// The least cache time of a Client ID Metadata Document (capped by
/// `cimd.max_cache_secs`).
const CIMD_MIN_CACHE: Duration = Duration::from_secs(30);

/// The validated issuer configuration: the core's [`Settings`] as the
/// issuer uses them, and what the composition root builds around it.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// No `issuer` configured: `settings.issuer` is `http://<listen>` until
    /// `app::issuer::spawn` sets it to `http://<bound address>` (they differ
    /// for port 0). Only allowed when listening on loopback.
    pub(crate) issuer_from_listener: bool,
    pub listen: SocketAddr,
    /// The admin API and `/metrics` (never on `listen`).
    pub admin_listen: SocketAddr,
    /// Everything the core reads from configuration.
    pub settings: Settings,
    pub trusted_proxies: Vec<IpNet>,
    pub storage: StoreBackend,
    pub revocation: RevocationConfig,
    pub signing: SigningConfig,
    /// Client ID Metadata Documents may be fetched from private addresses
    /// (the fetcher's SSRF guard; the core's policy is `settings.cimd`).
    pub(crate) cimd_allow_private_addresses: bool,
    pub providers: Vec<ProviderConfig>,
}

fn secs(key: &str, v: Option<u64>, default: u64, min: u64) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min {
        return Err(bad(key, format!("must be at least {min}")));
    }
    Ok(Duration::from_secs(v))
}

fn url_key(key: &str, v: &str, allow_path: bool) -> Result<url::Url, ConfigError> {
    let u = url::Url::parse(v).map_err(|e| bad(key, e))?;
    if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
        return Err(bad(key, "must be an http(s) URL"));
    }
    if u.fragment().is_some() || u.query().is_some() || (!allow_path && u.path() != "/") {
        return Err(bad(key, "must not have a query or fragment"));
    }
    Ok(u)
}

fn scopes_key(key: &str, v: &[String]) -> Result<(), ConfigError> {
    match v.iter().find(|s| !is_valid_scope_token(s)) {
        Some(s) => Err(bad(key, format!("invalid scope `{s}`"))),
        None => Ok(()),
    }
}

fn provider(i: usize, p: RawProvider) -> Result<ProviderConfig, ConfigError> {
    let k = |f: &str| format!("providers[{i}].{f}");
    let kind = match p.kind.as_deref() {
        Some("static") => ProviderKind::Static,
        Some("github") => ProviderKind::GitHub,
        Some("google") => ProviderKind::Google,
        Some("oidc") => ProviderKind::Oidc,
        _ => return Err(bad(&k("kind"), "must be static, github, google or oidc")),
    };
    let (default_id, default_name) = match kind {
        ProviderKind::Static => ("local", "Local account"),
        ProviderKind::GitHub => ("github", "GitHub"),
        ProviderKind::Google => ("google", "Google"),
        ProviderKind::Oidc => ("oidc", "Single sign-on"),
    };
    let id = p.id.unwrap_or_else(|| default_id.to_owned());
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(&k("id"), "use letters, digits, - and _"));
    }
    let client_secret = p.client_secret.map(ClientSecret::new);
    let client_id = p.client_id.unwrap_or_default();
    if kind != ProviderKind::Static && client_id.is_empty() {
        return Err(bad(&k("client_id"), "required"));
    }
    if matches!(kind, ProviderKind::GitHub | ProviderKind::Google) && client_secret.is_none() {
        return Err(bad(
            &k("client_secret"),
            "required (or set the env override)",
        ));
    }
    if kind == ProviderKind::Oidc {
        let iss = p
            .issuer
            .as_deref()
            .ok_or_else(|| bad(&k("issuer"), "required"))?;
        url_key(&k("issuer"), iss, true)?;
    }
    let mut users = Vec::new();
    for (j, u) in p.users.unwrap_or_default().into_iter().enumerate() {
        let uk = |f: &str| format!("providers[{i}].users[{j}].{f}");
        users.push(StaticUser {
            username: u
                .username
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad(&uk("username"), "required"))?,
            password_hash: u
                .password_hash
                .ok_or_else(|| bad(&uk("password_hash"), "required"))?,
            email: u.email,
            name: u.name,
        });
    }
    if kind == ProviderKind::Static && users.is_empty() {
        return Err(bad(
            &k("users"),
            "a static provider needs at least one user",
        ));
    }
    Ok(ProviderConfig {
        kind,
        display_name: p.display_name.unwrap_or_else(|| default_name.to_owned()),
        id,
        client_id,
        client_secret,
        issuer: p.issuer,
        scopes: p.scopes,
        web_base: p.web_base,
        api_base: p.api_base,
        users,
    })
}

/// `[storage]`.
fn storage(st: &RawStorage) -> Result<StoreBackend, ConfigError> {
    Ok(match st.kind.as_deref().unwrap_or(defaults::STORAGE_KIND) {
        "memory" => StoreBackend::Memory,
        "embedded" => match st.path.as_deref() {
            Some(p) => StoreBackend::Embedded {
                path: PathBuf::from(p),
            },
            // The old default sat in the working directory, created with
            // the umask: refuse to silently start on a new, empty store.
            None if Path::new(LEGACY_STORE_PATH).exists() => {
                return Err(bad(
                    "storage.path",
                    format!(
                        "found {LEGACY_STORE_PATH} (the old default); move it with \
                         `mkdir -m 700 .mcpgate && mv {LEGACY_STORE_PATH} {DEFAULT_STORE_PATH} \
                         && chmod 600 {DEFAULT_STORE_PATH}`, or set storage.path to keep it"
                    ),
                ))
            }
            None => StoreBackend::Embedded {
                path: PathBuf::from(DEFAULT_STORE_PATH),
            },
        },
        "redis" => {
            let urls = st.redis_urls.clone().unwrap_or_default();
            if urls.is_empty() {
                return Err(bad("storage.redis_urls", "required for kind = \"redis\""));
            }
            crate::config::common::check_redis_urls(&urls)
                .map_err(|e| bad("storage.redis_urls", e))?;
            StoreBackend::Redis(RedisSettings {
                urls,
                cluster: st.redis_cluster.unwrap_or(false),
            })
        }
        other => return Err(bad("storage.kind", format!("unknown kind `{other}`"))),
    })
}

/// `[revocation]`: its own Redis, else the storage's.
fn revocation(rv: RawRevocation, st: RawStorage) -> Result<RevocationConfig, ConfigError> {
    let rv_urls = rv.redis_urls.or(st.redis_urls).unwrap_or_default();
    let rv_cluster = st.redis_cluster.unwrap_or(false);
    crate::config::common::check_redis_urls(&rv_urls)
        .map_err(|e| bad("revocation.redis_urls", e))?;
    Ok(match rv.kind.as_deref() {
        Some("local") => RevocationConfig::Local,
        None if rv_urls.is_empty() => RevocationConfig::Local,
        Some("redis") | None if !rv_urls.is_empty() => RevocationConfig::Redis {
            urls: rv_urls,
            cluster: rv_cluster,
        },
        Some("redis") | None => {
            return Err(bad(
                "revocation.redis_urls",
                "required for kind = \"redis\"",
            ))
        }
        Some(other) => return Err(bad("revocation.kind", format!("unknown kind `{other}`"))),
    })
}

/// `[signing]`.
fn signing(sg: RawSigning) -> Result<SigningConfig, ConfigError> {
    let signing = SigningConfig {
        alg: SigningAlg::parse(sg.alg.as_deref().unwrap_or(defaults::SIGNING_ALG))
            .ok_or_else(|| bad("signing.alg", "must be RS256, ES256 or EdDSA"))?,
        key_file: sg.key_file.map(PathBuf::from),
        next_key_file: sg.next_key_file.map(PathBuf::from),
        retired_key_files: sg
            .retired_key_files
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        rotation_interval: sg
            .rotation_interval_secs
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        encryption_key: match (
            sg.encryption_key_file.filter(|f| !f.is_empty()),
            sg.encryption_key
                .filter(|k| !k.is_empty())
                .map(ClientSecret::new),
        ) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "signing.encryption_key_file",
                    "set the file or MCPGW_ISSUER_SIGNING_ENCRYPTION_KEY, not both",
                ))
            }
            (Some(f), None) => Some(EncryptionKey::File(PathBuf::from(f))),
            (None, Some(v)) => Some(EncryptionKey::Value(v)),
            (None, None) => None,
        },
    };
    if signing.key_file.is_some() && signing.encryption_key.is_some() {
        return Err(bad(
            "signing.encryption_key_file",
            "only stored keys are encrypted; file keys are protected by their files",
        ));
    }
    if signing.key_file.is_none()
        && (signing.next_key_file.is_some() || !signing.retired_key_files.is_empty())
    {
        return Err(bad(
            "signing.key_file",
            "required with next_key_file / retired_key_files",
        ));
    }
    if signing.key_file.is_some() && signing.rotation_interval.is_some() {
        return Err(bad(
            "signing.rotation_interval_secs",
            "file keys are rotated by replacing the files",
        ));
    }
    Ok(signing)
}

/// `[registration]`.
fn registration(rg: RawRegistration) -> Result<RegistrationSettings, ConfigError> {
    Ok(RegistrationSettings {
        enabled: rg.enabled.unwrap_or(true),
        rate_limit: rg.rate_limit.unwrap_or(defaults::REGISTRATION_RATE_LIMIT),
        rate_window: secs(
            "registration.rate_window_secs",
            rg.rate_window_secs,
            defaults::REGISTRATION_RATE_WINDOW_SECS,
            1,
        )?,
        client_lifetime: rg
            .client_lifetime_secs
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        initial_access_token: rg
            .initial_access_token
            .filter(|t| !t.is_empty())
            .map(RegistrationToken::new),
        enforce_client_scope: rg.enforce_client_scope.unwrap_or(false),
        private_use_schemes: match rg.private_use_schemes.as_deref() {
            None => Default::default(),
            Some(v) => crate::issue::redirect::PrivateUseSchemes::parse(v).ok_or_else(|| {
                bad(
                    "registration.private_use_schemes",
                    "expected any, reverse_domain or none",
                )
            })?,
        },
    })
}

/// `[cimd]`: the core's policy, and whether private addresses may be
/// fetched.
fn cimd(cm: RawCimd) -> Result<(CimdSettings, bool), ConfigError> {
    let default_cache = secs(
        "cimd.default_cache_secs",
        cm.default_cache_secs,
        defaults::CIMD_DEFAULT_CACHE_SECS,
        0,
    )?;
    let max_cache = secs(
        "cimd.max_cache_secs",
        cm.max_cache_secs,
        defaults::CIMD_MAX_CACHE_SECS,
        1,
    )?;
    let settings = CimdSettings {
        enabled: cm.enabled.unwrap_or(true),
        default_cache,
        min_cache: CIMD_MIN_CACHE.min(max_cache),
        max_cache,
    };
    Ok((settings, cm.allow_private_addresses.unwrap_or(false)))
}

// === impl RawConfig ===

impl RawConfig {
    pub fn validate(self) -> Result<IssuerConfig, ConfigError> {
        let listen: SocketAddr = self
            .listen
            .as_deref()
            .unwrap_or(defaults::LISTEN)
            .parse()
            .map_err(|e| bad("listen", e))?;
        let admin_listen = crate::config::common::admin_addr(
            "admin_listen",
            self.admin_listen.as_deref(),
            listen,
            DEFAULT_ADMIN_LISTEN,
        )
        .map_err(|m| bad("admin_listen", m))?;
        let (issuer, issuer_from_listener) = match self.issuer {
            Some(i) => {
                url_key("issuer", &i, true)?;
                (i.trim_end_matches('/').to_owned(), false)
            }
            None if listen.ip().is_loopback() => (format!("http://{listen}"), true),
            None => return Err(bad("issuer", "required unless listening on loopback")),
        };
        let raw_res = self.resources.unwrap_or_default();
        if raw_res.is_empty() {
            return Err(bad(
                "resources",
                "configure at least one protected resource",
            ));
        }
        let mut resources = Vec::new();
        let mut all_scopes: Vec<String> = Vec::new();
        for (i, r) in raw_res.into_iter().enumerate() {
            let key = format!("resources[{i}].resource");
            let res = r.resource.ok_or_else(|| bad(&key, "required"))?;
            let u = url::Url::parse(&res).map_err(|e| bad(&key, e))?;
            if u.fragment().is_some() || !matches!(u.scheme(), "https" | "http") {
                return Err(bad(&key, "must be an http(s) URI without a fragment"));
            }
            if let Some(s) = &r.scopes {
                scopes_key(&format!("resources[{i}].scopes"), s)?;
                all_scopes.extend(s.iter().cloned());
            }
            if let Some(d) = &r.default_scopes {
                let dk = format!("resources[{i}].default_scopes");
                scopes_key(&dk, d)?;
                if let Some(x) = d
                    .iter()
                    .find(|x| r.scopes.as_ref().is_some_and(|s| !s.contains(x)))
                {
                    return Err(bad(&dk, format!("`{x}` is not in this resource's scopes")));
                }
            }
            resources.push((res, r.scopes, r.default_scopes));
        }
        let scopes = match self.scopes {
            Some(s) => {
                scopes_key("scopes", &s)?;
                if let Some(x) = all_scopes.iter().find(|x| !s.contains(x)) {
                    return Err(bad("scopes", format!("missing resource scope `{x}`")));
                }
                s
            }
            None => {
                all_scopes.sort();
                all_scopes.dedup();
                all_scopes
            }
        };
        for (i, (_, _, default_scopes)) in resources.iter().enumerate() {
            if let Some(x) = default_scopes
                .iter()
                .flatten()
                .find(|x| !scopes.is_empty() && !scopes.contains(x))
            {
                return Err(bad(
                    &format!("resources[{i}].default_scopes"),
                    format!("`{x}` is not in scopes"),
                ));
            }
        }
        let default_resource = match self.default_resource {
            Some(d) => {
                let (found, _, _) = resources
                    .iter()
                    .find(|(r, _, _)| crate::issue::authorize::same_resource(r, &d))
                    .ok_or_else(|| bad("default_resource", "must be one of resources"))?;
                Some(found.clone())
            }
            None if resources.len() == 1 => Some(resources[0].0.clone()),
            None => None,
        };
        let default_scopes = self.default_scopes.unwrap_or_default();
        scopes_key("default_scopes", &default_scopes)?;
        if let Some(x) = default_scopes.iter().find(|x| !scopes.contains(x)) {
            return Err(bad("default_scopes", format!("`{x}` is not in scopes")));
        }
        let providers = self
            .providers
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, p)| provider(i, p))
            .collect::<Result<Vec<_>, _>>()?;
        if providers.is_empty() {
            return Err(bad("providers", "configure at least one login provider"));
        }
        let mut ids: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("providers", "provider ids must be unique"));
        }
        if providers
            .iter()
            .filter(|p| p.kind == ProviderKind::Static)
            .count()
            > 1
        {
            return Err(bad("providers", "at most one static provider"));
        }
        // GitHub subjects are `github:<id>` whatever the provider id: no
        // other provider may take that prefix.
        if let Some(p) = providers
            .iter()
            .find(|p| p.id == "github" && p.kind != ProviderKind::GitHub)
        {
            return Err(bad(
                "providers",
                format!("provider id `{}` is reserved for kind = \"github\"", p.id),
            ));
        }
        let upstream: Vec<_> = providers
            .iter()
            .filter(|p| p.kind != ProviderKind::Static)
            .collect();
        let bare_is_github =
            !upstream.is_empty() && upstream.iter().all(|p| p.kind == ProviderKind::GitHub);
        let allow_list = AllowList::parse(&self.allow_list.unwrap_or_default(), bare_is_github)
            .map_err(|e| bad("allow_list", e))?;
        if allow_list.is_empty() && providers.iter().any(|p| p.kind != ProviderKind::Static) {
            return Err(bad(
                "allow_list",
                "required with github/google/oidc providers (use [\"*\"] to allow everyone)",
            ));
        }
        let trusted_proxies = self
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|s| s.parse::<IpNet>().map_err(|e| bad("trusted_proxies", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let st = self.storage.unwrap_or_default();
        let storage = storage(&st)?;
        let revocation = revocation(self.revocation.unwrap_or_default(), st)?;
        let signing = signing(self.signing.unwrap_or_default())?;
        let registration = registration(self.registration.unwrap_or_default())?;
        let (cimd, cimd_allow_private_addresses) = cimd(self.cimd.unwrap_or_default())?;
        let scope_set = |v: Option<Vec<String>>| v.map(Scopes::from_iter);
        let resources = resources
            .into_iter()
            .map(|(resource, scopes, default_scopes)| ResourceSettings {
                resource,
                scopes: scope_set(scopes),
                default_scopes: scope_set(default_scopes),
            })
            .collect();
        let settings = Settings {
            issuer,
            resources,
            scopes: Scopes::from_iter(scopes),
            default_scopes: Scopes::from_iter(default_scopes),
            default_resource,
            refresh_max_lifetime: secs(
                "refresh_token_max_lifetime_secs",
                self.refresh_token_max_lifetime_secs,
                defaults::REFRESH_TOKEN_MAX_LIFETIME_SECS,
                60,
            )?,
            access_ttl: secs(
                "access_token_ttl_secs",
                self.access_token_ttl_secs,
                defaults::ACCESS_TOKEN_TTL_SECS,
                30,
            )?,
            refresh_ttl: secs(
                "refresh_token_ttl_secs",
                self.refresh_token_ttl_secs,
                defaults::REFRESH_TOKEN_TTL_SECS,
                60,
            )?,
            refresh_grace: secs(
                "refresh_grace_secs",
                self.refresh_grace_secs,
                defaults::REFRESH_GRACE_SECS,
                0,
            )?,
            code_ttl: secs(
                "code_ttl_secs",
                self.code_ttl_secs,
                defaults::CODE_TTL_SECS,
                5,
            )?,
            session_ttl: secs(
                "session_ttl_secs",
                self.session_ttl_secs,
                defaults::SESSION_TTL_SECS,
                0,
            )?,
            consent_ttl: secs(
                "consent_ttl_secs",
                self.consent_ttl_secs,
                defaults::CONSENT_TTL_SECS,
                0,
            )?,
            pending_ttl: secs(
                "login_timeout_secs",
                self.login_timeout_secs,
                defaults::LOGIN_TIMEOUT_SECS,
                30,
            )?,
            registration,
            cimd,
            allow_list,
            admin_token: self
                .admin_token
                .filter(|t| !t.is_empty())
                .map(AdminToken::new),
        };
        Ok(IssuerConfig {
            issuer_from_listener,
            listen,
            admin_listen,
            settings,
            trusted_proxies,
            storage,
            revocation,
            signing,
            cimd_allow_private_addresses,
            providers,
        })
    }
}
