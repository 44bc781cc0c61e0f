//! The one place where Ampel's binaries set up logs, traces and metrics, and flush them on exit.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! // Every family the binary exports: its crates' declarations and telemetry's own.
//! let telemetry = ampel_telemetry::init("ampel-api", &[ampel_telemetry::METRIC_FAMILIES])?;
//! // ... serve until `ampel_telemetry::shutdown_signal()` resolves, drain ...
//! telemetry.shutdown();
//! # Ok(()) }
//! ```
//!
//! Signals and where they go:
//! - **Logs**: JSON lines on stdout (`json.rs`, written by tracing-appender's writer thread),
//!   each carrying the `trace_id`/`span_id` of the span it was emitted in; and,
//!   when an OTLP logs endpoint is configured, OTLP log records (`log_layer.rs`).
//! - **Traces**: `tracing` spans become OpenTelemetry spans, exported over OTLP when an endpoint is
//!   configured. Trace ids exist either way, so logs and responses can name them.
//! - **Metrics**: one Prometheus recorder per process (`metrics.rs`), built from the
//!   [`MetricFamily`] declarations the binary passes to [`init`] and rendered by each binary's
//!   `/metrics` route. axum-prometheus and our own `metrics::*!` calls share it.
//!
//! Configuration comes only from the standard environment variables: `RUST_LOG` (default [`DEFAULT_FILTER`]),
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_{TRACES,LOGS}_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or
//! `http/protobuf`), `OTEL_EXPORTER_OTLP_TIMEOUT` (how long a batch is retried, default
//! [`EXPORT_TIMEOUT`]), `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`, `OTEL_BLRP_*` (queues of
//! [`QUEUE_SIZE`] by default), `OTEL_SDK_DISABLED`.
//! No endpoint set means no exporter: no network, no error spam.
//! `AMPEL_TELEMETRY=off` switches all of it off (see [`enabled`]): the baseline `cargo xtask bench`
//! measures the cost of telemetry against.
//!
//! **Architecture Invariant:** this crate is the ground floor. It depends on no other Ampel crate
//! and knows nothing of HTTP routes, jobs or databases.

mod exception;
mod family;
mod json;
mod log_layer;
mod metrics;
mod otlp;
mod shutdown;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
mod trace_layer;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter::Targets, fmt::MakeWriter, layer::SubscriberExt as _,
    registry::LookupSpan, util::SubscriberInitExt as _,
};

pub use crate::exception::EXCEPTION_TYPE;
pub use crate::family::{Kind, Label, LabelValues, MetricFamily};
pub use crate::json::JsonLayer;
pub use crate::metrics::{
    BUILD_INFO, DURATION_BUCKETS, METRIC_FAMILIES, PROMETHEUS_CONTENT_TYPE, prometheus_handle,
};
pub use crate::otlp::{EXPORT_TIMEOUT, Exporters, QUEUE_SIZE, SERVICE_NAME_VAR};
pub use crate::shutdown::{HANDLED_SIGNALS, shutdown_signal};

/// For [`error_with!`]: its callers need not name `tracing` themselves.
#[doc(hidden)]
pub use tracing as __tracing;

/// How long `shutdown` may spend flushing each signal. Fly's `kill_timeout` and the drain budget
/// are planned around it: a hung or refusing collector must not hold the process for the
/// exporter's [`EXPORT_TIMEOUT`], during which it keeps retrying.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The variable that switches telemetry off; see [`enabled`].
pub const SWITCH: &str = "AMPEL_TELEMETRY";

/// `false` when `AMPEL_TELEMETRY=off`: then [`init`] installs no subscriber (no log line at all),
/// no OpenTelemetry provider and no metrics recorder, and the binaries leave out their telemetry
/// middleware. It exists so that `cargo xtask bench` can compare the same binary with and
/// without telemetry; `on` (the default) is what every deployment runs.
#[must_use]
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var(SWITCH).map_or(true, |value| !value.trim().eq_ignore_ascii_case("off"))
    })
}

/// Keeps the OpenTelemetry providers alive; `shutdown` flushes what is still queued.
#[must_use = "dropping the guard early stops trace and log export"]
pub struct TelemetryGuard {
    /// `None` when telemetry is switched off.
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    /// The stdout writer thread's guard (dropping it writes out the lines still queued) and its
    /// count of lines dropped because stdout did not keep up.
    stdout: Option<(
        tracing_appender::non_blocking::WorkerGuard,
        tracing_appender::non_blocking::ErrorCounter,
    )>,
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
        if let Some(Err(err)) = self
            .tracer_provider
            .map(|provider| provider.shutdown_with_timeout(FLUSH_TIMEOUT))
        {
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
        // Last, so the SDK's own shutdown lines (dropped counts) are written too.
        if let Some((writer, dropped)) = self.stdout {
            drop(writer);
            if dropped.dropped_lines() > 0 {
                eprintln!(
                    "{} log lines were dropped: stdout did not keep up (is whatever reads it slow or stopped?)",
                    dropped.dropped_lines()
                );
            }
        }
    }
}

/// Sets up logs, traces and metrics for `service_name` (overridden by [`SERVICE_NAME_VAR`]) and
/// installs them globally; the metrics recorder is built from `families`, every family the
/// binary exports (its crates' declarations and [`METRIC_FAMILIES`]). Call once, early in
/// `main`, inside the Tokio runtime.
///
/// # Errors
/// Fails when an `OTEL_*`, `RUST_LOG` or `AMPEL_TELEMETRY` value cannot be used, or when called
/// twice.
pub fn init(
    service_name: &'static str,
    families: &[&[MetricFamily]],
) -> anyhow::Result<TelemetryGuard> {
    // Lines are handed to a writer thread: a request never waits for stdout. The thread flushes
    // whenever it has written all it was given, so under load lines go out in blocks (one
    // system call for many lines) and at rest at once.
    // Past 128k queued lines (stdout stuck) lines are dropped and counted, not waited for.
    let (writer, stdout) = tracing_appender::non_blocking(std::io::BufWriter::with_capacity(
        16 * 1024,
        std::io::stdout(),
    ));
    let dropped = writer.error_counter();
    let mut guard = init_with_writer(service_name, families, writer)?;
    guard.stdout = Some((stdout, dropped));
    Ok(guard)
}

/// [`init`], with the JSON log lines going to `writer` instead of stdout (tests pass a sink).
///
/// # Errors
/// As [`init`].
pub fn init_with_writer<W>(
    service_name: &'static str,
    families: &[&[MetricFamily]],
    writer: W,
) -> anyhow::Result<TelemetryGuard>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    if let Ok(value) = std::env::var(SWITCH) {
        let value = value.trim();
        anyhow::ensure!(
            value.is_empty()
                || value.eq_ignore_ascii_case("on")
                || value.eq_ignore_ascii_case("off"),
            "{SWITCH}={value:?}: set it to `on` or `off` (or leave it unset, which means on)"
        );
    }
    // Also when switched off: `/metrics` still needs a handle to render (nothing).
    crate::metrics::install(families);
    if !enabled() {
        return Ok(TelemetryGuard {
            tracer_provider: None,
            logger_provider: None,
            stdout: None,
        });
    }
    let exporters = Exporters::from_env();
    let resource = otlp::resource(service_name);
    let tracer_provider = otlp::tracer_provider(&exporters, resource.clone())?;
    let logger_provider = otlp::logger_provider(&exporters, resource)?;

    let tracer = tracer_provider.tracer(service_name);
    let otel_logs = logger_provider.as_ref().map(log_layer::layer);
    let (targets, env_filter) = log_filter()?;
    Registry::default()
        .with(targets)
        .with(env_filter)
        .with(trace_layer::layer(tracer))
        .with(otel_logs)
        .with(json_layer(writer))
        .try_init()
        .context("install the global tracing subscriber (was telemetry::init called twice?)")?;

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    crate::metrics::record_build_info(service_name);

    tracing::info!(
        service = service_name,
        traces_endpoint = exporters.traces.as_deref().unwrap_or("none"),
        logs_endpoint = exporters.logs.as_deref().unwrap_or("none"),
        "telemetry ready"
    );
    Ok(TelemetryGuard {
        tracer_provider: Some(tracer_provider),
        logger_provider,
        stdout: None,
    })
}

/// The W3C `traceparent` of the current span (`00-{trace id}-{span id}-{flags}`), `None` outside
/// any span: for a response header, so a client can find its request's trace. Written here
/// rather than by the global propagator, which would also add `tracestate` and `baggage`
/// headers: a response gives the client its trace id, not the request's baggage.
#[must_use]
pub fn current_traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    opentelemetry::Context::map_current(|context| {
        let span = context.span();
        let ids = span.span_context();
        ids.is_valid().then(|| {
            let mut text = Vec::with_capacity(55);
            text.extend_from_slice(b"00-");
            json::hex(&mut text, &ids.trace_id().to_bytes());
            text.push(b'-');
            json::hex(&mut text, &ids.span_id().to_bytes());
            text.push(b'-');
            json::hex(&mut text, &[ids.trace_flags().to_u8()]);
            String::from_utf8(text).expect("hex digits are ASCII")
        })
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
    JsonLayer::new(writer)
}

/// What `RUST_LOG` defaults to: our events at info, the OpenTelemetry SDK's chatter only when
/// it warns.
pub const DEFAULT_FILTER: &str = "info,opentelemetry=warn,opentelemetry_sdk=warn";

/// `RUST_LOG`, or [`DEFAULT_FILTER`] when unset, as one of two filters. A list of `target=level`
/// directives, the usual case, becomes a `Targets` filter, which decides once per call site;
/// only a filter that needs `EnvFilter` (span or field directives, `[span{field=value}]=level`)
/// gets one, because `EnvFilter` also takes a lock on every span enter and exit
/// (docs/performance.md). A malformed value is an error, not a silent default: a typo in
/// production would otherwise hide the logs someone asked for.
fn log_filter() -> anyhow::Result<(Option<Targets>, Option<EnvFilter>)> {
    let value = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    let env_filter = EnvFilter::builder()
        .parse(&value)
        .with_context(|| format!("RUST_LOG={value:?} is not a valid filter: see https://docs.rs/tracing-subscriber/latest/tracing_subscriber/filter/struct.EnvFilter.html"))?;
    if value.contains(['[', '{']) {
        return Ok((None, Some(env_filter)));
    }
    Ok(match value.parse::<Targets>() {
        Ok(targets) => (Some(targets), None),
        Err(_) => (None, Some(env_filter)),
    })
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;

    /// A plain `RUST_LOG` list means what it means to `EnvFilter`: the most specific target
    /// prefix wins, the bare level is the default.
    #[test]
    fn plain_filters_read_as_targets() {
        let targets: Targets = super::DEFAULT_FILTER.parse().unwrap();
        assert!(targets.would_enable("ampel_api::routes", &Level::INFO));
        assert!(!targets.would_enable("ampel_api::routes", &Level::DEBUG));
        assert!(!targets.would_enable("opentelemetry_sdk", &Level::INFO));
        assert!(targets.would_enable("opentelemetry_sdk", &Level::WARN));
        assert!(!targets.would_enable("opentelemetry", &Level::INFO));
        let only_hyper: Targets = "hyper=debug".parse().unwrap();
        assert!(!only_hyper.would_enable("ampel_api", &Level::ERROR));
    }

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
