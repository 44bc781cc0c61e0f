//! The OTLP log bridge: every event becomes an OTLP log record, except the exporter's own.

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use tracing::{Event, Subscriber};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

/// The exporter's own crates log about exporting; feeding those events back into the OTLP log
/// pipeline would export logs about exporting logs, forever. Prefixes, as targets are matched:
/// `hyper` also covers `hyper_util`, `opentelemetry` the SDK, OTLP and HTTP crates.
const MUTED: &[&str] = &["hyper", "h2", "tonic", "tower", "reqwest", "opentelemetry"];

/// The bridge for `provider`.
pub(crate) fn layer<S>(provider: &SdkLoggerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    UnlessMuted(OpenTelemetryTracingBridge::new(provider))
}

/// Passes events, and nothing else, to the bridge unless their target is muted. A plain wrapper
/// rather than a per-layer filter (`with_filter(Targets)`): that costs a span look-up on every
/// span enter and exit (docs/performance.md), although the bridge ignores spans.
struct UnlessMuted<L>(L);

impl<S, L> Layer<S> for UnlessMuted<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !MUTED.iter().any(|muted| target.starts_with(muted)) {
            self.0.on_event(event, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Our events are exported; the exporter's crates' are not.
    #[test]
    fn exporter_crates_are_muted() {
        let exporter = InMemoryLogExporter::default();
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(super::layer(&provider));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "ampel_api::request_span", "request finished");
            tracing::warn!(target: "hyper_util::client", "connection closed");
            tracing::error!(target: "opentelemetry_sdk", "export failed");
        });
        let logs = exporter.get_emitted_logs().unwrap();
        let targets: Vec<String> = logs
            .iter()
            .map(|log| {
                log.record
                    .target()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(targets, ["ampel_api::request_span"]);
    }
}
