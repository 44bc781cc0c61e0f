//! What the backends hold, as the checks need it: spans grouped into a [`Trace`], log records,
//! metric samples; and the two traits a trace or log backend's client implements, so a check
//! is written once whichever backend runs.

use std::collections::BTreeMap;
use std::fmt;

/// A span. Ids are lowercase hex, whatever spelling the backend answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    /// The `service.name` resource attribute ("" when the span has none).
    pub service: String,
    /// The span's attributes with scalar values, each written as text (`true`, `200`, `0.5`).
    pub attributes: BTreeMap<String, String>,
}

/// OTLP's span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// OTLP's number for the kind.
    pub fn number(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::Internal => 1,
            Self::Server => 2,
            Self::Client => 3,
            Self::Producer => 4,
            Self::Consumer => 5,
        }
    }

    /// The kind of OTLP's number; unknown numbers are `Unspecified`.
    pub fn from_number(number: u64) -> Self {
        match number {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }
}

/// The spans of one trace stored so far (possibly none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub spans: Vec<Span>,
}

impl Trace {
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The first span of `service` with that kind and name.
    pub fn find(&self, service: &str, kind: SpanKind, name: &str) -> Option<&Span> {
        self.spans
            .iter()
            .find(|span| span.service == service && span.kind == kind && span.name == name)
    }

    /// Whether `span`'s chain of parents, within this trace, reaches `ancestor`.
    pub fn descends_from(&self, span: &Span, ancestor: &Span) -> bool {
        let mut current = span;
        // Bounded by the span count: a malformed trace with a parent cycle must not hang a check.
        for _ in 0..=self.spans.len() {
            let Some(parent) = current.parent_span_id.as_deref() else {
                return false;
            };
            if parent == ancestor.span_id {
                return true;
            }
            let Some(next) = self.spans.iter().find(|span| span.span_id == parent) else {
                return false;
            };
            current = next;
        }
        false
    }
}

/// `N spans: service:Kind:name, …`, for messages about what a trace holds instead.
impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.spans.is_empty() {
            return write!(f, "no spans");
        }
        write!(f, "{} spans: ", self.spans.len())?;
        for (index, span) in self.spans.iter().enumerate() {
            let comma = if index == 0 { "" } else { ", " };
            write!(f, "{comma}{}:{:?}:{}", span.service, span.kind, span.name)?;
        }
        Ok(())
    }
}

/// A log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The `service.name` resource attribute ("" when the backend has none).
    pub service: String,
    /// 32 hex digits ("" when the record carries none).
    pub trace_id: String,
    /// 16 hex digits, when the backend keeps it.
    pub span_id: Option<String>,
    pub body: String,
    /// The record's attributes (`exception.type`, say) under the names the backend gives them
    /// (Loki: `exception_type`); read one with [`LogRecord::attribute`]. A backend may add its
    /// own fields (resource attributes, the severity), so a check looks for the ones it needs
    /// rather than comparing all.
    pub attributes: BTreeMap<String, String>,
}

impl LogRecord {
    /// The attribute named `key` by OpenTelemetry (`exception.type`), under that name
    /// (VictoriaLogs keeps it) or the one Loki stores it as, every character outside
    /// `[A-Za-z0-9_]` an underscore (`exception_type`, Prometheus' label rule), so a check reads
    /// the same on every backend.
    #[must_use]
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .get(key)
            .or_else(|| {
                let label: String = key
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                self.attributes.get(&label)
            })
            .map(String::as_str)
    }
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included when the query keeps it.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Where traces are queried.
#[async_trait::async_trait]
pub trait TraceStore: Send + Sync {
    /// The spans of trace `trace_id` (32 hex digits) stored so far; empty when none are.
    async fn trace(&self, trace_id: &str) -> anyhow::Result<Trace>;
}

/// Where logs are queried.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync {
    /// The log records (of any service) that carry `trace_id`.
    async fn records(&self, trace_id: &str) -> anyhow::Result<Vec<LogRecord>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, kind: SpanKind, name: &str) -> Span {
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.map(str::to_owned),
            name: name.to_owned(),
            kind,
            service: "shop".to_owned(),
            attributes: BTreeMap::new(),
        }
    }

    fn trace() -> Trace {
        Trace {
            spans: vec![
                span("a1", None, SpanKind::Server, "GET /"),
                span("a2", Some("a1"), SpanKind::Internal, "render"),
                span("a3", Some("a2"), SpanKind::Client, "SELECT"),
                span("b1", Some("zz"), SpanKind::Client, "orphan"),
            ],
        }
    }

    /// `find` matches service, kind and name together.
    #[test]
    fn finds_by_service_kind_and_name() {
        let trace = trace();
        assert_eq!(
            trace
                .find("shop", SpanKind::Client, "SELECT")
                .unwrap()
                .span_id,
            "a3"
        );
        assert!(trace.find("shop", SpanKind::Server, "SELECT").is_none());
        assert!(trace.find("other", SpanKind::Client, "SELECT").is_none());
    }

    /// Descent follows parents through the trace; a lost parent ends the chain.
    #[test]
    fn descent_follows_the_parent_chain() {
        let trace = trace();
        let [root, middle, leaf, orphan] = [0, 1, 2, 3].map(|index| &trace.spans[index]);
        assert!(trace.descends_from(leaf, root));
        assert!(trace.descends_from(middle, root));
        assert!(!trace.descends_from(root, leaf));
        assert!(!trace.descends_from(orphan, root));
        assert!(!trace.descends_from(root, root));
    }

    /// A parent cycle ends instead of looping.
    #[test]
    fn a_parent_cycle_ends() {
        let trace = Trace {
            spans: vec![
                span("c1", Some("c2"), SpanKind::Internal, "one"),
                span("c2", Some("c1"), SpanKind::Internal, "two"),
                span("x", None, SpanKind::Internal, "elsewhere"),
            ],
        };
        assert!(!trace.descends_from(&trace.spans[0], &trace.spans[2]));
    }

    fn record(attributes: &[(&str, &str)]) -> LogRecord {
        LogRecord {
            service: "shop".to_owned(),
            trace_id: String::new(),
            span_id: None,
            body: "failed".to_owned(),
            attributes: attributes
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// An attribute reads the same whether the backend kept its dotted name or underscored it.
    #[test]
    fn an_attribute_reads_under_either_name() {
        let key = "exception.type";
        assert_eq!(
            record(&[("exception.type", "Timeout")]).attribute(key),
            Some("Timeout")
        );
        assert_eq!(
            record(&[("exception_type", "Timeout")]).attribute(key),
            Some("Timeout")
        );
        assert_eq!(
            record(&[("http_response_status_code", "500")]).attribute("http.response.status-code"),
            Some("500")
        );
        assert_eq!(record(&[("exception_message", "x")]).attribute(key), None);
        assert_eq!(record(&[("exceptionXtype", "x")]).attribute(key), None);
    }

    /// The summary names each span.
    #[test]
    fn displays_its_spans() {
        assert_eq!(Trace::default().to_string(), "no spans");
        let trace = Trace {
            spans: trace().spans[..2].to_vec(),
        };
        assert_eq!(
            trace.to_string(),
            "2 spans: shop:Server:GET /, shop:Internal:render"
        );
    }
}
