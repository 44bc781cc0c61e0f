//! JSON-lines log format: one object per event, with the OpenTelemetry trace and span ids of the
//! span it happened in, so a log line leads to its trace and a trace to its log lines.
//!
//! ```text
//! {"timestamp":"2026-11-26T01:02:03.456789Z","level":"INFO","target":"ampel_api::routes","span":"POST /api/repositories/{id}/poll","trace_id":"4bf9…","span_id":"00f0…","message":"job enqueued","job_id":"01J…"}
//! ```
//!
//! Unlike `tracing_subscriber::fmt::format::Json`, span fields are not repeated on every line:
//! the ids are the link to them, and re-serialising every span's fields on each event was the
//! largest single cost of a naive set-up (see docs/performance.md).

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// The event formatter; see the module docs for the shape of a line.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::with_capacity(8);
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), span.name().into());
        }
        // The OpenTelemetry context of the entered span is current while the event is formatted
        // (tracing-opentelemetry activates it on enter).
        let otel = opentelemetry::Context::current();
        let span_context = otel.span().span_context().clone();
        if span_context.is_valid() {
            line.insert(
                "trace_id".into(),
                span_context.trace_id().to_string().into(),
            );
            line.insert("span_id".into(), span_context.span_id().to_string().into());
        }
        event.record(&mut FieldVisitor(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Copies an event's fields into the JSON object, keeping numbers and booleans typed.
struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Collects written lines, for asserting on the output.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An event inside a span carries that span's trace and span ids, and its own typed fields.
    #[test]
    fn events_in_a_span_carry_trace_and_span_ids() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(crate::json_layer(move || sink.clone()));

        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(outside = true, "no span here");
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            tracing::info!(job_id = 7, name = "poll", "inside");
        });

        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(parsed.len(), 2, "{text}");
        assert!(parsed[0].get("trace_id").is_none(), "{text}");
        let inside = &parsed[1];
        assert_eq!(inside["message"], "inside");
        assert_eq!(inside["job_id"], 7);
        assert_eq!(inside["span"], "request");
        assert_eq!(inside["trace_id"].as_str().unwrap().len(), 32, "{text}");
        assert_eq!(inside["span_id"].as_str().unwrap().len(), 16, "{text}");
        assert_ne!(inside["trace_id"], "00000000000000000000000000000000");
    }
}
