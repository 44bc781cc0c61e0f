//! JSON-lines log format: one object per event, with the OpenTelemetry trace and span ids of the
//! span it happened in, so a log line leads to its trace and a trace to its log lines.
//!
//! ```text
//! {"timestamp":"2026-11-26T01:02:03.456789Z","level":"INFO","target":"ampel_api::routes","span":"POST /api/repositories/{id}/poll","trace_id":"4bf9…","span_id":"00f0…","message":"job enqueued","job_id":"01J…"}
//! ```
//!
//! Unlike `tracing_subscriber::fmt::format::Json`, span fields are not repeated on every line:
//! the ids are the link to them, and re-serialising every span's fields on each event was the
//! largest single cost of a naive set-up (see docs/performance.md). It is a layer of its own, not
//! a `fmt::Layer` formatter: a `fmt::Layer` formats every span's fields when the span is created
//! and recorded, for formatters that print them, and this one never does. Lines are built in a
//! per-thread buffer (strings and numbers written by serde_json) with one `write` each, so an
//! event of strings and numbers allocates nothing.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{fmt::MakeWriter, layer::Context, registry::LookupSpan};

/// The JSON-lines layer (see the module docs for the shape of a line); built by
/// [`crate::json_layer`].
#[derive(Debug)]
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

thread_local! {
    /// Each thread's line buffer, reused for every event it logs.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The `YYYY-MM-DDTHH:MM:SS` of the last second this thread logged in: a calendar date is
    /// worked out once per second, not once per line.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span = ctx.lookup_current().map(|span| span.name());
        let write = |line: &mut Vec<u8>| {
            line.clear();
            format_line(line, event, span);
            // One write per line: one message to the writer thread, and lines
            // of concurrent events never interleave.
            let _ = self
                .make_writer
                .make_writer_for(event.metadata())
                .write_all(line);
        };
        // A field's `Debug` that logs would find the buffer in use; it gets a buffer of its own.
        LINE.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            Err(_) => write(&mut Vec::new()),
        });
    }
}

fn format_line(line: &mut Vec<u8>, event: &Event<'_>, span: Option<&str>) {
    let metadata = event.metadata();
    line.extend_from_slice(br#"{"timestamp":""#);
    timestamp(line);
    line.extend_from_slice(br#"","level":""#);
    line.extend_from_slice(metadata.level().as_str().as_bytes());
    line.extend_from_slice(br#"","target":"#);
    string(line, metadata.target());
    if let Some(span) = span {
        line.extend_from_slice(br#","span":"#);
        string(line, span);
    }
    // The OpenTelemetry context of the entered span is current while the event is formatted
    // (tracing-opentelemetry activates it on enter).
    opentelemetry::Context::map_current(|context| {
        let span = context.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            line.extend_from_slice(br#","trace_id":""#);
            hex(line, &span_context.trace_id().to_bytes());
            line.extend_from_slice(br#"","span_id":""#);
            hex(line, &span_context.span_id().to_bytes());
            line.push(b'"');
        }
    });
    event.record(&mut FieldVisitor(line));
    line.extend_from_slice(b"}\n");
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-26T01:02:03.456789Z`.
fn timestamp(line: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != seconds {
        let date = chrono::DateTime::from_timestamp(i64::try_from(seconds).unwrap_or(0), 0)
            .unwrap_or_default();
        let mut text = Vec::with_capacity(19);
        let _ = write!(text, "{}", date.format("%Y-%m-%dT%H:%M:%S"));
        prefix.copy_from_slice(&text[..19]);
        SECOND.set((seconds, prefix));
    }
    line.extend_from_slice(&prefix);
    let _ = write!(line, ".{:06}Z", now.subsec_micros());
}

/// `text` as a JSON string, quotes included, escaped by serde_json.
fn string(line: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(line, text);
}

/// Lowercase hex of `bytes`, as trace and span ids are written.
pub(crate) fn hex(line: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        line.push(DIGITS[usize::from(byte >> 4)]);
        line.push(DIGITS[usize::from(byte & 0x0f)]);
    }
}

/// Appends an event's fields, keeping numbers and booleans typed.
struct FieldVisitor<'a>(&'a mut Vec<u8>);

impl FieldVisitor<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(b',');
        string(self.0, field.name());
        self.0.push(b':');
    }
}

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        string(self.0, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = serde_json::to_writer(&mut *self.0, &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = serde_json::to_writer(&mut *self.0, &value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        // JSON has no NaN or infinity: serde_json writes them as null.
        let _ = serde_json::to_writer(&mut *self.0, &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }
    // Errors and `?`-fields are text first, then escaped; the request path logs neither.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        string(self.0, &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        string(self.0, &format!("{value:?}"));
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

        let traceparent = tracing::subscriber::with_default(subscriber, || {
            tracing::info!(outside = true, "no span here");
            assert_eq!(crate::current_traceparent(), None);
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            tracing::info!(job_id = 7, name = "poll", "inside");
            crate::current_traceparent().unwrap()
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
        assert_eq!(
            traceparent,
            format!(
                "00-{}-{}-01",
                inside["trace_id"].as_str().unwrap(),
                inside["span_id"].as_str().unwrap()
            )
        );
        assert_eq!(inside["level"], "INFO");
        let timestamp = inside["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.len() == 27,
            "{timestamp}"
        );
    }

    /// Quotes, backslashes, newlines and other control characters are escaped; non-finite
    /// numbers become null; every line is valid JSON.
    #[test]
    fn awkward_values_stay_valid_json() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber =
            tracing_subscriber::registry().with(crate::json_layer(move || sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                quoted = "say \"hi\"\\ \u{1}\tnow\n",
                ratio = f64::NAN,
                debug = ?("a\"b", 'é'),
                "multi\nline"
            );
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["quoted"], "say \"hi\"\\ \u{1}\tnow\n");
        assert_eq!(line["ratio"], serde_json::Value::Null);
        assert_eq!(line["debug"], r#"("a\"b", 'é')"#);
        assert_eq!(line["message"], "multi\nline");
        assert_eq!(line["level"], "WARN");
    }
}
