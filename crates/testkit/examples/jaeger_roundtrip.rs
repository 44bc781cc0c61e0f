//! Starts Jaeger, sends it one span over OTLP/HTTP, finds the span through the query API and
//! prints how long it took to become visible.
//!
//! ```text
//! DOCKER_HOST=unix:///run/podman/podman.sock cargo run -p otel-testkit --example jaeger_roundtrip
//! ```
//! `OTEL_TESTKIT_JAEGER_IMAGE` picks another image than the upstream one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::{Span, SpanKind, TraceStore as _, container, eventually, jaeger, otlp};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let image = jaeger::image();
    let started = Instant::now();
    let jaeger_container = container::start(&jaeger::spec(&image))
        .await
        .context("start Jaeger")?;
    println!("{image} ready in {:.1}s", started.elapsed().as_secs_f64());

    let http = reqwest::Client::new();
    let span = Span {
        trace_id: otlp::new_trace_id(),
        span_id: otlp::new_span_id(),
        parent_span_id: None,
        name: "GET /hello".to_owned(),
        kind: SpanKind::Server,
        service: "roundtrip".to_owned(),
        attributes: BTreeMap::new(),
    };
    let receiver = format!(
        "{}{}",
        jaeger_container.url(jaeger::OTLP_HTTP_PORT),
        otlp::TRACES_PATH
    );
    let sent = Instant::now();
    let request = otlp::traces_request(std::slice::from_ref(&span))?;
    otlp::send(&http, &receiver, &request).await?;

    let store = jaeger::Jaeger::new(http, jaeger_container.url(jaeger::API_PORT));
    let found = eventually("span in Jaeger", sent, Duration::from_secs(30), || async {
        let trace = store.trace(&span.trace_id).await?;
        trace
            .find(&span.service, span.kind, &span.name)
            .cloned()
            .with_context(|| format!("trace {}: {trace}", span.trace_id))
    })
    .await?;
    println!(
        "span {:?} of trace {} visible after {:.3}s",
        found.value.name,
        span.trace_id,
        found.after.as_secs_f64()
    );
    jaeger_container.stop().await
}
