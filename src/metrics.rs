//! Prometheus metrics (prometheus-client): a registry helper shared by both
//! services, and the verifier's metric families.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of a counter with static label values.
pub type StaticLabels<const N: usize> = [(&'static str, &'static str); N];

/// A counter family keyed by static labels.
pub type StaticCounter<const N: usize> = Family<StaticLabels<N>, Counter>;

/// Renders a registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// The verifier's metrics.
#[derive(Debug)]
pub struct VerifierMetrics {
    pub registry: Registry,
    /// `decisions_total{protocol, decision, reason}`.
    pub decisions: StaticCounter<3>,
    /// `jwks_fetches_total{result}`.
    pub jwks_fetches: StaticCounter<1>,
    /// Seconds the revocation mirror has been out of touch (0 in sync).
    pub revocation_staleness: Gauge<f64, AtomicU64>,
    /// 1 while revocation data is past the staleness bound.
    pub revocation_stale: Gauge,
    /// Entries in the revocation mirror.
    pub revocation_set_size: Gauge,
    /// Seconds from a revocation's publication to its application here.
    pub revocation_propagation: Histogram,
    /// Mirrored revocations found missing from Redis on a resync (and
    /// written back).
    pub revocation_store_lost: Counter,
}

// === impl VerifierMetrics ===

impl VerifierMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcpgate_verifier");
        let decisions = StaticCounter::<3>::default();
        let jwks_fetches = StaticCounter::<1>::default();
        let revocation_staleness = Gauge::<f64, AtomicU64>::default();
        let revocation_stale = Gauge::default();
        let revocation_set_size = Gauge::default();
        let revocation_propagation = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        registry.register(
            "decisions",
            "Authorization decisions by protocol and reason",
            decisions.clone(),
        );
        registry.register(
            "jwks_fetches",
            "JWKS fetches by result",
            jwks_fetches.clone(),
        );
        registry.register(
            "revocation_staleness_seconds",
            "Seconds since the revocation mirror last confirmed contact with Redis (0 when in sync)",
            revocation_staleness.clone(),
        );
        registry.register(
            "revocation_stale",
            "1 while revocation data is older than the staleness bound (routes fail closed)",
            revocation_stale.clone(),
        );
        registry.register(
            "revocation_set_size",
            "Entries in the revocation mirror",
            revocation_set_size.clone(),
        );
        let revocation_store_lost = Counter::default();
        registry.register(
            "revocation_store_lost_entries",
            "Mirrored revocations that Redis no longer held on a resync (written back from the mirror)",
            revocation_store_lost.clone(),
        );
        registry.register(
            "revocation_propagation_seconds",
            "Seconds from a revocation's publication by the issuer to its application in this verifier",
            revocation_propagation.clone(),
        );
        Self {
            registry,
            decisions,
            jwks_fetches,
            revocation_staleness,
            revocation_stale,
            revocation_set_size,
            revocation_propagation,
            revocation_store_lost,
        }
    }

    /// Counts one decision; `reason` is `"ok"` for allows.
    pub fn decision(&self, protocol: &'static str, allowed: bool, reason: &'static str) {
        let d = if allowed { "allow" } else { "deny" };
        self.decisions
            .get_or_create(&[("protocol", protocol), ("decision", d), ("reason", reason)])
            .inc();
    }
}

impl Default for VerifierMetrics {
    fn default() -> Self {
        Self::new()
    }
}
