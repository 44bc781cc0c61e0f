//! OpenTelemetry providers for traces and logs, configured from the standard `OTEL_*` variables.
//!
//! The SDK and `opentelemetry-otlp` already read most of them (protocol, endpoints, headers,
//! timeouts, sampler, batch sizes, resource attributes); this module only decides *whether* a
//! signal is exported, because the SDK's default of "export to localhost" would make every
//! developer's laptop log connection errors.

use anyhow::Context as _;
use opentelemetry_sdk::{Resource, logs::SdkLoggerProvider, trace::SdkTracerProvider};

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

/// The resource every span and log record carries. `OTEL_SERVICE_NAME` wins over the binary's
/// own name, as the specification asks; `OTEL_RESOURCE_ATTRIBUTES` is merged in by the SDK.
pub(crate) fn resource(service_name: &'static str) -> Resource {
    let builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name(service_name).build()
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
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .build()
            .context("build the OTLP span exporter: check OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf) and the endpoint URL")?;
        builder.with_batch_exporter(exporter)
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
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .build()
        .context("build the OTLP log exporter: check OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf) and the endpoint URL")?;
    Ok(Some(
        SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::Exporters;

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
}
