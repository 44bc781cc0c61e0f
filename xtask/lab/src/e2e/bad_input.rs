//! Bad input to the collector, run from compose's service and
//! observability/otel-collector/config.yaml: a body that is not protobuf and a body one byte over
//! the OTLP/HTTP receiver's limit each get 400 with a `google.rpc.Status` body saying why, a
//! valid request beside them gets 200, and the collector's HTTP server counts the two refusals.
//!
//! The count: no `otelcol_*` counter sees a request refused before it was decoded (the
//! receiver's refused/failed counters count decoded items). The HTTP server's
//! `http_server_request_duration` histogram, labelled with route and status code, does, at the
//! telemetry level `detailed` the config sets.

use std::time::{Duration, Instant};

use otel_testkit::container;
use otel_testkit::{Sample, Span, SpanKind, eventually, otlp, prometheus};
use xtask::compose::COLLECTOR;
use xtask::engine::Variant;

use super::sampling::{CONFIG, OTLP_HTTP_PORT, config_target};
use super::stack;

/// The receiver's `max_request_body_size` when the config sets none: confighttp's default
/// (`defaultMaxRequestBodySize`, 20 MiB).
const BODY_LIMIT: usize = 20 * 1024 * 1024;
/// The HTTP server's request histogram (level `detailed`); its `_count` counts requests.
const REQUESTS: &str = "http_server_request_duration_count";
const DEADLINE: Duration = Duration::from_secs(10);

/// Each bad request: what it is, its body, and a piece of the text its answer must carry.
fn bad_requests() -> [(&'static str, Vec<u8>, &'static str); 2] {
    [
        ("not protobuf", b"not protobuf at all".to_vec(), "proto:"),
        (
            "one byte over the limit",
            vec![0; BODY_LIMIT + 1],
            "request body too large",
        ),
    ]
}

/// Fails if the config sets a body limit of its own, which [`BODY_LIMIT`] would not be.
fn default_body_limit(config: &str) -> anyhow::Result<()> {
    let config: serde_yaml::Value = serde_yaml::from_str(config)?;
    let http = &config["receivers"]["otlp"]["protocols"]["http"];
    anyhow::ensure!(
        http.get("max_request_body_size").is_none(),
        "{CONFIG} sets receivers.otlp.protocols.http.max_request_body_size: make BODY_LIMIT read it"
    );
    Ok(())
}

/// How many requests to the traces route the collector answered with `status`.
async fn answered(http: &reqwest::Client, metrics: &str, status: u16) -> anyhow::Result<f64> {
    let samples = prometheus::scrape(http, metrics).await?;
    let label = |sample: &Sample, key: &str| sample.labels.get(key).cloned();
    Ok(samples
        .iter()
        .filter(|sample| {
            sample.labels["__name__"] == REQUESTS
                && label(sample, "http_route").as_deref() == Some(otlp::TRACES_PATH)
                && label(sample, "http_response_status_code") == Some(status.to_string())
        })
        .fold(0.0, |total, sample| total + sample.value))
}

/// A body that is not protobuf and one over the body limit each get 400 and its reason, a valid
/// request 200, and the collector counts the two 400s. Without an engine or the image it is
/// skipped, and under `CI=true` it fails.
#[tokio::test]
async fn bad_otlp_requests_get_400_and_are_counted() {
    let model = Variant::Peers.model().unwrap();
    let config = std::fs::read_to_string(xtask::util::project_root().join(CONFIG)).unwrap();
    let telemetry = stack::collector_metrics_port(&config).unwrap();
    default_body_limit(&config).unwrap();
    let spec = stack::spec(&model, COLLECTOR, false)
        .unwrap()
        .copy_bytes(config.into_bytes(), config_target(&model))
        .port(telemetry);
    let image = spec.image();
    let test = "bad_otlp_requests_get_400_and_are_counted (local images: `source .ci/images.env`)";
    if container::require_engine(test, &[image.as_str()])
        .await
        .is_none()
    {
        return;
    }
    let group = stack::start_containers(vec![(COLLECTOR, spec)])
        .await
        .unwrap();
    let collector = group.get(COLLECTOR).expect("started");
    let url = format!("{}{}", collector.url(OTLP_HTTP_PORT), otlp::TRACES_PATH);
    let metrics = format!("{}/metrics", collector.url(telemetry));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut wrong = Vec::new();
    for (what, body, reason) in bad_requests() {
        let response = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer = String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned();
        if status != reqwest::StatusCode::BAD_REQUEST || !answer.contains(reason) {
            wrong.push(format!(
                "{what}: {status} {answer:?}; expected 400 saying {reason:?}"
            ));
        }
    }
    let valid = Span {
        trace_id: otlp::new_trace_id(),
        span_id: otlp::new_span_id(),
        parent_span_id: None,
        name: "GET /valid".to_owned(),
        kind: SpanKind::Server,
        service: "bad-input-test".to_owned(),
        attributes: Default::default(),
    };
    if let Err(err) = otlp::send(&http, &url, &otlp::traces_request(&[valid]).unwrap()).await {
        wrong.push(format!("a valid request: {err:#}"));
    }
    let bad = bad_requests().len() as f64;
    let counted = eventually("the refusals counted", Instant::now(), DEADLINE, || async {
        let refused = answered(&http, &metrics, 400).await?;
        anyhow::ensure!(
            refused == bad,
            "{REQUESTS} of {} with status 400: {refused}, expected {bad}",
            otlp::TRACES_PATH
        );
        Ok(())
    })
    .await;
    if let Err(timed_out) = counted {
        wrong.push(timed_out.to_string());
    }
    group.stop().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
