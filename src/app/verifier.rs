//! The verifier's composition root: config + injectable dependencies →
//! HTTP (ForwardAuth, PRM, health), gRPC (ext_authz, health) and, on a
//! listener of its own, Prometheus `/metrics`.

use crate::adapters::envoy::EnvoyAuthz;
use crate::adapters::verifier_state::{HeaderPlan, VerifierState};
use crate::config::verifier::AsMetadataMode;
use crate::config::verifier::VerifierConfig;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::revocation::RevocationView;
use crate::infra::jwks::{HttpJwksFetcher, JwksCache, JwksFetcher};
use crate::infra::revocation::{LocalRevocations, MirrorSettings, RedisRevocationMirror};
use crate::infra::token_cache;
use crate::metrics::VerifierMetrics;
use crate::verify::authorizer::Authorizer;
use crate::verify::policy::Routes;
use crate::verify::resource_metadata::{AsDocKind, AsMetadata, PrmDocs};
use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic_health::pb::health_server::{Health, HealthServer};

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

pub use super::StartError;

/// The built application, not yet listening.
pub struct VerifierApp {
    pub state: Arc<VerifierState>,
    jwks: Arc<JwksCache>,
    fetcher: Arc<dyn JwksFetcher>,
    config: VerifierConfig,
}

/// A running verifier.
pub struct RunningVerifier {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` (not on `http_addr`).
    pub metrics_addr: SocketAddr,
    pub state: Arc<VerifierState>,
    shutdown: watch::Sender<bool>,
    /// How long [`RunningVerifier::shutdown`] lets requests in flight finish.
    grace: Duration,
    /// Closed once every server (on this runtime and on the serving
    /// threads) has drained: each holds a sender until it returns.
    drained: mpsc::Receiver<()>,
    /// The servers on this runtime.
    servers: Vec<JoinHandle<()>>,
    /// Background work (JWKS, metadata, health), stopped after the drain.
    tasks: Vec<JoinHandle<()>>,
}

/// Builds the state (spawns the revocation mirror if configured; needs a
/// Tokio runtime).
pub fn build(mut config: VerifierConfig, deps: VerifierDeps) -> Result<VerifierApp, StartError> {
    let clock = deps.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let metrics = Arc::new(VerifierMetrics::new());
    let fetcher: Arc<dyn JwksFetcher> = match deps.jwks_fetcher {
        Some(f) => f,
        None => Arc::new(
            HttpJwksFetcher::new(config.jwks_timeout, JWKS_MAX_BYTES).map_err(StartError::Setup)?,
        ),
    };
    let issuers = config.authorizer.jwt.issuers.iter();
    let jwks = Arc::new(JwksCache::new(
        issuers
            .map(|i| (i.clone(), config.jwks_uri.clone()))
            .collect(),
        fetcher.clone(),
        config.jwks.clone(),
        crate::infra::jwks::JwksStats {
            fetches: metrics.jwks_fetches.clone(),
            last_success: metrics.jwks_last_success.clone(),
        },
    ));
    let max_token_lifetime = Duration::from_secs(config.authorizer.jwt.max_token_lifetime_secs);
    let (revocations, revocation_len): (Arc<dyn RevocationView>, LenFn) = match deps.revocations {
        Some(r) => (r, Arc::new(|| None)),
        None if !config.redis_urls.is_empty() => {
            let mut settings = MirrorSettings::new(config.redis_urls.clone(), max_token_lifetime);
            settings.propagation = Some(metrics.revocation_propagation.clone());
            settings.lost = Some(metrics.revocation_store_lost.clone());
            let m = Arc::new(RedisRevocationMirror::spawn(settings, clock.clone()));
            let m2 = m.clone();
            (m, Arc::new(move || Some(m2.len())))
        }
        None => {
            let l = Arc::new(LocalRevocations::new(clock.clone(), max_token_lifetime));
            let l2 = l.clone();
            (l, Arc::new(move || Some(l2.len())))
        }
    };
    let authorizer = Authorizer::new(
        config.authorizer.clone(),
        Routes::new(std::mem::take(&mut config.routes)),
        jwks.clone(),
        token_cache::for_capacity(config.token_cache_capacity, TOKEN_CACHE_TTL),
        revocations,
        clock,
    );
    let j2 = jwks.clone();
    let state = Arc::new(VerifierState {
        authorizer,
        headers: HeaderPlan::new(
            config.identity_headers.clone(),
            !config.forward_authorization,
        ),
        metrics,
        prm: PrmDocs::new(&config.prm),
        as_metadata: AsMetadata::new(
            (config.as_metadata != AsMetadataMode::Off)
                .then(|| config.authorization_servers.first().cloned())
                .flatten(),
            config.as_metadata == AsMetadataMode::Serve,
        ),
        trusted_proxies: config.trusted_proxies.clone(),
        jwks_loaded: Arc::new(move || j2.all_loaded()),
        revocation_len,
        log_allow_sample: config.log_allow_sample,
    });
    Ok(VerifierApp {
        state,
        jwks,
        fetcher,
        config,
    })
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
    /// Serves on the current runtime.
    pub async fn serve(self) -> Result<RunningVerifier, StartError> {
        self.serve_on(1).await
    }

    /// Serves on the current runtime and, when `threads` > 1, on
    /// `threads - 1` more threads, each with a single-threaded runtime and
    /// its own SO_REUSEPORT listeners on the same addresses: the kernel
    /// spreads connections over them, and each thread batches its
    /// connections' responses (see BENCHMARKS.md). Background work (JWKS
    /// refresh, revocation mirror) stays on the current runtime.
    pub async fn serve_on(self, threads: usize) -> Result<RunningVerifier, StartError> {
        let threads = if cfg!(unix) { threads.max(1) } else { 1 };
        let shared = threads > 1;
        let (http_at, grpc_at) = if shared {
            // SO_REUSEPORT would let us join a group someone else (another
            // verifier of the same user) already holds: first take each
            // address alone, which fails if anything listens there, then
            // share it among our own threads only.
            (probe(self.config.http_addr)?, probe(self.config.grpc_addr)?)
        } else {
            (self.config.http_addr, self.config.grpc_addr)
        };
        let http = bind(http_at, shared)?;
        let grpc = bind(grpc_at, shared)?;
        let http_addr = http
            .local_addr()
            .map_err(|e| StartError::Bind(self.config.http_addr, e))?;
        let grpc_addr = grpc
            .local_addr()
            .map_err(|e| StartError::Bind(self.config.grpc_addr, e))?;
        // One metrics listener, on this runtime, whatever `threads` is.
        let metrics = bind(self.config.metrics_addr, false)?;
        let metrics_addr = metrics
            .local_addr()
            .map_err(|e| StartError::Bind(self.config.metrics_addr, e))?;
        // Every listener is bound before anything serves: a bind error
        // fails the start.
        let mut extra = Vec::new();
        for _ in 1..threads {
            let h = bind(http_addr, true)?;
            let g = bind(grpc_addr, true)?;
            extra.push((into_std(h, http_addr)?, into_std(g, grpc_addr)?));
        }
        let (tx, rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // Warm the JWKS cache in the background, then keep it fresh.
        let jwks = self.jwks.clone();
        tasks.push(tokio::spawn(async move { jwks.refresh_all().await }));
        tasks.push(self.jwks.spawn_refresher());
        if self.state.as_metadata.serve_copy() {
            tasks.push(spawn_as_metadata_refresher(
                self.state.clone(),
                self.fetcher.clone(),
                self.config.jwks.refresh_interval,
            ));
        }

        let (reporter, health) = tonic_health::server::health_reporter();
        let (done, drained) = mpsc::channel::<()>(1);
        let (d1, d2, d3) = (done.clone(), done.clone(), done.clone());
        let (st1, st2, st3, rx1, rx2, rx3) = (
            self.state.clone(),
            self.state.clone(),
            self.state.clone(),
            rx.clone(),
            rx.clone(),
            rx.clone(),
        );
        let h1 = health.clone();
        let servers = vec![
            tokio::spawn(async move {
                serve_http(st1, http, rx1).await;
                drop(d1);
            }),
            tokio::spawn(async move {
                serve_grpc(st2, grpc, h1, rx2).await;
                drop(d2);
            }),
            tokio::spawn(async move {
                let router = crate::adapters::health::metrics_routes(st3);
                super::serve_router(router, metrics, rx3, "verifier metrics").await;
                drop(d3);
            }),
        ];
        for (i, (h, g)) in extra.into_iter().enumerate() {
            let (state, health, rx) = (self.state.clone(), health.clone(), rx.clone());
            let done = done.clone();
            std::thread::Builder::new()
                .name(format!("verifier-{}", i + 1))
                .spawn(move || {
                    serve_thread(state, h, g, health, rx);
                    drop(done);
                })
                .map_err(|e| StartError::Setup(format!("cannot start a serving thread: {e}")))?;
        }
        drop(done);

        // gRPC health follows readiness: revocation freshness and keys.
        let st = self.state.clone();
        tasks.push(tokio::spawn(async move {
            let name = "envoy.service.auth.v3.Authorization";
            let mut last = None;
            loop {
                let (_, stale) = st.revocation_status();
                let stale = stale || !(st.jwks_loaded)();
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

        tracing::info!(http = %http_addr, grpc = %grpc_addr, metrics = %metrics_addr, threads, "listening");
        Ok(RunningVerifier {
            http_addr,
            grpc_addr,
            metrics_addr,
            state: self.state,
            shutdown: tx,
            grace: self.config.shutdown_grace,
            drained,
            servers,
            tasks,
        })
    }
}

/// Binds `addr` without SO_REUSEPORT (so it fails while anything listens
/// there, shared or not) and releases it; returns the address bound (the
/// port chosen for port 0).
fn probe(addr: SocketAddr) -> Result<SocketAddr, StartError> {
    let l = bind(addr, false)?;
    l.local_addr().map_err(|e| StartError::Bind(addr, e))
}

/// Keeps the copy of the authorization server's metadata served at the
/// resource origin fresh: fetched now, then every `period` (a failed fetch
/// keeps the last copy; without one the verifier redirects).
fn spawn_as_metadata_refresher(
    state: Arc<VerifierState>,
    fetcher: Arc<dyn JwksFetcher>,
    period: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(issuer) = state.as_metadata.issuer().map(str::to_owned) else {
            return;
        };
        loop {
            let mut stored = false;
            for kind in [AsDocKind::OAuth, AsDocKind::Oidc] {
                let Some(url) = kind.url_for(&issuer) else {
                    continue;
                };
                match fetcher.get(&url).await {
                    Ok(body) if state.as_metadata.store(kind, &body) => stored = true,
                    Ok(_) => {
                        tracing::warn!(%url, "authorization server metadata names another issuer or is not JSON")
                    }
                    Err(e) => {
                        tracing::debug!(%url, error = %e, "authorization server metadata fetch failed")
                    }
                }
            }
            // Until a first copy arrives (the issuer may start later), retry
            // soon; the verifier redirects meanwhile.
            let wait = if stored || state.as_metadata.has_copy() {
                period
            } else {
                period.min(Duration::from_secs(2))
            };
            tokio::time::sleep(wait).await;
        }
    })
}

/// A listener on `addr`; `shared`: SO_REUSEPORT, so that several threads
/// can each have one on the same address.
fn bind(addr: SocketAddr, shared: bool) -> Result<tokio::net::TcpListener, StartError> {
    let err = |e| StartError::Bind(addr, e);
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    #[cfg(unix)]
    if shared {
        socket.set_reuseport(true).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = shared;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

fn into_std(
    l: tokio::net::TcpListener,
    addr: SocketAddr,
) -> Result<std::net::TcpListener, StartError> {
    l.into_std().map_err(|e| StartError::Bind(addr, e))
}

async fn serve_grpc<H: Health>(
    state: Arc<VerifierState>,
    listener: tokio::net::TcpListener,
    health: HealthServer<H>,
    stop: watch::Receiver<bool>,
) {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(AuthorizationServer::new(EnvoyAuthz(state)))
        .serve_with_incoming_shutdown(incoming, super::stopped(stop))
        .await
    {
        tracing::error!(error = %e, "verifier gRPC server failed");
    }
}

async fn serve_http(
    state: Arc<VerifierState>,
    listener: tokio::net::TcpListener,
    stop: watch::Receiver<bool>,
) {
    let router = crate::adapters::router::routes(state);
    super::serve_router(router, listener, stop, "verifier").await;
}

/// One more serving thread: its own single-threaded runtime and listeners.
fn serve_thread<H: Health>(
    state: Arc<VerifierState>,
    http: std::net::TcpListener,
    grpc: std::net::TcpListener,
    health: HealthServer<H>,
    stop: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a serving thread's runtime");
            return;
        }
    };
    rt.block_on(async move {
        let (http, grpc) = match (
            tokio::net::TcpListener::from_std(http),
            tokio::net::TcpListener::from_std(grpc),
        ) {
            (Ok(h), Ok(g)) => (h, g),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "serving thread cannot use its listeners");
                return;
            }
        };
        tokio::join!(
            serve_http(state.clone(), http, stop.clone()),
            serve_grpc(state, grpc, health, stop)
        );
    });
}

// === impl RunningVerifier ===

impl RunningVerifier {
    /// Graceful stop: every listener (on every serving thread) closes at
    /// once, so new connections are refused; the Checks and requests in
    /// flight finish (idle and HTTP/2 connections are told to go away) for
    /// up to `shutdown_grace_secs`. Then the background tasks stop. Past
    /// the bound the servers on this runtime are abandoned; what is left on
    /// the serving threads ends with the process.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(self.grace, async {
            // `None` once every server has returned and dropped its sender.
            while self.drained.recv().await.is_some() {}
        })
        .await
        .is_ok();
        if drained {
            tracing::info!("drained: every request in flight finished");
        } else {
            tracing::warn!(
                grace_secs = self.grace.as_secs_f64(),
                "shutdown grace elapsed with requests still in flight; cutting them"
            );
        }
        for t in self.servers.drain(..).chain(self.tasks.drain(..)) {
            t.abort();
        }
    }

    /// Waits until the servers stop (for the binary).
    pub async fn wait(mut self) {
        let tasks = std::mem::take(&mut self.servers);
        for t in tasks {
            let _ = t.await;
        }
    }
}
