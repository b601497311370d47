//! `/healthz` (process alive), `/readyz` (able to decide: revocation data
//! fresh) and Prometheus `/metrics` (on the metrics listener only).

use super::verifier_state::VerifierState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `GET /healthz`.
pub(crate) async fn health_live_get() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 503 with a reason while revocation data is stale.
pub(crate) async fn health_ready_get(State(st): State<Arc<VerifierState>>) -> Response {
    let (age, stale) = st.revocation_status();
    let jwks = (st.jwks_loaded)();
    // A mirror that never synced reports `Duration::MAX`.
    let never = age >= std::time::Duration::MAX.as_secs_f64();
    let body = if stale && never {
        serde_json::json!({"status": "not_ready", "reason": "revocation data never synced", "jwks_loaded": jwks})
    } else if stale {
        serde_json::json!({"status": "not_ready", "reason": format!("revocation data stale for {age:.1}s"), "jwks_loaded": jwks})
    } else if !jwks {
        // Without keys every valid token would be refused: not ready.
        serde_json::json!({"status": "not_ready", "reason": "signing keys not loaded yet for every issuer", "jwks_loaded": false})
    } else {
        serde_json::json!({"status": "ready", "jwks_loaded": jwks})
    };
    let code = if stale || !jwks {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The metrics listener's routes (`metrics_addr`): `/metrics` and
/// `/healthz`. The proxy-facing listener serves no `/metrics`.
pub(crate) fn metrics_routes(state: Arc<VerifierState>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/metrics", get(health_metrics_get))
        .route("/healthz", get(health_live_get))
        .with_state(state)
}

/// `GET /metrics`.
pub(crate) async fn health_metrics_get(State(st): State<Arc<VerifierState>>) -> Response {
    let (age, stale) = st.revocation_status();
    st.metrics.revocation_staleness.set(age);
    st.metrics.revocation_stale.set(i64::from(stale));
    if let Some(n) = (st.revocation_len)() {
        st.metrics.revocation_set_size.set(n as i64);
    }
    let body = crate::metrics::render(&st.metrics.registry);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
