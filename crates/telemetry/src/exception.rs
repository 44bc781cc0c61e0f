//! [`error_with!`](crate::error_with): a server error as a log record with OpenTelemetry's
//! `exception.type` and `exception.message`, the attributes the browser's error reports carry too,
//! so one query finds the failures of every service.

/// The attribute [`error_with!`](crate::error_with) names the error's type under, as
/// OpenTelemetry's semantic conventions spell it: what a check looks for in the log store.
pub const EXCEPTION_TYPE: &str = "exception.type";

/// `tracing::error!` for an error value: the event gets [`EXCEPTION_TYPE`] (the concrete type of
/// what `$err` points at, e.g. `ampel_worker::jobs::JobError`; pass a reference to the error,
/// not a reference to a reference) and `exception.message` (`{:#}`, which for `anyhow::Error`
/// includes its chain of causes), then whatever fields and message follow, as `tracing::error!`
/// takes them.
///
/// ```
/// # let err = std::io::Error::other("refused");
/// ampel_telemetry::error_with!(&err, signal = "SIGTERM", "cannot listen for the signal");
/// ```
#[macro_export]
macro_rules! error_with {
    ($err:expr, $($rest:tt)+) => {{
        let err = $err;
        $crate::__tracing::error!(
            exception.r#type = ::std::any::type_name_of_val(err),
            exception.message = %::std::format_args!("{:#}", err),
            $($rest)+
        )
    }};
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex},
    };

    use tracing_subscriber::layer::SubscriberExt as _;

    /// Every field of every event, by name, as text.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Fields {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Visitor::default();
            event.record(&mut fields);
            let mut fields = fields.0;
            fields.insert("level".to_owned(), event.metadata().level().to_string());
            self.0.lock().unwrap().push(fields);
        }
    }

    #[derive(Default)]
    struct Visitor(BTreeMap<String, String>);

    impl tracing::field::Visit for Visitor {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    #[derive(Debug)]
    struct GaveUp;

    impl std::fmt::Display for GaveUp {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the job gave up")
        }
    }

    impl std::error::Error for GaveUp {}

    /// The record names the error's own type (not the reference's, not `anyhow::Error` when
    /// the value is a concrete error), its message with anyhow's causes, and keeps the caller's
    /// fields and message.
    #[test]
    fn error_with_records_the_exception_and_the_callers_fields() {
        let fields = Fields::default();
        let subscriber = tracing_subscriber::registry().with(fields.clone());
        tracing::subscriber::with_default(subscriber, || {
            let err = GaveUp;
            crate::error_with!(&err, job_id = 7, "job failed");
            let err = anyhow::Error::new(GaveUp).context("poll octo/repo");
            let err = &err;
            crate::error_with!(err, "ampel-worker stopped after {} jobs", 3);
        });

        let events = fields.0.lock().unwrap();
        let expected = [
            BTreeMap::from([
                (super::EXCEPTION_TYPE, std::any::type_name::<GaveUp>()),
                ("exception.message", "the job gave up"),
                ("job_id", "7"),
                ("message", "job failed"),
                ("level", "ERROR"),
            ]),
            BTreeMap::from([
                (super::EXCEPTION_TYPE, "anyhow::Error"),
                ("exception.message", "poll octo/repo: the job gave up"),
                ("message", "ampel-worker stopped after 3 jobs"),
                ("level", "ERROR"),
            ]),
        ];
        let expected: Vec<BTreeMap<String, String>> = expected
            .iter()
            .map(|event| {
                event
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect()
            })
            .collect();
        assert_eq!(*events, expected);
    }
}
