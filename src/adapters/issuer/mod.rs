//! The issuer's HTTP edge: `routes(state)` with every path taken from
//! [`crate::issue::metadata`]. Handlers decode, call the core, encode.

mod admin;
mod audit;
mod authorize;
pub(crate) mod cookies;
mod cors;
mod error;
mod html;
pub(crate) mod params;
mod register;
mod token;
mod well_known;

use crate::issue::metadata::*;
use crate::issue::service::Issuer;
use crate::metrics::StaticCounter;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use ipnet::IpNet;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The client's address: the peer, or the nearest untrusted hop of
/// `X-Forwarded-For` when the peer is a trusted proxy (a client cannot
/// choose its address otherwise).
pub(crate) fn client_ip(
    st: &IssuerState,
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
) -> std::net::IpAddr {
    let trusted =
        |ip: &std::net::IpAddr| crate::domain::net::is_trusted_proxy(&st.trusted_proxies, *ip);
    if !trusted(&peer) {
        return peer;
    }
    let hops: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted(ip))
        .unwrap_or(peer)
}

/// Shared state of the issuer's handlers.
pub(crate) struct IssuerState {
    pub core: Arc<Issuer>,
    pub metrics: IssuerMetrics,
    /// Proxies whose `X-Forwarded-For` is believed (registration rate limit).
    pub trusted_proxies: Vec<IpNet>,
}

/// Labels of `request_duration_seconds`: the matched route template
/// (never the raw path: bounded), the method (known ones, else `OTHER`)
/// and the status class.
type RequestLabels = [(&'static str, String); 3];

/// Request latency buckets (seconds): discovery and JWKS answer in tens of
/// microseconds, a token exchange in about a millisecond, a login's
/// password hash in tens of milliseconds, an upstream IdP round trip in
/// seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

fn request_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(REQUEST_BUCKETS)
}

/// The issuer's metrics.
#[derive(Debug)]
pub(crate) struct IssuerMetrics {
    /// The root registry (`process_*` and the `mcpgate_issuer_*` families).
    pub registry: Registry,
    /// `responses_total{endpoint, result}`: result is `ok` or an error code.
    pub responses: StaticCounter<2>,
    /// `request_duration_seconds{route, method, status}` of the public
    /// listener.
    pub requests: prometheus_client::metrics::family::Family<
        RequestLabels,
        prometheus_client::metrics::histogram::Histogram,
        fn() -> prometheus_client::metrics::histogram::Histogram,
    >,
}

// === impl IssuerMetrics ===

impl IssuerMetrics {
    pub(crate) fn new() -> Self {
        let mut root = crate::metrics::root_registry();
        let registry = root.sub_registry_with_prefix("mcpgate_issuer");
        crate::metrics::register_build_info(registry);
        let responses = StaticCounter::<2>::default();
        registry.register(
            "responses",
            "OAuth endpoint responses by endpoint and result (ok or the error code)",
            responses.clone(),
        );
        let requests = prometheus_client::metrics::family::Family::new_with_constructor(
            request_histogram as fn() -> _,
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer one request on the public listener, by route template, method and status class",
            requests.clone(),
        );
        Self {
            registry: root,
            responses,
            requests,
        }
    }

    /// Observes one request of the public listener.
    pub(crate) fn request_took(
        &self,
        route: &str,
        method: &axum::http::Method,
        status: axum::http::StatusCode,
        took: std::time::Duration,
    ) {
        use axum::http::Method;
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            Method::PATCH => "PATCH",
            _ => "OTHER",
        };
        let class = match status.as_u16() / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&[
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", class.to_owned()),
            ])
            .observe(took.as_secs_f64());
    }

    pub(crate) fn count(&self, endpoint: &'static str, result: &'static str) {
        self.responses
            .get_or_create(&[("endpoint", endpoint), ("result", result)])
            .inc();
    }
}

impl Default for IssuerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The internal listener's routes (`admin_listen`): the admin API and
/// Prometheus `/metrics`, at the root whatever the issuer's path, plus
/// `/healthz`. The public listener serves none of them.
pub(crate) fn admin_routes(state: Arc<IssuerState>) -> Router {
    Router::new()
        .route(HEALTHZ_PATH, get(well_known::health_live_get))
        .route(METRICS_PATH, get(well_known::health_metrics_get))
        .route(
            &format!("{ADMIN_PATH}/clients"),
            get(admin::admin_clients_get),
        )
        .route(
            &format!("{ADMIN_PATH}/clients/{{client_id}}"),
            axum::routing::delete(admin::admin_client_delete),
        )
        .route(
            &format!("{ADMIN_PATH}/revoke"),
            post(admin::admin_revoke_post),
        )
        .route(
            &format!("{ADMIN_PATH}/keys/rotate"),
            post(admin::admin_keys_rotate_post),
        )
        .with_state(state)
}

/// Observes each public request's latency under its route template
/// (`MatchedPath`, so a client cannot mint label values; `unmatched` for
/// the 404 fallback).
async fn request_metrics(
    State(st): State<Arc<IssuerState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // With OTLP export, each request is a span in the caller's trace.
    let span = {
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
        crate::telemetry::remote_span(
            "issuer.request",
            header("traceparent"),
            header("tracestate"),
        )
    };
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let resp = next.run(req).instrument(span).await;
    st.metrics.request_took(
        route.as_deref().unwrap_or("unmatched"),
        &method,
        resp.status(),
        started.elapsed(),
    );
    resp
}

/// The public issuer routes (OAuth, login, discovery, health). When the issuer URL has a path (`https://h/tenant`),
/// endpoints live under it and the RFC 8414 path-suffixed well-known forms
/// are served at the root too.
pub(crate) fn routes(state: Arc<IssuerState>) -> Router {
    let prefix = issuer_path(&state.core.settings().issuer);
    // What browser-based clients call with fetch(): CORS without
    // credentials (none of these endpoints reads cookies).
    let api = Router::new()
        .route(
            OAUTH_METADATA_PATH,
            get(well_known::well_known_metadata_get),
        )
        .route(OIDC_METADATA_PATH, get(well_known::well_known_metadata_get))
        .route(JWKS_PATH, get(well_known::well_known_jwks_get))
        .route(WELL_KNOWN_JWKS_PATH, get(well_known::well_known_jwks_get))
        .route(REGISTER_PATH, post(register::register_create_post))
        .route(
            &format!("{REGISTER_PATH}/{{client_id}}"),
            get(register::register_read_get)
                .put(register::register_update_put)
                .delete(register::register_delete_delete),
        )
        .route(TOKEN_PATH, post(token::token_exchange_post))
        .route(REVOKE_PATH, post(token::token_revoke_post))
        .route(INTROSPECT_PATH, post(token::token_introspect_post))
        .layer(axum::middleware::from_fn(cors::cors_layer));
    // The browser leg and the admin API: same-origin only.
    let oauth = Router::new()
        .merge(api)
        .route(AUTHORIZE_PATH, get(authorize::authorize_start_get))
        .route(
            LOGIN_PATH,
            get(authorize::authorize_login_get).post(authorize::authorize_login_post),
        )
        .route(
            &format!("{CALLBACK_PATH}/{{provider}}"),
            get(authorize::authorize_callback_get),
        )
        .route(
            CONSENT_PATH,
            get(authorize::authorize_consent_get).post(authorize::authorize_consent_post),
        )
        .route(
            LOGOUT_PATH,
            get(authorize::authorize_logout_get).post(authorize::authorize_logout_post),
        );
    let mut app = Router::new()
        .route(HEALTHZ_PATH, get(well_known::health_live_get))
        .route(READYZ_PATH, get(well_known::health_ready_get));
    if prefix.is_empty() {
        app = app.merge(oauth);
    } else {
        app = app
            .route(
                &format!("{OAUTH_METADATA_PATH}{prefix}"),
                get(well_known::well_known_metadata_get),
            )
            .route(
                &format!("{OIDC_METADATA_PATH}{prefix}"),
                get(well_known::well_known_metadata_get),
            )
            .nest(&prefix, oauth);
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        request_metrics,
    ))
    .with_state(state)
}
