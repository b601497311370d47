//! Prometheus metrics (prometheus-client): a registry helper shared by both
//! services (build info, the standard `process_*` families), and the
//! verifier's metric families.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of a counter with static label values.
pub(crate) type StaticLabels<const N: usize> = [(&'static str, &'static str); N];

/// A counter family keyed by static labels.
pub(crate) type StaticCounter<const N: usize> = Family<StaticLabels<N>, Counter>;

/// A gauge per issuer (label `issuer`).
pub(crate) type IssuerGauge = Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>;

/// A histogram family keyed by static labels, with fixed buckets.
pub(crate) type StaticHistogram<const N: usize> =
    Family<StaticLabels<N>, Histogram, fn() -> Histogram>;

/// Decision latency buckets (seconds): a cached Check takes tens of
/// microseconds, an uncached one up to a millisecond, one that waits on a
/// JWKS fetch up to the fetch timeout.
const DECISION_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
    2.5, 5.0,
];

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS)
}

/// A root registry holding the standard, unprefixed `process_*` families
/// ([`ProcessCollector`]); a service registers its own families in
/// `registry.sub_registry_with_prefix(..)`.
pub(crate) fn root_registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProcessCollector));
    registry
}

/// The process families every Prometheus client library exports
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`), read from `/proc/self` at each scrape by
/// the procfs crate (Linux only; elsewhere the families are absent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    #[cfg(target_os = "linux")]
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::registry::Unit;
        let Ok(me) = procfs::process::Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second().max(1) as f64;
            ConstCounter::new((stat.utime + stat.stime) as f64 / ticks).encode(
                encoder.encode_descriptor(
                    "process_cpu",
                    "Total user and system CPU time spent in seconds",
                    Some(&Unit::Seconds),
                    MetricType::Counter,
                )?,
            )?;
            const_gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(&Unit::Bytes),
                (stat.rss * procfs::page_size()) as f64,
            )?;
            const_gauge(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(&Unit::Bytes),
                stat.vsize as f64,
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                const_gauge(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since unix epoch in seconds",
                    Some(&Unit::Seconds),
                    boot as f64 + stat.starttime as f64 / ticks,
                )?;
            }
        }
        if let Ok(n) = me.fd_count() {
            const_gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                None,
                n as f64,
            )?;
        }
        if let Ok(l) = me.limits() {
            if let procfs::process::LimitValue::Value(n) = l.max_open_files.soft_limit {
                const_gauge(
                    &mut encoder,
                    "process_max_fds",
                    "Maximum number of open file descriptors",
                    None,
                    n as f64,
                )?;
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(
        &self,
        _encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

/// Encodes one gauge family with one sample.
#[cfg(target_os = "linux")]
fn const_gauge(
    encoder: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&prometheus_client::registry::Unit>,
    v: f64,
) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::EncodeMetric;
    let metric = prometheus_client::metrics::gauge::ConstGauge::new(v);
    metric.encode(encoder.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Gauge,
    )?)
}

/// Registers `<prefix>_build_info{version} 1`.
pub(crate) fn register_build_info(registry: &mut Registry) {
    registry.register(
        "build",
        "Build information (the value is always 1)",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
}

/// Renders a registry in the OpenMetrics text format.
pub(crate) fn render(registry: &Registry) -> String {
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
    pub(crate) jwks_fetches: StaticCounter<1>,
    /// `jwks_last_success_timestamp_seconds{issuer}`: when each issuer's
    /// keys last loaded (unix seconds).
    pub(crate) jwks_last_success: IssuerGauge,
    /// `decision_duration_seconds{protocol}`: from the request read to the
    /// decision made.
    pub(crate) decision_duration: StaticHistogram<1>,
    /// Seconds the revocation mirror has been out of touch (0 in sync).
    pub(crate) revocation_staleness: Gauge<f64, AtomicU64>,
    /// 1 while revocation data is past the staleness bound.
    pub(crate) revocation_stale: Gauge,
    /// Entries in the revocation mirror.
    pub(crate) revocation_set_size: Gauge,
    /// Seconds from a revocation's publication to its application here.
    pub(crate) revocation_propagation: Histogram,
    /// Mirrored revocations found missing from Redis on a resync (and
    /// written back).
    pub(crate) revocation_store_lost: Counter,
}

// === impl VerifierMetrics ===

impl VerifierMetrics {
    pub(crate) fn new() -> Self {
        let mut root = root_registry();
        let registry = root.sub_registry_with_prefix("mcpgate_verifier");
        register_build_info(registry);
        let decisions = StaticCounter::<3>::default();
        let jwks_fetches = StaticCounter::<1>::default();
        let jwks_last_success = IssuerGauge::default();
        let decision_duration = StaticHistogram::<1>::new_with_constructor(decision_histogram);
        registry.register(
            "jwks_last_success_timestamp_seconds",
            "When each issuer's signing keys last loaded (unix seconds)",
            jwks_last_success.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time to decide one request, by protocol",
            decision_duration.clone(),
        );
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
            registry: root,
            decisions,
            jwks_fetches,
            jwks_last_success,
            decision_duration,
            revocation_staleness,
            revocation_stale,
            revocation_set_size,
            revocation_propagation,
            revocation_store_lost,
        }
    }

    /// Observes how long one decision took.
    pub(crate) fn decision_took(&self, protocol: &'static str, took: std::time::Duration) {
        self.decision_duration
            .get_or_create(&[("protocol", protocol)])
            .observe(took.as_secs_f64());
    }

    /// Counts one decision; `reason` is `"ok"` for allows.
    pub(crate) fn decision(&self, protocol: &'static str, allowed: bool, reason: &'static str) {
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
