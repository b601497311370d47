//! Logging and tracing: JSON logs on stdout (`MCPGW_LOG_FORMAT=text` for
//! humans), level from `RUST_LOG` (default `info`), and OTLP trace export
//! when built with feature `otlp` and `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Environment variable choosing the log format (`json` or `text`).
pub const ENV_LOG_FORMAT: &str = "MCPGW_LOG_FORMAT";

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
        let _ = registry.with(layer).try_init();
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
