//! [`Issuer`]: the authorization server core, its settings and dependencies.
//! Each RFC's logic lives in its own module as an `impl Issuer` block.

use crate::domain::claims::Scopes;
use crate::domain::clock::Clock;
use crate::domain::revocation::RevocationSink;
use crate::domain::secret::{AdminToken, RegistrationToken};
use crate::issue::cimd::MetadataFetcher;
use crate::issue::keys::KeyManager;
use crate::issue::store::{Namespace, Store};
use crate::issue::upstream::UpstreamIdp;
use crate::issue::users::{AllowList, StaticUsers};
use std::sync::Arc;
use std::time::Duration;

/// A protected resource the issuer mints tokens for (RFC 8707).
#[derive(Debug, Clone)]
pub struct ResourceSettings {
    /// The canonical resource URI; becomes the token `aud`.
    pub resource: String,
    /// Scopes grantable for this resource; `None` = all supported scopes.
    pub scopes: Option<Scopes>,
    /// Granted when a request names no scope (overrides the global ones).
    pub default_scopes: Option<Scopes>,
}

/// RFC 7591 registration policy.
#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    pub enabled: bool,
    /// Registrations allowed per client IP per `rate_window` (0 = unlimited).
    pub(crate) rate_limit: u64,
    pub(crate) rate_window: Duration,
    /// How long a registration lives; `None` = forever.
    pub(crate) client_lifetime: Option<Duration>,
    /// When set, `POST /register` needs `Authorization: Bearer <token>`.
    pub(crate) initial_access_token: Option<RegistrationToken>,
    /// Limit grants to the client's registered `scope` (off by default:
    /// self-asserted metadata is no boundary, and MCP step-up needs it off).
    pub enforce_client_scope: bool,
    /// Which private-use redirect URI schemes clients (registered or
    /// metadata documents) may use.
    pub(crate) private_use_schemes: crate::issue::redirect::PrivateUseSchemes,
}

/// Client ID Metadata Document policy.
#[derive(Debug, Clone)]
pub struct CimdSettings {
    pub enabled: bool,
    /// Cache time when the document sends no `max-age`.
    pub(crate) default_cache: Duration,
    /// Bounds on the cache time.
    pub(crate) min_cache: Duration,
    pub(crate) max_cache: Duration,
}

/// Everything the core needs to know from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer identifier, without a trailing slash.
    pub issuer: String,
    pub resources: Vec<ResourceSettings>,
    /// `scopes_supported`.
    pub scopes: Scopes,
    /// Granted when a request names no scope.
    pub default_scopes: Scopes,
    /// The resource of requests that name none.
    pub default_resource: Option<String>,
    pub(crate) access_ttl: Duration,
    /// Sliding: each rotation renews it.
    pub(crate) refresh_ttl: Duration,
    /// Absolute, from the user's login (`Grant::auth_time`).
    pub(crate) refresh_max_lifetime: Duration,
    /// How long a rotated refresh token still gets a fresh pair instead of
    /// counting as reuse (RFC 9700 §4.14.2; lost responses, parallel tabs).
    pub(crate) refresh_grace: Duration,
    pub(crate) code_ttl: Duration,
    /// How long a user has to log in and consent.
    pub(crate) pending_ttl: Duration,
    pub(crate) session_ttl: Duration,
    pub(crate) consent_ttl: Duration,
    pub registration: RegistrationSettings,
    pub cimd: CimdSettings,
    pub allow_list: AllowList,
    pub admin_token: Option<AdminToken>,
}

/// What [`Issuer::new`] is built from (by `app::issuer`).
pub struct IssuerParts {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub revocations: Arc<dyn RevocationSink>,
    pub clock: Arc<dyn Clock>,
    pub keys: KeyManager,
    /// Browser-redirect upstream providers (GitHub, Google, OIDC).
    pub idps: Vec<Arc<dyn UpstreamIdp>>,
    /// The built-in username/password provider, if configured.
    pub static_users: Option<StaticUsers>,
    /// Fetcher of Client ID Metadata Documents (`None` disables CIMD).
    pub fetcher: Option<Arc<dyn MetadataFetcher>>,
}

/// The authorization server core. Built by `app::issuer`; its fields are
/// private to `issue`, so the adapters reach it only through its operations
/// and the read-only accessors below.
pub struct Issuer {
    pub(in crate::issue) settings: Settings,
    pub(in crate::issue) store: Arc<dyn Store>,
    pub(in crate::issue) revocations: Arc<dyn RevocationSink>,
    pub(in crate::issue) clock: Arc<dyn Clock>,
    pub(in crate::issue) keys: KeyManager,
    /// Browser-redirect upstream providers (GitHub, Google, OIDC).
    pub(in crate::issue) idps: Vec<Arc<dyn UpstreamIdp>>,
    /// The built-in username/password provider, if configured.
    pub(in crate::issue) static_users: Option<StaticUsers>,
    /// Fetcher of Client ID Metadata Documents (`None` disables CIMD).
    pub(in crate::issue) fetcher: Option<Arc<dyn MetadataFetcher>>,
}

// === impl Settings ===

impl Settings {
    /// An absolute URL on this issuer for an endpoint path.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Whether cookies get `Secure` (the issuer is served over https).
    pub(crate) fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// Whether `scopes_supported` is open-ended (no scopes configured).
    pub(crate) fn any_scope(&self) -> bool {
        self.scopes.is_empty()
    }
}

// === impl Issuer ===

impl Issuer {
    /// The core over `parts`.
    pub fn new(p: IssuerParts) -> Self {
        Self {
            settings: p.settings,
            store: p.store,
            revocations: p.revocations,
            clock: p.clock,
            keys: p.keys,
            idps: p.idps,
            static_users: p.static_users,
            fetcher: p.fetcher,
        }
    }

    /// The signing keys (for the key-maintenance task and the admin
    /// rotation).
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    pub fn now(&self) -> u64 {
        self.clock.unix()
    }

    /// An upstream provider by id.
    pub fn idp(&self, id: &str) -> Option<&Arc<dyn UpstreamIdp>> {
        self.idps.iter().find(|p| p.id() == id)
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The public signing keys (RFC 7517), for `/jwks`.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.keys.jwks()
    }

    /// The store (for operators' tools and tests that inspect it).
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The built-in username/password provider, if configured.
    pub fn static_users(&self) -> Option<&StaticUsers> {
        self.static_users.as_ref()
    }

    /// Why the issuer cannot serve now, if it cannot: the store or the
    /// revocation sink does not answer (a revocation could not be
    /// acknowledged). Logged here; the reason is safe to show.
    pub(crate) async fn not_ready(&self) -> Option<&'static str> {
        if let Err(e) = self.store.get(Namespace::RateLimits, "readyz").await {
            tracing::warn!(error = %e, "store not ready");
            return Some("storage unavailable");
        }
        if let Err(e) = self.revocations.check().await {
            tracing::warn!(error = %e, "revocation sink not ready");
            return Some("revocation store unavailable");
        }
        None
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.settings.issuer)
            .field(
                "idps",
                &self.idps.iter().map(|p| p.id()).collect::<Vec<_>>(),
            )
            .finish()
    }
}
