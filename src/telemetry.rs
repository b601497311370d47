//! Logging and tracing: JSON logs on stdout (`MCPGW_LOG_FORMAT=text` for
//! humans), level from `RUST_LOG` (default `info`), and OTLP trace export
//! when built with feature `otlp` and `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Environment variable choosing the log format (`json` or `text`).
pub(crate) const ENV_LOG_FORMAT: &str = "MCPGW_LOG_FORMAT";

/// Set once an OTLP exporter is installed: spans are only made for export.
#[cfg(feature = "otlp")]
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A span for one incoming request or decision, continuing the caller's
/// W3C trace (`traceparent`, `tracestate`) so the exported span is a child
/// of the proxy's or client's span. Without OTLP export (feature `otlp`
/// off, or no `OTEL_EXPORTER_OTLP_ENDPOINT`) it is [`tracing::Span::none`]
/// and costs nothing. The decision log line carries the `trace_id` either
/// way.
pub(crate) fn remote_span(
    name: &'static str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> tracing::Span {
    #[cfg(feature = "otlp")]
    if EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        return continued_span(name, traceparent, tracestate);
    }
    let _ = (name, traceparent, tracestate);
    tracing::Span::none()
}

/// A span named `name` whose OpenTelemetry parent is the W3C context of
/// `traceparent` / `tracestate` (a malformed or absent one starts a new
/// trace), parsed by the SDK's own propagator.
#[cfg(feature = "otlp")]
pub(crate) fn continued_span(
    name: &'static str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> tracing::Span {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut carrier = std::collections::HashMap::new();
    if let Some(tp) = traceparent {
        carrier.insert("traceparent".to_owned(), tp.to_owned());
    }
    if let Some(ts) = tracestate {
        carrier.insert("tracestate".to_owned(), ts.to_owned());
    }
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let span = tracing::info_span!("request", otel.name = name);
    let _ = span.set_parent(parent);
    span
}

/// Flushes pending traces when dropped; keep it alive in `main`.
#[must_use = "dropping the guard stops trace export"]
#[derive(Default)]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TelemetryGuard")
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber. Safe to call more than once (later calls
/// are no-ops), so tests may call it freely.
pub fn init(service_name: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var(ENV_LOG_FORMAT).is_ok_and(|v| v.eq_ignore_ascii_case("text"));
    let fmt = if text {
        tracing_subscriber::fmt::layer().with_target(false).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .boxed()
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otlp")]
    {
        let provider = otlp_provider(service_name);
        let layer = provider.as_ref().map(|p| {
            use opentelemetry::trace::TracerProvider as _;
            tracing_opentelemetry::layer().with_tracer(p.tracer(service_name.to_owned()))
        });
        let exporting = layer.is_some();
        if registry.with(layer).try_init().is_ok() && exporting {
            EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        TelemetryGuard { provider }
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = service_name;
        let _ = registry.try_init();
        TelemetryGuard::default()
    }
}

#[cfg(feature = "otlp")]
fn otlp_provider(service_name: &str) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and friends) itself.
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| eprintln!("OTLP exporter disabled: {e}"))
        .ok()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Some(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn without_export_no_span_is_made() {
        assert!(remote_span("x", Some(TRACE), None).is_none());
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn a_span_continues_the_callers_w3c_trace() {
        use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let sub = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(sub, || {
            let span = continued_span("authz.decision", Some(TRACE), Some("vendor=x"));
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            assert_eq!(
                sc.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(
                sc.span_id().to_string(),
                "00f067aa0ba902b7",
                "a child, not the caller's span"
            );
            assert!(sc.is_sampled());
            // A malformed, zero, or absent traceparent starts a new trace.
            for bad in [
                Some("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
                Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                Some("zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01x"),
                None,
            ] {
                let span = continued_span("authz.decision", bad, None);
                let cx = span.context();
                let sc = cx.span().span_context().clone();
                assert!(sc.is_valid(), "{bad:?}");
                assert_ne!(
                    sc.trace_id().to_string(),
                    "4bf92f3577b34da6a3ce929d0e0e4736",
                    "{bad:?}"
                );
            }
        });
    }
}
