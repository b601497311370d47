//! The verifier's HTTP router: ForwardAuth (`forward_auth.rs`), the
//! well-known metadata (`prm.rs`), health (`health.rs`; `/metrics` has its own listener). The
//! gRPC side is `envoy.rs`; `app::verifier` serves both.

use super::forward_auth::{forward_auth_check_any, AUTH_PATH};
use super::verifier_state::VerifierState;
use super::{health, prm};
use axum::routing::{any, get};
use axum::Router;
use std::sync::Arc;

/// The verifier's HTTP routes: ForwardAuth, PRM, health (`/metrics` is on
/// its own listener: [`super::health::metrics_routes`]).
pub(crate) fn routes(state: Arc<VerifierState>) -> Router {
    Router::new()
        .route(AUTH_PATH, any(forward_auth_check_any))
        .route("/auth/{*rest}", any(forward_auth_check_any))
        .route("/healthz", get(health::health_live_get))
        .route("/readyz", get(health::health_ready_get))
        .with_state(state.clone())
        .merge(prm::routes(state))
}
