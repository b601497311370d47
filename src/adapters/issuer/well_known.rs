//! Discovery (RFC 8414 / OIDC), JWKS, health and metrics.

use super::IssuerState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

type St = State<Arc<IssuerState>>;

fn cacheable(mut r: Response, secs: u32) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={secs}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

/// `GET /.well-known/oauth-authorization-server` and
/// `/.well-known/openid-configuration` (and their path-suffixed forms).
pub(super) async fn well_known_metadata_get(State(st): St) -> Response {
    cacheable(Json(st.core.server_metadata()).into_response(), 300)
}

/// `GET /jwks` and `/.well-known/jwks.json`.
pub(super) async fn well_known_jwks_get(State(st): St) -> Response {
    let mut r = cacheable(Json(st.core.jwks()).into_response(), 60);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    r
}

/// `GET /healthz`.
pub(super) async fn health_live_get() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 503 while the store or the revocation sink does not
/// answer (a revocation could not be acknowledged).
pub(super) async fn health_ready_get(State(st): St) -> Response {
    let not_ready = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": reason})),
        )
            .into_response()
    };
    if let Some(reason) = st.core.not_ready().await {
        return not_ready(reason);
    }
    Json(serde_json::json!({"status": "ready"})).into_response()
}

/// `GET /metrics`.
pub(super) async fn health_metrics_get(State(st): St) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(&st.metrics.registry),
    )
        .into_response()
}
