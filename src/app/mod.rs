//! Composition roots shared by the binaries and the tests.
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
