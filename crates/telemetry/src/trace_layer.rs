//! The `tracing` -> OpenTelemetry span layer, configured for what is worth exporting per span.
//!
//! Each choice here was measured with `cargo xtask bench` (docs/performance.md):
//! - no source location, thread or busy/idle attributes on spans: eight attributes per span that
//!   nobody reads, built, encoded and shipped every time;
//! - only warnings and errors become span events. Every event is already an OTLP log record
//!   carrying its span's ids; copying info events into the span as well doubled what a request
//!   exported. A warning or error still marks the span it happened in.
//!
//! The event gate is a plain wrapper rather than a per-layer filter (`Layer::with_filter`), which
//! costs a span look-up on every enter and exit, nor tracing-opentelemetry's own
//! `with_counting_event_filter`, whose 0.34.0 release prints every event to stdout.

use std::any::TypeId;

use opentelemetry_sdk::trace::SdkTracer;
use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber, span, subscriber::Interest};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

/// The span layer for `tracer`.
pub(crate) fn layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    WarningsAsSpanEvents(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false),
    )
}

/// Forwards everything to the inner layer except events below WARN.
struct WarningsAsSpanEvents<L>(L);

impl<S, L> Layer<S> for WarningsAsSpanEvents<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.0.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.0.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.0.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() <= Level::WARN {
            self.0.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.0.on_id_change(old, new, ctx);
    }

    // `OpenTelemetrySpanExt` (`span.context()`, `set_parent`) finds the inner layer through this.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            // SAFETY: the inner layer answers for its own types, as it would unwrapped.
            unsafe { self.0.downcast_raw(id) }
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Info events stay out of the span, warnings go in; the span keeps only the attributes we
    /// set; `OpenTelemetrySpanExt` still reaches the layer through the wrapper.
    #[test]
    fn spans_carry_warnings_and_our_attributes_only() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(super::layer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", http.route = "/a");
            assert!(span.context().span().span_context().is_valid());
            let _entered = span.enter();
            tracing::info!("request finished");
            tracing::warn!("slow");
        });
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        let events: Vec<&str> = spans[0]
            .events
            .iter()
            .map(|event| event.name.as_ref())
            .collect();
        assert_eq!(events, ["slow"]);
        let keys: Vec<&str> = spans[0]
            .attributes
            .iter()
            .map(|attribute| attribute.key.as_str())
            .collect();
        assert_eq!(keys, ["http.route"]);
    }
}
