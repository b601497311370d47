//! State shared by the verifier's protocol adapters.

use crate::metrics::VerifierMetrics;
use crate::verify::authorizer::{Authorizer, Decision};
use crate::verify::decision::{Verdict, IDENTITY_SLOTS};
use crate::verify::request::AuthzRequest;
use crate::verify::resource_metadata::{AsMetadata, PrmDocs};
use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Which headers go upstream on an allow.
#[derive(Debug, Clone)]
pub struct HeaderPlan {
    /// Lower-case header names, in [`IDENTITY_SLOTS`] order.
    pub(crate) identity: [String; IDENTITY_SLOTS.len()],
    /// Remove `Authorization` before forwarding (MCP: no token passthrough).
    pub(crate) remove_authorization: bool,
    /// The same names, parsed once for the HTTP adapter.
    pub(crate) http_names: Vec<http::HeaderName>,
}

// === impl HeaderPlan ===

impl HeaderPlan {
    /// Names must be valid header names (checked by config validation);
    /// invalid ones are skipped by the HTTP adapter.
    pub(crate) fn new(
        identity: [String; IDENTITY_SLOTS.len()],
        remove_authorization: bool,
    ) -> Self {
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
    pub(crate) prm: PrmDocs,
    /// The authorization server's metadata at the resource origin.
    pub as_metadata: AsMetadata,
    pub trusted_proxies: Vec<IpNet>,
    /// Whether every issuer's keys are loaded (reported by /readyz).
    pub jwks_loaded: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Entries in the revocation mirror, if known.
    pub(crate) revocation_len: Arc<dyn Fn() -> Option<usize> + Send + Sync>,
    /// Share of allows logged at info (0 = none; denials always are).
    pub log_allow_sample: f64,
}

/// Log target of the per-decision lines.
pub(crate) const DECISION_TARGET: &str = "mcpgate::decision";

/// Correlation ids of one request, as the adapter found them (unchecked;
/// [`clean_id`] bounds them before they are logged).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestIds<'a> {
    /// `x-request-id`, else the proxy's own id (Envoy's `request.http.id`).
    pub request_id: Option<&'a str>,
    /// The W3C `traceparent` header.
    pub traceparent: Option<&'a str>,
}

/// `v` when it is a plausible id (1–128 visible ASCII characters); an
/// attacker-chosen header must not forge or flood log lines.
fn clean_id(v: Option<&str>) -> &str {
    v.filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("")
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn trace_id(tp: Option<&str>) -> &str {
    let Some(tp) = tp else { return "" };
    let mut parts = tp.split('-');
    match (parts.next(), parts.next()) {
        (Some(v), Some(id))
            if v.len() == 2
                && id.len() == 32
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && id.bytes().any(|b| b != b'0') =>
        {
            id
        }
        _ => "",
    }
}

/// The first 6 bytes of SHA-256(`jti`) in hex: joins log lines about one
/// token without revealing its id.
fn jti_hash(jti: &str) -> String {
    crate::verify::authorizer::hash(jti)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A header's value, when it is readable.
pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

// === impl VerifierState ===

impl VerifierState {
    pub(crate) fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        crate::domain::net::is_trusted_proxy(&self.trusted_proxies, ip)
    }

    /// The Host of the original request: `X-Forwarded-Host` /
    /// `X-Original-Host` from a trusted proxy, else `Host`.
    pub(crate) fn effective_host<'a>(&self, peer: SocketAddr, h: &'a HeaderMap) -> &'a str {
        if self.is_trusted_proxy(peer.ip()) {
            if let Some(v) =
                header_str(h, "x-forwarded-host").or_else(|| header_str(h, "x-original-host"))
            {
                return v.split(',').next().unwrap_or(v).trim();
            }
        }
        header_str(h, "host").unwrap_or("")
    }

    /// Counts a decision and logs it: one line on target
    /// [`DECISION_TARGET`], denials at info, allows at info for a
    /// `log_allow_sample` share of them and at debug otherwise. Nothing is
    /// computed for an allow that is not logged. Never logs the token or
    /// the query string. Host, path and route are the ones the decision
    /// was made on, as it names them.
    pub(crate) fn record(
        &self,
        protocol: &'static str,
        req: &AuthzRequest<'_>,
        ids: RequestIds<'_>,
        d: &Decision<'_>,
    ) {
        // With OTLP export, the decision is a span in the caller's trace.
        let span = crate::telemetry::remote_span("authz.decision", ids.traceparent, None);
        let _entered = span.enter();
        let info = match &d.verdict {
            Verdict::Allow(_) => {
                self.metrics.decision(protocol, true, "ok");
                let sampled = self.log_allow_sample > 0.0
                    && (self.log_allow_sample >= 1.0
                        || rand::random::<f64>() < self.log_allow_sample);
                if !sampled && !tracing::enabled!(target: DECISION_TARGET, tracing::Level::DEBUG) {
                    return;
                }
                sampled
            }
            Verdict::Deny(deny) => {
                self.metrics.decision(protocol, false, deny.reason.label());
                true
            }
        };
        let (host, path, route) = (&d.target.host, &d.target.path, d.target.route);
        let (decision, status, reason, token) = match &d.verdict {
            Verdict::Allow(t) => ("allow", 200, "ok", t.as_deref()),
            Verdict::Deny(deny) => (
                "deny",
                deny.status,
                deny.reason.label(),
                deny.identity.as_deref(),
            ),
        };
        let jti = token
            .map(|t| &*t.jti)
            .filter(|j| !j.is_empty())
            .map(jti_hash);
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    target: DECISION_TARGET,
                    $level,
                    request_id = clean_id(ids.request_id),
                    trace_id = trace_id(ids.traceparent),
                    protocol,
                    method = req.method,
                    host = host.as_deref().unwrap_or(""),
                    path = path.as_deref().unwrap_or(""),
                    route = route.map_or("", |r| r.path_prefix()),
                    resource = route.map_or("", |r| r.resource()),
                    decision,
                    status,
                    reason,
                    sub = token.map_or("", |t| t.sub.as_str()),
                    client_id = token.and_then(|t| t.client_id.as_deref()).unwrap_or(""),
                    jti_hash = jti.as_deref().unwrap_or(""),
                    "decision"
                )
            };
        }
        if info {
            line!(tracing::Level::INFO);
        } else {
            line!(tracing::Level::DEBUG);
        }
    }

    /// Revocation staleness in seconds, and whether past the bound.
    pub(crate) fn revocation_status(&self) -> (f64, bool) {
        match self.authorizer.revocation_stale_for() {
            None => (0.0, false),
            Some(age) => (
                age.as_secs_f64(),
                age >= self.authorizer.settings().revocation_staleness,
            ),
        }
    }
}
