//! The one place where Ampel's binaries set up logs, traces and metrics, and flush them on exit.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let telemetry = ampel_telemetry::init("ampel-api")?;
//! // ... serve until `ampel_telemetry::shutdown_signal()` resolves, drain ...
//! telemetry.shutdown();
//! # Ok(()) }
//! ```
//!
//! Signals and where they go:
//! - **Logs**: JSON lines on stdout (`json.rs`), each carrying the `trace_id`/`span_id` of the span
//!   it was emitted in; and, when an OTLP logs endpoint is configured, OTLP log records (`otlp.rs`).
//! - **Traces**: `tracing` spans become OpenTelemetry spans, exported over OTLP when an endpoint is
//!   configured. Trace ids exist either way, so logs and responses can name them.
//! - **Metrics**: one Prometheus recorder per process (`metrics.rs`), rendered by each binary's
//!   `/metrics` route. axum-prometheus and our own `metrics::*!` calls share it.
//!
//! Configuration comes only from the standard environment variables: `RUST_LOG` (default [`DEFAULT_FILTER`]),
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_{TRACES,LOGS}_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or
//! `http/protobuf`), `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`, `OTEL_BLRP_*`, `OTEL_SDK_DISABLED`.
//! No endpoint set means no exporter: no network, no error spam.
//!
//! **Architecture Invariant:** this crate is the ground floor. It depends on no other Ampel crate
//! and knows nothing of HTTP routes, jobs or databases.

mod json;
mod metrics;
mod otlp;
mod shutdown;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter::Targets, fmt::MakeWriter, layer::SubscriberExt as _,
    registry::LookupSpan, util::SubscriberInitExt as _,
};

pub use crate::json::JsonFormat;
pub use crate::metrics::{
    DURATION_BUCKETS, DocumentedMetric, JOB_BUCKETS, METRICS_DOC, PROMETHEUS_CONTENT_TYPE,
    VITALS_BUCKETS, documented_metrics, missing_from_scrape, prometheus_handle,
};
pub use crate::otlp::Exporters;
pub use crate::shutdown::shutdown_signal;

/// How long `shutdown` may spend flushing each signal. Fly's `kill_timeout` and the drain budget
/// are planned around it: a hung collector must not hold the process for the SDK's 10 s timeout.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps the OpenTelemetry providers alive; `shutdown` flushes what is still queued.
#[must_use = "dropping the guard early stops trace and log export"]
pub struct TelemetryGuard {
    tracer_provider: opentelemetry_sdk::trace::SdkTracerProvider,
    logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
}

impl TelemetryGuard {
    /// Flushes traces and logs side by side, each bounded by [`FLUSH_TIMEOUT`], so a hung
    /// collector holds the process for one timeout, not one per signal. Reports (to stderr, since
    /// the log pipeline is what is being shut down) anything that failed.
    pub fn shutdown(self) {
        let logger_provider = self.logger_provider;
        let logs = std::thread::spawn(move || {
            logger_provider
                .map(|provider| provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .transpose()
        });
        let mut errors = Vec::new();
        if let Err(err) = self.tracer_provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            errors.push(format!("traces: {err}"));
        }
        match logs.join() {
            Ok(Err(err)) => errors.push(format!("logs: {err}")),
            Ok(Ok(_)) => {}
            Err(_) => errors.push("logs: the flush thread panicked".to_owned()),
        }
        if !errors.is_empty() {
            eprintln!("telemetry flush on shutdown failed: {}", errors.join("; "));
        }
    }
}

/// Sets up logs, traces and metrics for `service_name` (overridden by `OTEL_SERVICE_NAME`) and
/// installs them globally. Call once, early in `main`, inside the Tokio runtime.
///
/// # Errors
/// Fails when an `OTEL_*` or `RUST_LOG` value cannot be used, or when called twice.
pub fn init(service_name: &'static str) -> anyhow::Result<TelemetryGuard> {
    init_with_writer(service_name, std::io::stdout)
}

/// [`init`], with the JSON log lines going to `writer` instead of stdout (tests pass a sink).
///
/// # Errors
/// As [`init`].
pub fn init_with_writer<W>(service_name: &'static str, writer: W) -> anyhow::Result<TelemetryGuard>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let exporters = Exporters::from_env();
    let resource = otlp::resource(service_name);
    let tracer_provider = otlp::tracer_provider(&exporters, resource.clone())?;
    let logger_provider = otlp::logger_provider(&exporters, resource)?;

    let tracer = tracer_provider.tracer(service_name);
    let otel_logs = logger_provider.as_ref().map(|provider| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
            .with_filter(exporter_crates_muted())
    });
    let filter = env_filter()?;
    Registry::default()
        .with(filter)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(otel_logs)
        .with(json_layer(writer))
        .try_init()
        .context("install the global tracing subscriber (was telemetry::init called twice?)")?;

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    crate::metrics::describe_build_info(service_name);

    tracing::info!(
        service = service_name,
        traces_endpoint = exporters.traces.as_deref().unwrap_or("none"),
        logs_endpoint = exporters.logs.as_deref().unwrap_or("none"),
        "telemetry ready"
    );
    Ok(TelemetryGuard {
        tracer_provider,
        logger_provider,
    })
}

/// `redis://user:secret@host` -> `redis://user:***@host`: URLs may carry passwords, and error
/// messages end up in logs.
#[must_use]
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The JSON-lines log layer, writing to `writer`. Public so tests and benchmarks can build the
/// same output without installing the whole pipeline.
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .event_format(JsonFormat)
        .with_writer(writer)
}

/// What `RUST_LOG` defaults to: our events at info, the OpenTelemetry SDK's chatter only when
/// it warns.
pub const DEFAULT_FILTER: &str = "info,opentelemetry=warn,opentelemetry_sdk=warn";

/// `RUST_LOG`, or [`DEFAULT_FILTER`] when unset. A malformed value is an error, not a silent default: a typo
/// in production would otherwise hide the logs someone asked for.
fn env_filter() -> anyhow::Result<EnvFilter> {
    match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::builder()
            .parse(&value)
            .with_context(|| format!("RUST_LOG={value:?} is not a valid filter: see https://docs.rs/tracing-subscriber/latest/tracing_subscriber/filter/struct.EnvFilter.html")),
        _ => Ok(EnvFilter::new(DEFAULT_FILTER)),
    }
}

/// The exporter's own crates log about exporting; feeding those events back into the OTLP log
/// pipeline would export logs about exporting logs, forever.
fn exporter_crates_muted() -> Targets {
    use tracing::level_filters::LevelFilter;
    [
        "hyper",
        "hyper_util",
        "h2",
        "tonic",
        "tower",
        "reqwest",
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry_otlp",
        "opentelemetry_http",
    ]
    .into_iter()
    .fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, target| targets.with_target(target, LevelFilter::OFF),
    )
}

#[cfg(test)]
mod tests {
    /// Passwords never appear in a redacted URL; host and user stay for debugging.
    #[test]
    fn redacted_hides_passwords() {
        assert_eq!(
            super::redacted("postgres://ampel:s3cret@db:5432/ampel"),
            "postgres://ampel:***@db:5432/ampel"
        );
        assert_eq!(
            super::redacted("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
