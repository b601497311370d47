//! The issuer's HTTP edge: `routes(state)` with every path taken from
//! [`crate::issue::metadata`]. Handlers decode, call the core, encode.

mod admin;
mod authorize;
pub mod cookies;
mod cors;
mod error;
mod html;
pub mod params;
mod register;
mod token;
mod well_known;

use crate::issue::metadata::*;
use crate::issue::service::Issuer;
use crate::metrics::StaticCounter;
use axum::routing::{get, post};
use axum::Router;
use ipnet::IpNet;
use prometheus_client::registry::Registry;
use std::sync::Arc;

pub use error::oauth_error_response;

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
pub struct IssuerState {
    pub core: Arc<Issuer>,
    pub metrics: IssuerMetrics,
    /// Proxies whose `X-Forwarded-For` is believed (registration rate limit).
    pub trusted_proxies: Vec<IpNet>,
}

/// The issuer's metrics.
#[derive(Debug)]
pub struct IssuerMetrics {
    pub registry: Registry,
    /// `responses_total{endpoint, result}`: result is `ok` or an error code.
    pub responses: StaticCounter<2>,
}

// === impl IssuerMetrics ===

impl IssuerMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcpgate_issuer");
        crate::metrics::register_build_info(&mut registry);
        let responses = StaticCounter::<2>::default();
        registry.register(
            "responses",
            "OAuth endpoint responses by endpoint and result (ok or the error code)",
            responses.clone(),
        );
        Self {
            registry,
            responses,
        }
    }

    pub fn count(&self, endpoint: &'static str, result: &'static str) {
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

/// All issuer routes. When the issuer URL has a path (`https://h/tenant`),
/// endpoints live under it and the RFC 8414 path-suffixed well-known forms
/// are served at the root too.
pub fn routes(state: Arc<IssuerState>) -> Router {
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
        )
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
        );
    let mut app = Router::new()
        .route(HEALTHZ_PATH, get(well_known::health_live_get))
        .route(READYZ_PATH, get(well_known::health_ready_get))
        .route(METRICS_PATH, get(well_known::health_metrics_get));
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
    app.with_state(state)
}
