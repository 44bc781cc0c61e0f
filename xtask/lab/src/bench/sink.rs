//! OTLP/HTTP endpoints for the api to export to: a live sink that counts every span and log
//! record, one that refuses connections, and one that accepts and never answers.
//!
//! A sink of our own rather than a collector: it starts in milliseconds, and counting exactly
//! what arrived is the point (sent == received). It shares the load core with wrk, so it must be
//! cheap: it decodes only the few fields it counts (span names, log bodies) and lets prost skip
//! the rest; decoding whole messages (opentelemetry-proto's types) cost about 8 µs per item,
//! enough to stall wrk.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use prost::Message as _;

/// What arrived so far.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Spans by name.
    pub spans: BTreeMap<String, u64>,
    /// Log records by body.
    pub logs: BTreeMap<String, u64>,
    /// Requests that did not decode as OTLP protobuf.
    pub undecodable: u64,
}

impl Tally {
    pub fn spans_named(&self, name: &str) -> u64 {
        self.spans.get(name).copied().unwrap_or(0)
    }

    pub fn total_spans(&self) -> u64 {
        self.spans.values().sum()
    }

    pub fn total_logs(&self) -> u64 {
        self.logs.values().sum()
    }
}

type Shared = Arc<Mutex<Tally>>;

/// Reading the tally costs a lock: poll it often, so waits end close to the export.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A live OTLP/HTTP receiver on 127.0.0.1; stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    tally: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Self> {
        let tally = Shared::default();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/logs", post(logs))
            // A batch of 512 spans is a few hundred KiB; axum's default limit is 2 MiB.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(tally.clone());
        let (addr, server) = serve_on_loopback("the OTLP sink", app).await?;
        Ok(Self {
            addr,
            tally,
            server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn tally(&self) -> Tally {
        self.tally.lock().expect("no panic while counting").clone()
    }

    /// What arrived, once the run is over; fails when something arrived that was not OTLP
    /// protobuf (then the counts would be short for the wrong reason).
    pub fn received(&self) -> anyhow::Result<Tally> {
        let tally = self.tally();
        anyhow::ensure!(
            tally.undecodable == 0,
            "the OTLP sink could not read {} export requests: is OTEL_EXPORTER_OTLP_PROTOCOL http/protobuf in compose/compose.yaml?",
            tally.undecodable
        );
        Ok(tally)
    }

    /// Waits until `done(tally)` holds, polling, for at most `deadline`; returns the last tally
    /// either way (the caller reports what was missing).
    pub async fn until(&self, deadline: Duration, done: impl Fn(&Tally) -> bool) -> Tally {
        let probe = || async {
            let tally = self.tally();
            anyhow::ensure!(
                done(&tally),
                "{} spans and {} log records so far",
                tally.total_spans(),
                tally.total_logs()
            );
            Ok(tally)
        };
        let what = "the OTLP sink's tally";
        match otel_testkit::eventually_every(POLL_EVERY, what, Instant::now(), deadline, probe)
            .await
        {
            Ok(visible) => visible.value,
            Err(_) => self.tally(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An empty protobuf message is a valid `Export*ServiceResponse`: full success.
fn accepted() -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        Vec::new(),
    )
}

async fn traces(
    State(tally): State<Shared>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    let decoded = Export::decode(body);
    let mut tally = tally.lock().expect("no panic while counting");
    match decoded {
        Ok(export) => export
            .items()
            .for_each(|span| count(&mut tally.spans, &span.field_5)),
        Err(_) => tally.undecodable += 1,
    }
    accepted()
}

async fn logs(
    State(tally): State<Shared>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    let bodies = Export::decode(body).and_then(|export| {
        export
            .items()
            .map(|record| AnyValue::decode(record.field_5.clone()))
            .collect::<Result<Vec<_>, _>>()
    });
    let mut tally = tally.lock().expect("no panic while counting");
    match bodies {
        Ok(bodies) => bodies
            .iter()
            .for_each(|body| count(&mut tally.logs, &body.string_value)),
        Err(_) => tally.undecodable += 1,
    }
    accepted()
}

fn count(counts: &mut BTreeMap<String, u64>, key: &[u8]) {
    let key = String::from_utf8_lossy(key);
    match counts.get_mut(key.as_ref()) {
        Some(count) => *count += 1,
        None => {
            counts.insert(key.into_owned(), 1);
        }
    }
}

/// `ExportTraceServiceRequest` and `ExportLogsServiceRequest` as far as the sink reads them. Both
/// have the same shape down to their items, `resource_*`(1) > `scope_*`(2) > spans or log
/// records(2), and field 5 of an item is what is counted: `Span.name`, or `LogRecord.body` (an
/// `AnyValue`). Every other field is skipped by prost without being decoded; `Bytes` fields are
/// slices of the request body, not copies.
#[derive(Clone, PartialEq, prost::Message)]
struct Export {
    #[prost(message, repeated, tag = "1")]
    resources: Vec<Resource>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Resource {
    #[prost(message, repeated, tag = "2")]
    scopes: Vec<Scope>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Scope {
    #[prost(message, repeated, tag = "2")]
    items: Vec<Item>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Item {
    #[prost(bytes = "bytes", tag = "5")]
    field_5: Bytes,
}

/// `AnyValue` with only its `string_value`(1): log bodies are strings.
#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(bytes = "bytes", tag = "1")]
    string_value: Bytes,
}

impl Export {
    fn items(&self) -> impl Iterator<Item = &Item> {
        self.resources
            .iter()
            .flat_map(|resource| &resource.scopes)
            .flat_map(|scope| &scope.items)
    }
}

/// An address where nothing listens: every export attempt is refused at once. (Bound, read and
/// released; another process could take it meanwhile, which would show as received items.)
pub fn refusing() -> anyhow::Result<SocketAddr> {
    super::app::free_addr()
}

/// A TCP endpoint that accepts connections, reads nothing and never answers: the exporter waits
/// for its timeout on every batch. Stops (closing every held connection) when dropped.
pub struct Hung {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Hung {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the hung endpoint")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on a free 127.0.0.1 port in the background (the bench's OTLP sink). Returns the
/// address and the task; abort the task to stop it.
async fn serve_on_loopback(
    what: &str,
    app: axum::Router,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("bind {what}"))?;
    let address = listener.local_addr()?;
    let what = what.to_owned();
    let server = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("{what} stopped: {err}");
        }
    });
    Ok((address, server))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        collector::{logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest},
        common::v1::{AnyValue, InstrumentationScope, any_value::Value},
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };
    use prost::Message as _;

    fn span(name: &str) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            name: name.to_owned(),
            kind: 2,
            start_time_unix_nano: 1,
            flags: 1,
            ..Span::default()
        }
    }

    /// Span names are found in requests as opentelemetry-proto encodes them, past fields of
    /// every wire type, in repeated messages at each level.
    #[test]
    fn span_names_are_counted() {
        let resource = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ampel-api".into(),
                    ..InstrumentationScope::default()
                }),
                spans: vec![span("GET /api/repositories/{id}"), span("db.query")],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![resource.clone(), resource],
        }
        .encode_to_vec();
        let export = super::Export::decode(request.as_slice()).unwrap();
        let names: Vec<_> = export.items().map(|item| &item.field_5[..]).collect();
        assert_eq!(
            names,
            [
                b"GET /api/repositories/{id}".as_slice(),
                b"db.query",
                b"GET /api/repositories/{id}",
                b"db.query"
            ]
        );
        assert!(super::Export::decode(&request[..request.len() - 1]).is_err());
    }

    /// A log record's body is the string inside its AnyValue.
    #[test]
    fn log_bodies_are_found() {
        let record = LogRecord {
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue("request finished".into())),
            }),
            ..LogRecord::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
        .encode_to_vec();
        let export = super::Export::decode(request.as_slice()).unwrap();
        let item = export.items().next().unwrap();
        let body = super::AnyValue::decode(item.field_5.clone()).unwrap();
        assert_eq!(&body.string_value[..], b"request finished");
    }
}
