//! Small typed clients for the backends' query APIs, behind the two traits the checks use.
//!
//! Each backend is an adapter: it knows its own API (paths, response shape, readiness path and
//! the port its API listens on inside the container) and turns answers into [`Span`]s and
//! [`LogRecord`]s. Which backend runs, its image and its published ports come from compose/.

pub mod jaeger;
pub mod loki;
mod otlp;
pub mod prometheus;
pub mod tempo;
pub mod victorialogs;

/// A span as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: SpanKind,
    /// The `service.name` resource attribute.
    pub service: String,
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

/// A log record as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The `service.name` resource attribute ("" when the backend has none).
    pub service: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    pub body: String,
}

/// Where traces are queried.
#[async_trait::async_trait]
pub trait TraceStore: Send + Sync {
    /// The spans of trace `trace_id` (32 hex digits) stored so far; empty when none are.
    async fn spans(&self, trace_id: &str) -> anyhow::Result<Vec<Span>>;
}

/// Where logs are queried.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync {
    /// The log records (of any service) that carry `trace_id`.
    async fn records(&self, trace_id: &str) -> anyhow::Result<Vec<LogRecord>>;
}

/// Sends `request` and returns the body of a successful answer; `None` for a 404 (nothing stored
/// under that id yet); otherwise an error naming `what` with an excerpt of the body.
async fn fetch(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = response
        .text()
        .await
        .with_context(|| format!("{what}: read the body"))?;
    anyhow::ensure!(status.is_success(), "{what}: {status}: {}", excerpt(&body));
    Ok(Some(body))
}

/// A short, single-line excerpt of a response body for error messages.
fn excerpt(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
