//! The issuer's composition root: validated config + injectable
//! dependencies → the core ([`Issuer`]) → the HTTP server.
//!
//! Backends are chosen from config by the small factories below
//! ([`build_store`], [`build_revocations`], [`build_idps`],
//! [`build_fetcher`]); tests and `mcpgate dev` inject their own through
//! [`IssuerDeps`].

use crate::adapters::issuer::{admin_routes, routes, IssuerMetrics, IssuerState};
use crate::config::issuer::{
    EncryptionKey, IssuerConfig, ProviderConfig, ProviderKind, RevocationConfig,
};
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::revocation::RevocationSink;
use crate::infra::cimd_fetch::{FetchSettings, GuardedFetcher};
use crate::infra::github::{GitHubIdp, GitHubSettings};
use crate::infra::oidc::{LazyOidc, OidcSettings};
use crate::infra::revocation::{LocalRevocations, RedisRevocationSink};
use crate::infra::sealed_store::{parse_key, SealedKeys};
use crate::infra::store_backend::{open_store, StoreBackend};
use crate::issue::cimd::MetadataFetcher;
use crate::issue::keys::{KeyManager, PemKeys};
use crate::issue::metadata::issuer_path;
use crate::issue::service::{CimdSettings, Issuer, IssuerParts};
use crate::issue::store::Store;
use crate::issue::upstream::UpstreamIdp;
use crate::issue::users::StaticUsers;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Clock skew tolerated by verifiers, added to how long retired keys stay.
const KEY_RETIRE_SLACK: Duration = Duration::from_secs(300);
/// How often the revocation store is checked against the issuer's own
/// record of revocations in force.
const REPUBLISH_INTERVAL: Duration = Duration::from_secs(5);
/// How often the signing-key version is polled (other replicas' rotations).
const KEY_VERSION_POLL: Duration = Duration::from_secs(1);
/// How often stored keys are re-read in full (retirements, expiries).
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// The first tasks of [`RunningIssuer`]: the public and the admin server.
const SERVERS: usize = 2;

/// Injectable dependencies; `Default` builds everything from config.
#[derive(Default, Clone)]
pub struct IssuerDeps {
    pub clock: Option<Arc<dyn Clock>>,
    pub store: Option<Arc<dyn Store>>,
    pub revocations: Option<Arc<dyn RevocationSink>>,
    /// Replaces the github/google/oidc providers of the config.
    pub idps: Option<Vec<Arc<dyn UpstreamIdp>>>,
    pub fetcher: Option<Arc<dyn MetadataFetcher>>,
}

pub use super::StartError;

fn setup(what: &str) -> impl Fn(String) -> StartError + '_ {
    move |e| StartError::Setup(format!("{what}: {e}"))
}

/// A running issuer.
pub struct RunningIssuer {
    pub http_addr: SocketAddr,
    /// The internal listener: admin API and `/metrics`.
    pub admin_addr: SocketAddr,
    /// The issuer identifier in use.
    pub issuer: String,
    pub core: Arc<Issuer>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Opens the configured store.
pub(crate) async fn build_store(
    cfg: &StoreBackend,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, StartError> {
    open_store(cfg, clock)
        .await
        .map_err(|e| StartError::Setup(format!("storage: {e}")))
}

/// Connects the configured revocation sink.
pub(crate) async fn build_revocations(
    cfg: &RevocationConfig,
    clock: Arc<dyn Clock>,
    max_token_lifetime: Duration,
) -> Result<Arc<dyn RevocationSink>, StartError> {
    Ok(match cfg {
        RevocationConfig::Local => Arc::new(LocalRevocations::new(clock, max_token_lifetime)),
        RevocationConfig::Redis { urls, cluster } => Arc::new(
            RedisRevocationSink::connect(urls, *cluster, clock, max_token_lifetime)
                .await
                .map_err(|e| setup("revocation")(e.to_string()))?,
        ),
    })
}

/// Builds the github/google/oidc providers (OIDC ones run discovery now).
pub(crate) async fn build_idps(
    providers: &[ProviderConfig],
    clock: Arc<dyn Clock>,
) -> Result<Vec<Arc<dyn UpstreamIdp>>, StartError> {
    let http = crate::infra::http_client::build(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none()),
    )
    .map_err(setup("http client"))?;
    let mut out: Vec<Arc<dyn UpstreamIdp>> = Vec::new();
    for p in providers {
        let secret = p.client_secret.clone();
        match p.kind {
            ProviderKind::Static => {}
            ProviderKind::GitHub => {
                let mut s = GitHubSettings::new(
                    &p.client_id,
                    secret.unwrap_or_else(|| crate::domain::secret::ClientSecret::new("")),
                );
                if let Some(v) = &p.scopes {
                    s.scopes = v.clone();
                }
                if let Some(v) = &p.web_base {
                    s.web_base = v.clone();
                }
                if let Some(v) = &p.api_base {
                    s.api_base = v.clone();
                }
                out.push(Arc::new(GitHubIdp::new(s, http.clone())));
            }
            ProviderKind::Google | ProviderKind::Oidc => {
                let mut s = match (p.kind, secret) {
                    (ProviderKind::Google, Some(sec)) => OidcSettings::google(&p.client_id, sec),
                    (_, sec) => OidcSettings::new(
                        &p.id,
                        p.issuer.clone().unwrap_or_default(),
                        &p.client_id,
                        sec,
                    ),
                };
                s.id = p.id.clone();
                s.display_name = p.display_name.clone();
                if let Some(v) = &p.scopes {
                    s.scopes = v.clone();
                }
                let idp = LazyOidc::start(s, http.clone(), clock.clone())
                    .await
                    .map_err(|e| setup(&format!("provider {}", p.id))(e.to_string()))?;
                out.push(Arc::new(idp));
            }
        }
    }
    Ok(out)
}

/// The SSRF-guarded metadata document fetcher (`None` when CIMD is off).
pub(crate) fn build_fetcher(
    cimd: &CimdSettings,
    allow_private_addresses: bool,
) -> Option<Arc<dyn MetadataFetcher>> {
    cimd.enabled.then(|| {
        let s = FetchSettings {
            allow_private_addresses,
            max_cache_age: cimd.max_cache,
            ..FetchSettings::default()
        };
        Arc::new(GuardedFetcher::new(s)) as Arc<dyn MetadataFetcher>
    })
}

fn read_pem(p: &std::path::Path) -> Result<String, StartError> {
    std::fs::read_to_string(p)
        .map_err(|e| StartError::Setup(format!("signing key {}: {e}", p.display())))
}

/// Builds the core (its settings as validated, `settings.issuer` final).
pub async fn build(config: &IssuerConfig, deps: IssuerDeps) -> Result<Arc<Issuer>, StartError> {
    let clock = deps.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let store = match deps.store {
        Some(s) => s,
        None => build_store(&config.storage, clock.clone()).await?,
    };
    let store = match &config.signing.encryption_key {
        Some(k) => {
            let raw = match k {
                EncryptionKey::Value(v) => v.secret().as_bytes().to_vec(),
                EncryptionKey::File(p) => std::fs::read(p).map_err(|e| {
                    StartError::Setup(format!("signing encryption key {}: {e}", p.display()))
                })?,
            };
            let key = parse_key(&raw).map_err(setup("signing encryption key"))?;
            Arc::new(SealedKeys::new(store, &key).map_err(|e| StartError::Setup(e.to_string()))?)
                as Arc<dyn Store>
        }
        None => store,
    };
    let max_lifetime = config.settings.access_ttl + KEY_RETIRE_SLACK;
    let revocations = match deps.revocations {
        Some(r) => r,
        None => build_revocations(&config.revocation, clock.clone(), max_lifetime).await?,
    };
    let idps = match deps.idps {
        Some(i) => i,
        None => build_idps(&config.providers, clock.clone()).await?,
    };
    let fetcher = deps
        .fetcher
        .or_else(|| build_fetcher(&config.settings.cimd, config.cimd_allow_private_addresses));
    let s = &config.signing;
    let keys = match &s.key_file {
        Some(f) => {
            let pem = PemKeys {
                current: read_pem(f)?,
                next: s.next_key_file.as_deref().map(read_pem).transpose()?,
                retired: s
                    .retired_key_files
                    .iter()
                    .map(|p| read_pem(p))
                    .collect::<Result<_, _>>()?,
            };
            KeyManager::from_pem(s.alg, &pem, store.clone())
        }
        None => KeyManager::from_store(s.alg, store.clone(), max_lifetime, clock.unix()).await,
    }
    .map_err(|e| StartError::Setup(e.to_string()))?;
    let static_users = match config
        .providers
        .iter()
        .find(|p| p.kind == ProviderKind::Static)
    {
        Some(p) => Some(
            StaticUsers::new(&p.id, &p.display_name, p.users.clone())
                .map_err(|e| StartError::Setup(format!("provider {}: {e}", p.id)))?,
        ),
        None => None,
    };
    Ok(Arc::new(Issuer::new(IssuerParts {
        settings: config.settings.clone(),
        store,
        revocations,
        clock,
        keys,
        idps,
        static_users,
        fetcher,
    })))
}

/// Binds, builds and serves; logs `listening http=<addr> admin=<addr>
/// metrics=<addr>` (the admin API and `/metrics` share the internal
/// listener).
pub async fn spawn(
    mut config: IssuerConfig,
    deps: IssuerDeps,
) -> Result<RunningIssuer, StartError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| StartError::Bind(config.admin_listen, e))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.admin_listen, e))?;
    if config.issuer_from_listener {
        config.settings.issuer = format!("http://{http_addr}");
    }
    let issuer = config.settings.issuer.clone();
    let core = build(&config, deps).await?;
    let state = Arc::new(IssuerState {
        core: core.clone(),
        metrics: IssuerMetrics::new(),
        trusted_proxies: config.trusted_proxies.clone(),
    });
    let router = routes(state.clone());
    let (tx, rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(super::serve_router(router, listener, rx.clone(), "issuer")),
        tokio::spawn(super::serve_router(
            admin_routes(state),
            admin_listener,
            rx,
            "issuer admin",
        )),
    ];
    tasks.push(tokio::spawn(revocation_maintenance(core.clone())));
    if !core.keys().is_file_managed() {
        tasks.push(tokio::spawn(key_maintenance(
            core.clone(),
            config.signing.rotation_interval,
        )));
    }
    tracing::info!(http = %http_addr, admin = %admin_addr, metrics = %admin_addr, issuer = %issuer, path = %issuer_path(&issuer), "listening");
    Ok(RunningIssuer {
        http_addr,
        admin_addr,
        issuer,
        core,
        shutdown: tx,
        tasks,
    })
}

/// Every [`REPUBLISH_INTERVAL`], makes sure the revocation store holds
/// every revocation the issuer's own store still keeps in force (a Redis
/// that restarted without its data gets them back, and verifiers are told).
async fn revocation_maintenance(core: Arc<Issuer>) {
    loop {
        tokio::time::sleep(REPUBLISH_INTERVAL).await;
        match core.republish_revocations().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                restored = n,
                "the revocation store had lost revocations; republished them"
            ),
            Err(e) => tracing::warn!(error = %e.log_detail(), "republishing revocations failed"),
        }
    }
}

/// Re-reads stored keys and rotates them when due. Replicas race for a
/// per-key lock counter so only one rotates.
async fn key_maintenance(core: Arc<Issuer>, interval: Option<Duration>) {
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(KEY_VERSION_POLL).await;
        // Another replica's rotation: within a second (one GET).
        match core.keys().reload_if_rotated().await {
            Ok(true) => {
                tracing::info!(kid = ?core.keys().current_kid(), "signing keys reloaded after a rotation elsewhere")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "checking the signing-key version failed"),
        }
        if last_full.elapsed() < KEY_RELOAD_INTERVAL {
            continue;
        }
        last_full = tokio::time::Instant::now();
        if let Err(e) = core.keys().reload().await {
            tracing::warn!(error = %e, "reloading signing keys failed");
        }
        let (Some(every), Some(since), Some(kid)) = (
            interval,
            core.keys().current_since(),
            core.keys().current_kid(),
        ) else {
            continue;
        };
        if core.now() < since + every.as_secs() {
            continue;
        }
        let lock = format!("rotate:{kid}");
        match core
            .store()
            .incr(crate::issue::store::Namespace::RateLimits, &lock, every)
            .await
        {
            Ok(1) => {
                if let Err(e) = core.keys().rotate(core.now()).await {
                    tracing::error!(error = %e, "automatic key rotation failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "key rotation lock unavailable"),
        }
    }
}

// === impl RunningIssuer ===

impl RunningIssuer {
    /// Stops the server (letting open connections finish, up to 5 s) and
    /// the background tasks.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let mut tasks = std::mem::take(&mut self.tasks);
        let rest = tasks.split_off(SERVERS.min(tasks.len()));
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::future::join_all(tasks),
        )
        .await
        .is_err()
        {
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        for t in rest {
            t.abort();
        }
    }

    /// Waits until the server stops (for the binary).
    pub async fn wait(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}
