//! A local OTLP/HTTP receiver that counts what arrives: point an exporter (an app's SDK, a
//! collector) at [`Sink::traces_url`] and [`Sink::logs_url`], then read back how many spans and
//! log records came, by name, by body and by id. Feature `sink` (on by default).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use otel_testkit::sink::Sink;
//! let sink = Sink::start().await?;
//! // ... export to sink.traces_url() and sink.logs_url() ...
//! let received = sink.received()?;
//! println!("{} spans, {} named GET /", received.total_spans(), received.spans_named("GET /"));
//! # Ok(()) }
//! ```
//!
//! Counting, not storing: a sink may share a core with a load generator, so it decodes only the
//! fields it keeps (a span's name and ids, a log record's body and ids) and lets prost skip the
//! rest; decoding whole messages (opentelemetry-proto's types) costs microseconds per item,
//! enough to slow what it measures. Requests must be protobuf (`http/protobuf`), the encoding
//! every OTLP/HTTP exporter can send.
//!
//! [`Sink::refuse`] makes it answer 503 (OTLP's "retry later") to simulate an outage, and
//! [`Hung`] is an endpoint that accepts connections and never answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use prost::Message as _;

use crate::otlp::{LOGS_PATH, TRACES_PATH};

/// The ids of one span or log record as they arrived; all zeros for a log record outside any
/// trace (OTLP sends no ids then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ids {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl Ids {
    /// The trace id as 32 lowercase hex digits, as the kit's [`crate::Span`] holds it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What arrived so far. Every item that arrived is counted, repeats included: an exporter that
/// retries a batch the sink had accepted shows as a span id received twice.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Spans by name.
    pub spans: BTreeMap<String, u64>,
    /// Log records by body (a body that is not a string counts under "").
    pub logs: BTreeMap<String, u64>,
    /// The ids of every span, in the order they arrived.
    pub span_ids: Vec<Ids>,
    /// The ids of every log record, in the order they arrived.
    pub log_ids: Vec<Ids>,
    /// Export requests that did not decode as OTLP protobuf (nothing of them is counted).
    pub undecodable: u64,
    /// Export requests answered 503 while [`Sink::refuse`] was on (nothing of them is counted).
    pub refused: u64,
}

impl Received {
    pub fn spans_named(&self, name: &str) -> u64 {
        self.spans.get(name).copied().unwrap_or(0)
    }

    pub fn total_spans(&self) -> u64 {
        self.spans.values().sum()
    }

    pub fn total_logs(&self) -> u64 {
        self.logs.values().sum()
    }

    /// How many times each span id (16 hex digits) arrived: 1 is once, more is a duplicate, a
    /// sent id missing from the map was lost.
    pub fn spans_by_id(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for ids in &self.span_ids {
            *counts.entry(ids.span_id_hex()).or_default() += 1;
        }
        counts
    }
}

/// Reading what arrived costs a lock: poll it often, so waits end close to the export.
const POLL_EVERY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Shared {
    received: Mutex<Received>,
    refusing: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().expect("no panic while counting")
    }
}

/// A live OTLP/HTTP receiver on a free 127.0.0.1 port; stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Binds and serves in the background of the current Tokio runtime.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::<Shared>::default();
        let app = Router::new()
            .route(TRACES_PATH, post(traces))
            .route(LOGS_PATH, post(logs))
            // A batch of 512 spans is a few hundred KiB; axum's default limit is 2 MiB.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the OTLP sink")?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("the OTLP sink stopped: {err}");
            }
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`, what `OTEL_EXPORTER_OTLP_ENDPOINT` takes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The traces endpoint, what `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` takes.
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.base_url())
    }

    /// The logs endpoint, what `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` takes.
    pub fn logs_url(&self) -> String {
        format!("{}{LOGS_PATH}", self.base_url())
    }

    /// While `on`, every export request is answered 503 and counted in
    /// [`Received::refused`] only: a backend that is down but reachable.
    pub fn refuse(&self, on: bool) {
        self.shared.refusing.store(on, Ordering::Relaxed);
    }

    /// What arrived so far; fails when a request arrived that was not OTLP protobuf (then the
    /// counts would be short for the wrong reason).
    pub fn received(&self) -> anyhow::Result<Received> {
        readable(self.shared.lock().clone())
    }

    /// Waits until `done` holds for what arrived, polling for at most `deadline`, and returns
    /// what arrived then; on time-out the error says how much had arrived.
    pub async fn until(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Received> {
        let probe = || async {
            let received = self.shared.lock();
            anyhow::ensure!(
                done(&received),
                "{} spans ({:?}) and {} log records so far",
                received.total_spans(),
                received.spans,
                received.total_logs()
            );
            Ok(received.clone())
        };
        let arrived =
            crate::eventually_every(POLL_EVERY, what, Instant::now(), deadline, probe).await?;
        readable(arrived.value)
    }
}

fn readable(received: Received) -> anyhow::Result<Received> {
    anyhow::ensure!(
        received.undecodable == 0,
        "the OTLP sink could not read {} export requests: is the exporter's protocol http/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL)?",
        received.undecodable
    );
    Ok(received)
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Answer = (StatusCode, [(&'static str, &'static str); 1], Vec<u8>);

async fn traces(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let spans = decode::<SpanItem>(body, |span| {
        Some((Ids::from_fields(&span.trace_id, &span.span_id)?, span.name))
    });
    answer(&shared, spans, |received| {
        (&mut received.spans, &mut received.span_ids)
    })
}

async fn logs(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let records = decode::<LogItem>(body, |record| {
        let ids = Ids::from_fields(&record.trace_id, &record.span_id)?;
        Some((ids, record.body.unwrap_or_default().string_value))
    });
    answer(&shared, records, |received| {
        (&mut received.logs, &mut received.log_ids)
    })
}

/// Counts `items` (keyed by name or body) into the maps `into` picks, or the request as
/// undecodable (`None`, answered 400 as OTLP says); then answers. An empty protobuf message is
/// a valid `Export*ServiceResponse`: full success.
fn answer(
    shared: &Shared,
    items: Option<Vec<(Ids, Bytes)>>,
    into: impl FnOnce(&mut Received) -> (&mut BTreeMap<String, u64>, &mut Vec<Ids>),
) -> Answer {
    let refusing = shared.refusing.load(Ordering::Relaxed);
    let mut received = shared.lock();
    let status = if refusing {
        received.refused += 1;
        StatusCode::SERVICE_UNAVAILABLE
    } else if let Some(items) = items {
        let (counts, ids) = into(&mut received);
        for (item_ids, key) in items {
            let key = String::from_utf8_lossy(&key);
            match counts.get_mut(key.as_ref()) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(key.into_owned(), 1);
                }
            }
            ids.push(item_ids);
        }
        StatusCode::OK
    } else {
        received.undecodable += 1;
        StatusCode::BAD_REQUEST
    };
    let protobuf = [("content-type", "application/x-protobuf")];
    (status, protobuf, Vec::new())
}

/// Every item of an export request as `T`, each read by `read`; `None` when any part is not
/// OTLP.
fn decode<T: prost::Message + Default>(
    body: Bytes,
    read: impl Fn(T) -> Option<(Ids, Bytes)>,
) -> Option<Vec<(Ids, Bytes)>> {
    let export = Export::decode(body).ok()?;
    export
        .resources
        .iter()
        .flat_map(|resource| &resource.scopes)
        .flat_map(|scope| &scope.items)
        .map(|item| read(T::decode(item.clone()).ok()?))
        .collect()
}

/// `ExportTraceServiceRequest` and `ExportLogsServiceRequest` as far as the sink reads them. Both
/// have the same shape down to their items, `resource_*`(1) > `scope_*`(2) > spans or log
/// records(2); an item is then read as a [`SpanItem`] or a [`LogItem`]. prost skips every field
/// not declared without decoding it; `Bytes` fields are slices of the request body, not copies.
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
    #[prost(bytes = "bytes", repeated, tag = "2")]
    items: Vec<Bytes>,
}

/// `Span`: its ids (1, 2) and name (5).
#[derive(Clone, PartialEq, prost::Message)]
struct SpanItem {
    #[prost(bytes = "bytes", tag = "1")]
    trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    span_id: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    name: Bytes,
}

/// `LogRecord`: its body (5) and ids (9, 10).
#[derive(Clone, PartialEq, prost::Message)]
struct LogItem {
    #[prost(message, optional, tag = "5")]
    body: Option<AnyValue>,
    #[prost(bytes = "bytes", tag = "9")]
    trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "10")]
    span_id: Bytes,
}

/// `AnyValue` with only its `string_value`(1): log bodies are strings.
#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(bytes = "bytes", tag = "1")]
    string_value: Bytes,
}

impl Ids {
    /// An absent id (no bytes) is all zeros; `None` for one of the wrong length, which is not
    /// OTLP.
    fn from_fields(trace_id: &Bytes, span_id: &Bytes) -> Option<Self> {
        fn id<const N: usize>(bytes: &Bytes) -> Option<[u8; N]> {
            if bytes.is_empty() {
                return Some([0; N]);
            }
            bytes[..].try_into().ok()
        }
        Some(Self {
            trace_id: id(trace_id)?,
            span_id: id(span_id)?,
        })
    }
}

/// A TCP endpoint on a free 127.0.0.1 port that accepts connections, reads nothing and never
/// answers: an exporter pointed at it waits for its timeout on every batch. Stops, closing
/// every held connection, when dropped.
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

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use prost::Message as _;

    use super::{Hung, Sink};
    use crate::model::{LogRecord, Span, SpanKind};
    use crate::otlp::{self, logs_request, new_span_id, new_trace_id, traces_request};

    fn span(trace_id: &str, name: &str) -> Span {
        Span {
            trace_id: trace_id.to_owned(),
            span_id: new_span_id(),
            parent_span_id: None,
            name: name.to_owned(),
            kind: SpanKind::Server,
            service: "shop".to_owned(),
            attributes: BTreeMap::from([("http.route".to_owned(), "/".to_owned())]),
        }
    }

    /// Spans and log records sent with the kit's `otlp` arrive counted by name, body and id;
    /// a repeated batch counts twice; a refusing sink answers 503 and counts nothing; what is
    /// not protobuf makes `received` fail.
    #[tokio::test]
    async fn what_is_sent_is_counted() {
        let sink = Sink::start().await.unwrap();
        let http = reqwest::Client::new();
        let trace_id = new_trace_id();
        let mut query = span(&trace_id, "db.query");
        query.service = "db".to_owned();
        // Two services: two resources in the request, each walked.
        let spans = [span(&trace_id, "GET /"), query];
        let traces = traces_request(&spans).unwrap();
        let record = LogRecord {
            service: "shop".to_owned(),
            trace_id: trace_id.clone(),
            span_id: Some(spans[0].span_id.clone()),
            body: "request finished".to_owned(),
            attributes: BTreeMap::new(),
        };
        let untraced = LogRecord {
            trace_id: String::new(),
            span_id: None,
            ..record.clone()
        };
        otlp::send(&http, &sink.traces_url(), &traces)
            .await
            .unwrap();
        otlp::send(&http, &sink.traces_url(), &traces)
            .await
            .unwrap();
        let logs = logs_request(&[record, untraced]).unwrap();
        otlp::send(&http, &sink.logs_url(), &logs).await.unwrap();

        let received = sink
            .until("four spans", Duration::from_secs(5), |received| {
                received.total_spans() == 4
            })
            .await
            .unwrap();
        assert_eq!(received.spans_named("GET /"), 2);
        assert_eq!(received.spans_named("db.query"), 2);
        assert_eq!(received.spans_named("POST /"), 0);
        let by_id = received.spans_by_id();
        assert_eq!(by_id.len(), 2);
        assert!(spans.iter().all(|span| by_id[&span.span_id] == 2));
        assert!(
            received
                .span_ids
                .iter()
                .all(|ids| ids.trace_id_hex() == trace_id)
        );
        assert_eq!(received.logs["request finished"], 2);
        assert_eq!(received.log_ids[0].span_id_hex(), spans[0].span_id);
        assert_eq!(received.log_ids[1], super::Ids::default());

        sink.refuse(true);
        let refused = otlp::send(&http, &sink.traces_url(), &traces).await;
        assert!(refused.unwrap_err().to_string().contains("503"));
        sink.refuse(false);
        let received = sink.received().unwrap();
        assert_eq!((received.total_spans(), received.refused), (4, 1));

        let timed_out = sink
            .until("five spans", Duration::from_millis(50), |received| {
                received.total_spans() == 5
            })
            .await
            .unwrap_err();
        assert!(timed_out.to_string().contains("4 spans"), "{timed_out}");

        let mut truncated = traces.encode_to_vec();
        truncated.pop();
        let garbage = http
            .post(sink.traces_url())
            .body(truncated)
            .send()
            .await
            .unwrap();
        assert_eq!(garbage.status(), reqwest::StatusCode::BAD_REQUEST);
        assert!(sink.received().is_err());
    }

    /// A span id of the wrong length is not OTLP: the request counts as undecodable.
    #[test]
    fn ids_of_the_wrong_length_are_refused() {
        let span = |span_id: Vec<u8>| super::SpanItem {
            trace_id: vec![1; 16].into(),
            span_id: span_id.into(),
            name: "GET /".into(),
        };
        let ids = |span: super::SpanItem| super::Ids::from_fields(&span.trace_id, &span.span_id);
        assert!(ids(span(vec![2; 7])).is_none());
        assert!(ids(span(vec![2; 8])).is_some());
        assert_eq!(ids(span(Vec::new())).unwrap().span_id, [0; 8]);
    }

    /// The hung endpoint takes a connection and never answers.
    #[tokio::test]
    async fn the_hung_endpoint_never_answers() {
        let hung = Hung::start().await.unwrap();
        let request = reqwest::Client::new()
            .post(format!("{}/v1/traces", hung.base_url()))
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        assert!(request.unwrap_err().is_timeout());
    }
}
