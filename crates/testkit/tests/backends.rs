//! The clients against real backends in containers: a signal sent to each is found, and one
//! that was never sent is not (so each check is shown to fail without its signal).
//!
//! Images: the upstream ones, or `OTEL_TESTKIT_{JAEGER,VICTORIALOGS,PROMETHEUS}_IMAGE`. Without
//! an engine or an image a test is skipped with the reason; under `CI=true` it fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::{
    LogRecord, LogStore as _, Span, SpanKind, TraceStore as _, container, eventually, jaeger, otlp,
    prometheus, victorialogs,
};

/// A stored signal shows up within this; the backends here answer within a second.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long a signal that was never sent is looked for before the check counts as failed.
const ABSENT_DEADLINE: Duration = Duration::from_secs(1);

fn span(trace_id: &str, parent: Option<&Span>, service: &str, kind: SpanKind, name: &str) -> Span {
    Span {
        trace_id: trace_id.to_owned(),
        span_id: otlp::new_span_id(),
        parent_span_id: parent.map(|parent| parent.span_id.clone()),
        name: name.to_owned(),
        kind,
        service: service.to_owned(),
        attributes: BTreeMap::from([("test".to_owned(), "backends".to_owned())]),
    }
}

/// Two spans of two services, sent over OTLP/HTTP, come back as one trace in which the client
/// span descends from the server span.
#[tokio::test]
async fn jaeger_finds_a_two_span_trace() {
    let image = jaeger::image();
    if container::require_engine("jaeger_finds_a_two_span_trace", &[&image])
        .await
        .is_none()
    {
        return;
    }
    let running = container::start(&jaeger::spec(&image)).await.unwrap();
    let http = reqwest::Client::new();
    let trace_id = otlp::new_trace_id();
    let server = span(&trace_id, None, "front", SpanKind::Server, "GET /checkout");
    let client = span(&trace_id, Some(&server), "back", SpanKind::Client, "SELECT");
    let receiver = format!(
        "{}{}",
        running.url(jaeger::OTLP_HTTP_PORT),
        otlp::TRACES_PATH
    );
    let request = otlp::traces_request(&[server.clone(), client.clone()]).unwrap();
    let sent = Instant::now();
    otlp::send(&http, &receiver, &request).await.unwrap();

    let store = jaeger::Jaeger::new(http, running.url(jaeger::API_PORT));
    let chain = |trace_id: String| {
        let store = &store;
        move || {
            let trace_id = trace_id.clone();
            async move {
                let trace = store.trace(&trace_id).await?;
                let found_server = trace
                    .find("front", SpanKind::Server, "GET /checkout")
                    .with_context(|| format!("no server span; {trace}"))?;
                let found_client = trace
                    .find("back", SpanKind::Client, "SELECT")
                    .with_context(|| format!("no client span; {trace}"))?;
                anyhow::ensure!(
                    trace.descends_from(found_client, found_server),
                    "the client span does not descend from the server span; {trace}"
                );
                Ok(found_client.clone())
            }
        }
    };
    let found = eventually("trace in Jaeger", sent, DEADLINE, chain(trace_id.clone()))
        .await
        .unwrap();
    assert_eq!(found.value.span_id, client.span_id);
    assert_eq!(found.value.attributes["test"], "backends");
    eprintln!("trace visible after {:.3}s", found.after.as_secs_f64());

    let absent = eventually(
        "unsent trace",
        Instant::now(),
        ABSENT_DEADLINE,
        chain(otlp::new_trace_id()),
    )
    .await
    .unwrap_err();
    assert!(
        absent.last_seen.contains("no server span; no spans"),
        "{absent}"
    );
    running.stop().await.unwrap();
}

/// A log record sent to the OTLP endpoint is found by its trace id, with its service and body.
#[tokio::test]
async fn victorialogs_finds_a_record_by_trace_id() {
    let image = victorialogs::image();
    if container::require_engine("victorialogs_finds_a_record_by_trace_id", &[&image])
        .await
        .is_none()
    {
        return;
    }
    let running = container::start(&victorialogs::spec(&image)).await.unwrap();
    let http = reqwest::Client::new();
    let record = LogRecord {
        service: "front".to_owned(),
        trace_id: otlp::new_trace_id(),
        span_id: Some(otlp::new_span_id()),
        body: "order shipped".to_owned(),
        attributes: BTreeMap::from([("exception.type".to_owned(), "Timeout".to_owned())]),
    };
    let url = running.url(victorialogs::API_PORT);
    let request = otlp::logs_request(std::slice::from_ref(&record)).unwrap();
    let sent = Instant::now();
    otlp::send(
        &http,
        &format!("{url}{}", victorialogs::OTLP_LOGS_PATH),
        &request,
    )
    .await
    .unwrap();

    let store = victorialogs::VictoriaLogs::new(http, url);
    let find = |trace_id: String| {
        let store = &store;
        move || {
            let trace_id = trace_id.clone();
            async move {
                let records = store.records(&trace_id).await?;
                records
                    .into_iter()
                    .find(|found| found.service == "front")
                    .with_context(|| format!("no record of service front with trace_id {trace_id}"))
            }
        }
    };
    let found = eventually(
        "record in VictoriaLogs",
        sent,
        DEADLINE,
        find(record.trace_id.clone()),
    )
    .await
    .unwrap();
    // VictoriaLogs keeps more fields (the severity, resource attributes): the sent ones must be
    // among them.
    eprintln!("record visible after {:.3}s", found.after.as_secs_f64());
    let found = found.value;
    assert!(
        record
            .attributes
            .iter()
            .all(|(key, value)| found.attributes.get(key) == Some(value)),
        "{found:?}"
    );
    assert_eq!(
        LogRecord {
            attributes: BTreeMap::new(),
            ..found
        },
        LogRecord {
            attributes: BTreeMap::new(),
            ..record
        }
    );

    let absent = eventually(
        "unsent record",
        Instant::now(),
        ABSENT_DEADLINE,
        find(otlp::new_trace_id()),
    )
    .await
    .unwrap_err();
    assert!(
        absent.last_seen.contains("no record of service front"),
        "{absent}"
    );
    running.stop().await.unwrap();
}

/// Prometheus scrapes itself: `up` of its own job is 1, a job it does not have has no series,
/// and its own target is listed as up.
#[tokio::test]
async fn prometheus_answers_up_for_its_own_job() {
    let image = prometheus::image();
    if container::require_engine("prometheus_answers_up_for_its_own_job", &[&image])
        .await
        .is_none()
    {
        return;
    }
    let running = container::start(&prometheus::spec(&image)).await.unwrap();
    let client =
        prometheus::Prometheus::new(reqwest::Client::new(), running.url(prometheus::API_PORT))
            .unwrap();
    let started = Instant::now();
    let up = |job: &'static str| {
        let client = &client;
        move || async move {
            let query = format!(r#"up{{job="{job}"}}"#);
            let samples = client.query(&query).await?;
            anyhow::ensure!(
                samples.iter().any(|sample| sample.value == 1.0),
                "{query}: {samples:?}"
            );
            Ok(samples)
        }
    };
    let found = eventually(
        "Prometheus scraped itself",
        started,
        DEADLINE,
        up("prometheus"),
    )
    .await
    .unwrap();
    assert_eq!(found.value[0].labels["job"], "prometheus");
    assert_eq!(
        client.sum(r#"up{job="prometheus"}"#).await.unwrap(),
        Some(1.0)
    );
    let targets = client.targets(&[("job", "prometheus")]).await.unwrap();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(targets[0].health, "up", "{}", targets[0]);
    client.reload().await.unwrap();

    let absent = eventually(
        "a job Prometheus lacks",
        Instant::now(),
        ABSENT_DEADLINE,
        up("absent"),
    )
    .await
    .unwrap_err();
    assert!(
        absent.last_seen.contains(r#"up{job="absent"}: []"#),
        "{absent}"
    );
    assert_eq!(client.sum(r#"up{job="absent"}"#).await.unwrap(), None);
    running.stop().await.unwrap();
}
