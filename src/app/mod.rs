//! Composition roots shared by the binaries and the tests, and what every
//! server start shares: [`StartError`], [`shutdown_signal`], [`EXIT_CONFIG`].

/// Exit code for a configuration the servers (and the CLI) refuse: sysexits
/// `EX_USAGE`.
pub const EXIT_CONFIG: u8 = 64;

/// Why a server did not start.
#[cfg(any(feature = "issuer", feature = "verifier"))]
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
    #[error("{0}")]
    Setup(String),
}

/// Resolves on Ctrl-C, or SIGTERM on Unix (what Kubernetes and systemd
/// send): the signal to drain and stop. When SIGTERM cannot be watched,
/// Ctrl-C alone.
#[cfg(any(feature = "issuer", feature = "verifier"))]
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
#[cfg(feature = "issuer")]
pub mod issuer;
#[cfg(feature = "verifier")]
pub mod verifier;

#[cfg(any(feature = "issuer", feature = "verifier"))]
mod serve {
    use std::net::SocketAddr;
    use tokio::sync::watch;

    /// Resolves once the shutdown watch says `true` (or its sender is gone).
    pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Serves `router` (with the peer address available to handlers) until
    /// `stop`, then drains; `what` names the server in the error log.
    pub(crate) async fn serve_router(
        router: axum::Router,
        listener: tokio::net::TcpListener,
        stop: watch::Receiver<bool>,
        what: &'static str,
    ) {
        let svc = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, svc)
            .with_graceful_shutdown(stopped(stop))
            .await
        {
            tracing::error!(error = %e, "{what} HTTP server failed");
        }
    }
}
#[cfg(any(feature = "issuer", feature = "verifier"))]
pub(crate) use serve::serve_router;
#[cfg(feature = "verifier")]
pub(crate) use serve::stopped;
