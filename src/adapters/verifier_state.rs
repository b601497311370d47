//! State shared by the verifier's protocol adapters.

use crate::metrics::VerifierMetrics;
use crate::verify::authorizer::Authorizer;
use crate::verify::decision::{Decision, IDENTITY_SLOTS};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

/// Which headers go upstream on an allow.
#[derive(Debug, Clone)]
pub struct HeaderPlan {
    /// Lower-case header names, in [`IDENTITY_SLOTS`] order.
    pub identity: [String; IDENTITY_SLOTS.len()],
    /// Remove `Authorization` before forwarding (MCP: no token passthrough).
    pub remove_authorization: bool,
    /// The same names, parsed once for the HTTP adapter.
    pub http_names: Vec<http::HeaderName>,
}

// === impl HeaderPlan ===

impl HeaderPlan {
    /// Names must be valid header names (checked by config validation);
    /// invalid ones are skipped by the HTTP adapter.
    pub fn new(identity: [String; IDENTITY_SLOTS.len()], remove_authorization: bool) -> Self {
        let http_names = identity
            .iter()
            .map(|n| {
                http::HeaderName::from_bytes(n.as_bytes())
                    .unwrap_or(http::HeaderName::from_static("x-invalid-header-name"))
            })
            .collect();
        Self {
            identity,
            remove_authorization,
            http_names,
        }
    }
}

/// Everything the adapters need, built by `app::verifier`.
pub struct VerifierState {
    pub authorizer: Authorizer,
    pub headers: HeaderPlan,
    pub metrics: Arc<VerifierMetrics>,
    pub prm: super::prm::PrmDocs,
    /// The authorization server's metadata at the resource origin.
    pub as_metadata: super::prm::AsMetadata,
    pub trusted_proxies: Vec<IpNet>,
    /// Whether every issuer's keys are loaded (reported by /readyz).
    pub jwks_loaded: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Entries in the revocation mirror, if known.
    pub revocation_len: Arc<dyn Fn() -> Option<usize> + Send + Sync>,
}

// === impl VerifierState ===

impl VerifierState {
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// Counts and (at debug) logs a decision.
    pub fn record(&self, protocol: &'static str, d: &Decision) {
        match d {
            Decision::Allow(_) => self.metrics.decision(protocol, true, "ok"),
            Decision::Deny(deny) => {
                self.metrics.decision(protocol, false, deny.reason.label());
                tracing::debug!(protocol, status = deny.status, reason = %deny.reason, "denied");
            }
        }
    }

    /// Revocation staleness in seconds, and whether past the bound.
    pub fn revocation_status(&self) -> (f64, bool) {
        match self.authorizer.revocation_stale_for() {
            None => (0.0, false),
            Some(age) => (
                age.as_secs_f64(),
                age >= self.authorizer.settings.revocation_staleness,
            ),
        }
    }
}
