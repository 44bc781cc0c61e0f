//! OpenTelemetry providers for traces and logs, configured from the standard `OTEL_*` variables.
//!
//! The SDK and `opentelemetry-otlp` already read most of them (protocol, endpoints, headers,
//! timeouts, sampler, batch sizes, resource attributes). This module decides *whether* a signal
//! is exported, because the SDK's default of "export to localhost" would make every developer's
//! laptop log connection errors; and it sets the retries, the export timeout and the queue sizes
//! so that a collector restart loses nothing, which the SDK's defaults do not.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry_otlp::{self as otlp, RetryPolicy, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    logs::{self, SdkLoggerProvider},
    trace::{self, SdkTracerProvider},
};

/// Which signals leave the process over OTLP, and where to (for the start-up log line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exporters {
    /// The traces endpoint, when traces are exported.
    pub traces: Option<String>,
    /// The logs endpoint, when logs are exported.
    pub logs: Option<String>,
}

impl Exporters {
    /// Reads the process environment; see [`Exporters::from_lookup`].
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// A signal is exported when its endpoint (`OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`) is set and neither `OTEL_SDK_DISABLED=true` nor
    /// `OTEL_{SIGNAL}_EXPORTER=none` turns it off.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |key: &str| lookup(key).filter(|value| !value.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
            return Self::default();
        }
        let endpoint = |signal: &str| {
            if set(&format!("OTEL_{signal}_EXPORTER")).is_some_and(|value| value == "none") {
                return None;
            }
            set(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))
                .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        };
        Self {
            traces: endpoint("TRACES"),
            logs: endpoint("LOGS"),
        }
    }
}

/// The variable that renames a binary's `service.name` (the OpenTelemetry specification's; the
/// SDK, which reads it, keeps its own constant private).
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";

/// The resource every span and log record carries. [`SERVICE_NAME_VAR`] wins over the binary's
/// own name, as the specification asks; `OTEL_RESOURCE_ATTRIBUTES` is merged in by the SDK.
pub(crate) fn resource(service_name: &'static str) -> Resource {
    let builder = Resource::builder();
    if std::env::var_os(SERVICE_NAME_VAR).is_some() {
        builder.build()
    } else {
        builder.with_service_name(service_name).build()
    }
}

/// How long one batch keeps being retried while the collector refuses it or cannot be reached
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_{TRACES,LOGS}_TIMEOUT`; the SDK also takes it
/// as each attempt's HTTP timeout). Longer than a collector restart, so a restart loses nothing;
/// the SDK's own default ([`otlp::OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT`]) would end the retries
/// before a 10 s outage does.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// One attempt's limits, within [`EXPORT_TIMEOUT`]: a collector that is gone may drop packets
/// rather than refuse them (a stopped container's address, a Machine being replaced), and then a
/// connect, or a request on a connection opened before, would wait out the whole retry window in
/// one attempt. With these, the retries span the outage instead.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// See [`CONNECT_TIMEOUT`]; shorter still when the retry window is.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many spans, and separately how many log records, wait for export
/// (`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_QUEUE_SIZE`). While a batch is retried nothing
/// leaves the queue, so it must hold [`EXPORT_TIMEOUT`] of the stack's load: a request makes at
/// most three spans and two log records. Past it, items are dropped and the SDK logs the count at
/// shutdown (`dropped_span_count`, `dropped_logs_count`).
pub const QUEUE_SIZE: usize = 8192;

/// Backoff between attempts, capped so that export resumes within a second of the collector's
/// return. The count is unbounded: [`EXPORT_TIMEOUT`] ends the retries.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::recommended()
        .with_max_retries(usize::MAX)
        .with_max_delay(Duration::from_secs(1))
}

/// The variables one signal's exporter and queue are configured by, besides the general ones.
struct Vars {
    timeout: &'static str,
    protocol: &'static str,
    queue_size: &'static str,
}

const TRACES: Vars = Vars {
    timeout: otlp::OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    protocol: otlp::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    queue_size: trace::OTEL_BSP_MAX_QUEUE_SIZE,
};

const LOGS: Vars = Vars {
    timeout: otlp::OTEL_EXPORTER_OTLP_LOGS_TIMEOUT,
    protocol: otlp::OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    queue_size: logs::OTEL_BLRP_MAX_QUEUE_SIZE,
};

/// What one signal's exporter and queue get from this crate rather than from the SDK's defaults:
/// each value only when its variable is unset, since the SDK lets a programmatic value override
/// the environment.
#[derive(Debug, PartialEq, Eq)]
struct Overrides {
    timeout: Option<Duration>,
    /// One HTTP attempt's limit: [`ATTEMPT_TIMEOUT`], or the retry window when that is shorter.
    attempt: Duration,
    queue_size: Option<usize>,
    /// The signal's protocol variable, else `OTEL_EXPORTER_OTLP_PROTOCOL`, is `grpc`: the retry
    /// policy is set on the transport, so the transport is chosen here, as the SDK would.
    grpc: bool,
}

impl Overrides {
    fn from_env(vars: &Vars) -> Self {
        Self::from_lookup(vars, |key| std::env::var(key).ok())
    }

    /// Reads the variables as the SDK does: a value it cannot parse counts as unset.
    fn from_lookup(vars: &Vars, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let number = |key: &str| lookup(key).and_then(|value| value.parse::<u64>().ok());
        let timeout_set = number(vars.timeout)
            .or_else(|| number(otlp::OTEL_EXPORTER_OTLP_TIMEOUT))
            .map(Duration::from_millis);
        let protocol = |key: &str| {
            lookup(key)
                .map(|value| value.to_ascii_lowercase())
                .filter(|value| {
                    [
                        otlp::OTEL_EXPORTER_OTLP_PROTOCOL_GRPC,
                        otlp::OTEL_EXPORTER_OTLP_PROTOCOL_HTTP_PROTOBUF,
                        otlp::OTEL_EXPORTER_OTLP_PROTOCOL_HTTP_JSON,
                    ]
                    .contains(&value.as_str())
                })
        };
        let grpc = protocol(vars.protocol)
            .or_else(|| protocol(otlp::OTEL_EXPORTER_OTLP_PROTOCOL))
            .is_some_and(|value| value == otlp::OTEL_EXPORTER_OTLP_PROTOCOL_GRPC);
        Self {
            timeout: timeout_set.is_none().then_some(EXPORT_TIMEOUT),
            attempt: timeout_set.unwrap_or(EXPORT_TIMEOUT).min(ATTEMPT_TIMEOUT),
            queue_size: number(vars.queue_size).is_none().then_some(QUEUE_SIZE),
            grpc,
        }
    }
}

/// The OTLP exporter of `$signal` (`SpanExporter`, `LogExporter`), on the transport `$overrides`
/// picks, with the retry policy and, unless the environment sets one, [`EXPORT_TIMEOUT`].
macro_rules! exporter {
    ($signal:ident, $overrides:expr) => {{
        use opentelemetry_otlp::{WithHttpConfig as _, WithTonicConfig as _};
        let overrides = &$overrides;
        let builder = otlp::$signal::builder();
        if overrides.grpc {
            let builder = builder.with_tonic().with_retry_policy(retry_policy());
            with_timeout(builder, overrides.timeout).build()
        } else {
            let builder = builder
                .with_http()
                .with_http_client(http_client(overrides.attempt)?)
                .with_retry_policy(retry_policy());
            with_timeout(builder, overrides.timeout).build()
        }
    }};
}

/// The HTTP exporter's client, with [`CONNECT_TIMEOUT`] and `attempt` per request. Built on a
/// thread of its own: a blocking client cannot be built inside the Tokio runtime `main` runs in.
fn http_client(attempt: Duration) -> anyhow::Result<reqwest::blocking::Client> {
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(attempt)
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("build the OTLP HTTP client: its thread panicked"))?
    .context("build the OTLP HTTP client")
}

fn with_timeout<B: WithExportConfig>(builder: B, timeout: Option<Duration>) -> B {
    match timeout {
        Some(timeout) => builder.with_timeout(timeout),
        None => builder,
    }
}

/// Always returns a provider: without an exporter, spans still get real trace and span ids, so
/// the JSON logs, the `traceparent` sent downstream and the ids returned to clients stay
/// meaningful. Export runs on the SDK's batch thread with a bounded queue (`OTEL_BSP_*`), so a
/// dead collector costs requests nothing; spans are dropped when the queue is full.
pub(crate) fn tracer_provider(
    exporters: &Exporters,
    resource: Resource,
) -> anyhow::Result<SdkTracerProvider> {
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let builder = if exporters.traces.is_some() {
        let overrides = Overrides::from_env(&TRACES);
        let exporter = exporter!(SpanExporter, overrides)
            .context("build the OTLP span exporter: check OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf) and the endpoint URL")?;
        let mut config = trace::BatchConfigBuilder::default();
        if let Some(size) = overrides.queue_size {
            config = config.with_max_queue_size(size);
        }
        builder.with_span_processor(
            trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(config.build())
                .build(),
        )
    } else {
        builder
    };
    Ok(builder.build())
}

/// `None` when logs are not exported: then the OTLP log bridge layer is left out entirely.
pub(crate) fn logger_provider(
    exporters: &Exporters,
    resource: Resource,
) -> anyhow::Result<Option<SdkLoggerProvider>> {
    if exporters.logs.is_none() {
        return Ok(None);
    }
    let overrides = Overrides::from_env(&LOGS);
    let exporter = exporter!(LogExporter, overrides)
        .context("build the OTLP log exporter: check OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf) and the endpoint URL")?;
    let mut config = logs::BatchConfigBuilder::default();
    if let Some(size) = overrides.queue_size {
        config = config.with_max_queue_size(size);
    }
    Ok(Some(
        SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(
                logs::BatchLogProcessor::builder(exporter)
                    .with_batch_config(config.build())
                    .build(),
            )
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::{
        ATTEMPT_TIMEOUT, EXPORT_TIMEOUT, Exporters, LOGS, Overrides, QUEUE_SIZE, TRACES, Vars,
    };

    fn exporters(vars: &[(&str, &str)]) -> Exporters {
        Exporters::from_lookup(|key| {
            vars.iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    /// No endpoint at all: nothing is exported, so nothing connects anywhere.
    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(exporters(&[]), Exporters::default());
    }

    /// The general endpoint turns on both signals; a per-signal endpoint wins for its signal.
    #[test]
    fn per_signal_endpoint_wins() {
        let found = exporters(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://loki:3100/otlp/v1/logs",
            ),
        ]);
        assert_eq!(found.traces.as_deref(), Some("http://collector:4318"));
        assert_eq!(found.logs.as_deref(), Some("http://loki:3100/otlp/v1/logs"));
    }

    /// `OTEL_{SIGNAL}_EXPORTER=none` and `OTEL_SDK_DISABLED=true` switch export off.
    #[test]
    fn exporters_can_be_switched_off() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let only_traces = exporters(&[endpoint, ("OTEL_LOGS_EXPORTER", "none")]);
        assert!(only_traces.traces.is_some() && only_traces.logs.is_none());
        assert_eq!(
            exporters(&[endpoint, ("OTEL_SDK_DISABLED", "true")]),
            Exporters::default()
        );
    }

    fn overrides(signal: &Vars, vars: &[(&str, &str)]) -> Overrides {
        Overrides::from_lookup(signal, |key| {
            vars.iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    /// Unset, the timeout and the queue are this crate's; set (generally or for the signal), the
    /// SDK reads them, so nothing is given; a value the SDK cannot parse counts as unset.
    #[test]
    fn the_environment_wins_over_the_defaults() {
        let ours = Overrides {
            timeout: Some(EXPORT_TIMEOUT),
            attempt: ATTEMPT_TIMEOUT,
            queue_size: Some(QUEUE_SIZE),
            grpc: false,
        };
        assert_eq!(overrides(&TRACES, &[]), ours);
        let set = overrides(
            &TRACES,
            &[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ],
        );
        assert_eq!((set.timeout, set.queue_size), (None, None));
        let for_logs = overrides(&LOGS, &[("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "1000")]);
        assert_eq!(for_logs.timeout, None);
        // A retry window shorter than one attempt's limit bounds the attempt too.
        assert_eq!(for_logs.attempt, std::time::Duration::from_secs(1));
        assert_eq!(
            overrides(&TRACES, &[("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "5000")]).timeout,
            Some(EXPORT_TIMEOUT)
        );
        let garbled = overrides(
            &LOGS,
            &[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "5s"),
                ("OTEL_BLRP_MAX_QUEUE_SIZE", "lots"),
            ],
        );
        assert_eq!(garbled, ours);
    }

    /// The transport is the one the SDK would pick: the signal's protocol variable, else the
    /// general one, a value it does not know skipped, http/protobuf when neither says.
    #[test]
    fn the_protocol_picks_the_transport() {
        let grpc = |vars: &[(&str, &str)]| overrides(&TRACES, vars).grpc;
        assert!(!grpc(&[]));
        assert!(grpc(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]));
        assert!(grpc(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC")]));
        assert!(!grpc(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]));
        assert!(grpc(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "carrier-pigeon"),
        ]));
        assert!(!grpc(&[("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc")]));
    }
}
