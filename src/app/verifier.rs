//! The verifier's composition root: config + injectable dependencies →
//! HTTP (ForwardAuth, PRM, health, metrics) and gRPC (ext_authz, health)
//! servers.

use crate::adapters::envoy::EnvoyAuthz;
use crate::adapters::prm::{prm_url, PrmDocs, PrmEntry};
use crate::adapters::verifier_state::{HeaderPlan, VerifierState};
use crate::config::verifier::VerifierConfig;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::revocation::RevocationView;
use crate::infra::jwks::{HttpJwksFetcher, JwksCache, JwksFetcher, JwksSettings};
use crate::infra::revocation::{LocalRevocations, MirrorSettings, RedisRevocationMirror};
use crate::infra::token_cache;
use crate::metrics::VerifierMetrics;
use crate::verify::authorizer::{Authorizer, AuthorizerSettings};
use crate::verify::jwt::JwtSettings;
use crate::verify::policy::{Route, Routes, ToolRule};
use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest time a verified token stays in the cache (exp still applies).
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(300);
/// Largest JWKS / discovery response accepted.
const JWKS_MAX_BYTES: usize = 256 * 1024;

type LenFn = Arc<dyn Fn() -> Option<usize> + Send + Sync>;

/// Injectable dependencies; `Default` gives the production ones.
#[derive(Default, Clone)]
pub struct VerifierDeps {
    pub clock: Option<Arc<dyn Clock>>,
    /// Revocation source; default: a Redis mirror when `redis_urls` is set,
    /// else an empty in-process set.
    pub revocations: Option<Arc<dyn RevocationView>>,
    pub jwks_fetcher: Option<Arc<dyn JwksFetcher>>,
}

/// Failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("{0}")]
    Setup(String),
}

/// The built application, not yet listening.
pub struct VerifierApp {
    pub state: Arc<VerifierState>,
    jwks: Arc<JwksCache>,
    config: VerifierConfig,
}

/// A running verifier.
pub struct RunningVerifier {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub state: Arc<VerifierState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Builds the state (spawns the revocation mirror if configured; needs a
/// Tokio runtime).
pub fn build(config: VerifierConfig, deps: VerifierDeps) -> Result<VerifierApp, StartError> {
    let clock = deps.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let metrics = Arc::new(VerifierMetrics::new());
    let fetcher: Arc<dyn JwksFetcher> = match deps.jwks_fetcher {
        Some(f) => f,
        None => Arc::new(
            HttpJwksFetcher::new(config.jwks_timeout, JWKS_MAX_BYTES).map_err(StartError::Setup)?,
        ),
    };
    let jwks = Arc::new(JwksCache::new(
        config.issuers.clone(),
        fetcher,
        JwksSettings {
            min_refetch_interval: config.jwks_min_refetch,
            refresh_interval: config.jwks_refresh,
        },
        metrics.jwks_fetches.clone(),
    ));
    let (revocations, revocation_len): (Arc<dyn RevocationView>, LenFn) = match deps.revocations {
        Some(r) => (r, Arc::new(|| None)),
        None if !config.redis_urls.is_empty() => {
            let mut settings =
                MirrorSettings::new(config.redis_urls.clone(), config.max_token_lifetime);
            settings.propagation = Some(metrics.revocation_propagation.clone());
            let m = Arc::new(RedisRevocationMirror::spawn(settings, clock.clone()));
            let m2 = m.clone();
            (m, Arc::new(move || Some(m2.len())))
        }
        None => {
            let l = Arc::new(LocalRevocations::new(
                clock.clone(),
                config.max_token_lifetime,
            ));
            let l2 = l.clone();
            (l, Arc::new(move || Some(l2.len())))
        }
    };
    let routes = Routes::new(config.routes.iter().map(route_of).collect());
    let prm = PrmDocs::new(
        &config
            .routes
            .iter()
            .filter(|r| !r.public)
            .map(|r| PrmEntry {
                resource: r.resource.clone(),
                authorization_servers: config.authorization_servers.clone(),
                scopes_supported: r.scopes_supported.clone(),
                resource_name: r.resource_name.clone(),
            })
            .collect::<Vec<_>>(),
    );
    let authorizer = Authorizer {
        settings: AuthorizerSettings {
            jwt: JwtSettings {
                issuers: config.issuers.iter().map(|(i, _)| i.clone()).collect(),
                leeway_secs: config.leeway_secs,
                require_at_jwt_typ: config.require_at_jwt_typ,
            },
            allow_parent_audience: config.allow_parent_audience,
            revocation_staleness: config.revocation_staleness,
        },
        routes,
        keys: jwks.clone(),
        cache: token_cache::for_capacity(config.token_cache_capacity, TOKEN_CACHE_TTL),
        revocations,
        clock,
    };
    let j2 = jwks.clone();
    let state = Arc::new(VerifierState {
        authorizer,
        headers: HeaderPlan::new(
            config.identity_headers.clone(),
            !config.forward_authorization,
        ),
        metrics,
        prm,
        trusted_proxies: config.trusted_proxies.clone(),
        jwks_loaded: Arc::new(move || j2.all_loaded()),
        revocation_len,
    });
    Ok(VerifierApp {
        state,
        jwks,
        config,
    })
}

fn route_of(r: &crate::config::verifier::RouteConfig) -> Route {
    Route::new(
        r.host.clone(),
        r.path_prefix.clone(),
        r.resource.clone(),
        r.required_scopes.clone(),
        r.tool_scopes
            .iter()
            .map(|(method, name, scopes)| ToolRule {
                method: method.clone(),
                name: name.clone(),
                scopes: scopes.clone(),
            })
            .collect(),
        r.public,
        r.fail_open_on_stale_revocation,
        prm_url(&r.resource_url),
    )
}

/// Builds and starts listening; logs `listening http=… grpc=…`.
pub async fn spawn(
    config: VerifierConfig,
    deps: VerifierDeps,
) -> Result<RunningVerifier, StartError> {
    build(config, deps)?.serve().await
}

// === impl VerifierApp ===

impl VerifierApp {
    pub async fn serve(self) -> Result<RunningVerifier, StartError> {
        let http = tokio::net::TcpListener::bind(self.config.http_addr)
            .await
            .map_err(|e| StartError::Bind(self.config.http_addr, e))?;
        let grpc = tokio::net::TcpListener::bind(self.config.grpc_addr)
            .await
            .map_err(|e| StartError::Bind(self.config.grpc_addr, e))?;
        let http_addr = http
            .local_addr()
            .map_err(|e| StartError::Bind(self.config.http_addr, e))?;
        let grpc_addr = grpc
            .local_addr()
            .map_err(|e| StartError::Bind(self.config.grpc_addr, e))?;
        let (tx, rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // Warm the JWKS cache in the background, then keep it fresh.
        let jwks = self.jwks.clone();
        tasks.push(tokio::spawn(async move { jwks.refresh_all().await }));
        tasks.push(self.jwks.spawn_refresher());

        let router = crate::adapters::forward_auth::routes(self.state.clone());
        let mut rx1 = rx.clone();
        tasks.push(tokio::spawn(async move {
            let svc = router.into_make_service_with_connect_info::<SocketAddr>();
            let stop = async move {
                let _ = rx1.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(http, svc).with_graceful_shutdown(stop).await {
                tracing::error!(error = %e, "verifier HTTP server failed");
            }
        }));

        let (reporter, health) = tonic_health::server::health_reporter();
        let authz = AuthorizationServer::new(EnvoyAuthz(self.state.clone()));
        let mut rx2 = rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx2.wait_for(|s| *s).await;
            };
            let incoming =
                tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(health)
                .add_service(authz)
                .serve_with_incoming_shutdown(incoming, stop)
                .await
            {
                tracing::error!(error = %e, "verifier gRPC server failed");
            }
        }));

        // gRPC health follows revocation freshness.
        let st = self.state.clone();
        tasks.push(tokio::spawn(async move {
            let name = "envoy.service.auth.v3.Authorization";
            let mut last = None;
            loop {
                let (_, stale) = st.revocation_status();
                if last != Some(stale) {
                    let status = if stale {
                        tonic_health::ServingStatus::NotServing
                    } else {
                        tonic_health::ServingStatus::Serving
                    };
                    reporter.set_service_status(name, status).await;
                    reporter.set_service_status("", status).await;
                    last = Some(stale);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));

        tracing::info!(http = %http_addr, grpc = %grpc_addr, "listening");
        Ok(RunningVerifier {
            http_addr,
            grpc_addr,
            state: self.state,
            shutdown: tx,
            tasks,
        })
    }
}

// === impl RunningVerifier ===

impl RunningVerifier {
    /// Stops both servers and the background tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.abort();
        }
    }

    /// Waits until the servers stop (for the binary).
    pub async fn wait(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in tasks {
            let _ = t.await;
        }
    }
}
