//! OTLP requests that send [`Span`]s and [`LogRecord`]s to a backend's OTLP/HTTP receiver (for
//! tests of the backends themselves, and of this kit); feature `send`, on by default.
//!
//! Requests go as protobuf, the one encoding every OTLP/HTTP receiver takes (VictoriaLogs, for
//! one, refuses JSON).

use std::collections::BTreeMap;
use std::hash::{BuildHasher as _, Hasher as _, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue as Attribute, any_value,
};
use opentelemetry_proto::tonic::logs::v1 as logs;
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1 as trace;

use crate::model::{LogRecord, Span};

/// The path of the OTLP/HTTP traces receiver (on port 4318 by convention).
pub const TRACES_PATH: &str = "/v1/traces";
/// The path of the OTLP/HTTP logs receiver.
pub const LOGS_PATH: &str = "/v1/logs";

/// A fresh trace id: 32 hex digits.
pub fn new_trace_id() -> String {
    format!("{:016x}{:016x}", random(), random())
}

/// A fresh span id: 16 hex digits.
pub fn new_span_id() -> String {
    format!("{:016x}", random())
}

/// Random enough for ids: std's hasher keys are random per `RandomState`.
fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// An export request holding `spans`, one resource per service; every span starts now and
/// lasts a millisecond. Fails on an id that is not hex.
pub fn traces_request(spans: &[Span]) -> anyhow::Result<ExportTraceServiceRequest> {
    let now = unix_nanos();
    let resource_spans = by_service(spans, |span| &span.service)
        .into_iter()
        .map(|(service, spans)| {
            let spans = spans
                .into_iter()
                .map(|span| {
                    Ok(trace::Span {
                        trace_id: hex_bytes(&span.trace_id)?,
                        span_id: hex_bytes(&span.span_id)?,
                        parent_span_id: hex_bytes(span.parent_span_id.as_deref().unwrap_or(""))?,
                        name: span.name.clone(),
                        kind: i32::from(span.kind.number()),
                        start_time_unix_nano: now,
                        end_time_unix_nano: now + 1_000_000,
                        attributes: attributes(&span.attributes),
                        ..Default::default()
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(trace::ResourceSpans {
                resource: Some(resource(service)),
                scope_spans: vec![trace::ScopeSpans {
                    scope: Some(scope()),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ExportTraceServiceRequest { resource_spans })
}

/// An export request holding `records` (severity INFO, time now), one resource per service.
/// Fails on an id that is not hex.
pub fn logs_request(records: &[LogRecord]) -> anyhow::Result<ExportLogsServiceRequest> {
    let now = unix_nanos();
    let resource_logs = by_service(records, |record| &record.service)
        .into_iter()
        .map(|(service, records)| {
            let log_records = records
                .into_iter()
                .map(|record| {
                    Ok(logs::LogRecord {
                        time_unix_nano: now,
                        observed_time_unix_nano: now,
                        severity_number: logs::SeverityNumber::Info.into(),
                        severity_text: "INFO".to_owned(),
                        body: Some(text(&record.body)),
                        trace_id: hex_bytes(&record.trace_id)?,
                        span_id: hex_bytes(record.span_id.as_deref().unwrap_or(""))?,
                        attributes: attributes(&record.attributes),
                        ..Default::default()
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(logs::ResourceLogs {
                resource: Some(resource(service)),
                scope_logs: vec![logs::ScopeLogs {
                    scope: Some(scope()),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ExportLogsServiceRequest { resource_logs })
}

/// POSTs an export request as protobuf to a receiver (`url` is the full path, e.g. ending in
/// [`TRACES_PATH`]) and fails unless it is accepted.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    request: &impl prost::Message,
) -> anyhow::Result<()> {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "POST {url}: {status}: {}",
        crate::http::excerpt(&body)
    );
    Ok(())
}

fn by_service<T>(items: &[T], service: impl Fn(&T) -> &String) -> BTreeMap<&str, Vec<&T>> {
    let mut groups: BTreeMap<&str, Vec<&T>> = BTreeMap::new();
    for item in items {
        groups.entry(service(item).as_str()).or_default().push(item);
    }
    groups
}

fn text(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.to_owned())),
    }
}

fn resource(service: &str) -> OtlpResource {
    OtlpResource {
        attributes: attributes(&BTreeMap::from([(
            "service.name".to_owned(),
            service.to_owned(),
        )])),
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: env!("CARGO_PKG_NAME").to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

fn attributes(attributes: &BTreeMap<String, String>) -> Vec<Attribute> {
    attributes
        .iter()
        .map(|(key, value)| Attribute {
            key: key.clone(),
            value: Some(text(value)),
            ..Default::default()
        })
        .collect()
}

/// Hex digits as bytes; "" is no bytes (an absent id).
fn hex_bytes(id: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        id.len().is_multiple_of(2),
        "id {id:?} is not hex: odd length"
    );
    (0..id.len())
        .step_by(2)
        .map(|at| {
            id.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .with_context(|| format!("id {id:?} is not hex"))
        })
        .collect()
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|time| u64::try_from(time.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SpanKind;
    /// A request built from spans holds their ids as bytes, grouped by service.
    #[test]
    fn a_traces_request_holds_the_spans() {
        let trace_id = new_trace_id();
        let root = Span {
            trace_id: trace_id.clone(),
            span_id: new_span_id(),
            parent_span_id: None,
            name: "GET /".to_owned(),
            kind: SpanKind::Server,
            service: "front".to_owned(),
            attributes: BTreeMap::from([("http.route".to_owned(), "/".to_owned())]),
        };
        let child = Span {
            span_id: "00f067aa0ba902b7".to_owned(),
            parent_span_id: Some(root.span_id.clone()),
            name: "SELECT".to_owned(),
            kind: SpanKind::Client,
            service: "back".to_owned(),
            attributes: BTreeMap::new(),
            ..root.clone()
        };
        assert_eq!(trace_id.len(), 32);
        assert_ne!(root.span_id, new_span_id());
        let request = traces_request(&[root.clone(), child]).unwrap();
        let services: Vec<_> = request
            .resource_spans
            .iter()
            .map(|resource| &resource.resource.as_ref().unwrap().attributes[0])
            .map(|service| service.value.clone().unwrap().value.unwrap())
            .collect();
        assert_eq!(
            services,
            ["back", "front"].map(|name| any_value::Value::StringValue(name.to_owned()))
        );
        let back = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            back.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(back.parent_span_id, hex_bytes(&root.span_id).unwrap());
        assert_eq!(back.kind, 3);
        let front = &request.resource_spans[1].scope_spans[0].spans[0];
        assert!(front.parent_span_id.is_empty());
        assert_eq!(front.attributes[0].key, "http.route");
    }

    /// A log request carries the record's ids and body.
    #[test]
    fn a_logs_request_holds_the_records() {
        let record = LogRecord {
            service: "front".to_owned(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            span_id: None,
            body: "hello".to_owned(),
            attributes: BTreeMap::new(),
        };
        let request = logs_request(std::slice::from_ref(&record)).unwrap();
        let sent = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(sent.trace_id.len(), 16);
        assert!(sent.span_id.is_empty());
        assert_eq!(sent.body, Some(text("hello")));
    }

    /// Ids that are not hex are refused, not sent as garbage.
    #[test]
    fn non_hex_ids_are_refused() {
        assert!(hex_bytes("abc").is_err());
        assert!(hex_bytes("zz").is_err());
        assert_eq!(hex_bytes("").unwrap(), Vec::<u8>::new());
    }
}
