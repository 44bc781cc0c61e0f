//! The happy path: one trace from the api through the queue to the worker and the provider.

use std::time::{Duration, Instant};

use fake_github::{FakeGithub, Mode};
use otel_testkit::eventually;

use crate::helpers::{sample, spawn_stack};

/// Create -> poll -> the worker fetches from the provider -> pull requests stored and served;
/// the provider saw the request's trace id in `traceparent`; the worker's JSON log lines carry
/// the same trace id; `/metrics` counts the job, and the token never reaches a log line.
#[tokio::test]
async fn poll_flows_from_api_to_worker_with_one_trace() -> anyhow::Result<()> {
    let stack = spawn_stack().await;
    let github = FakeGithub::start(Mode::Ok).await.unwrap();
    let worker = stack.spawn_worker(&github, 3);
    let id = stack.create_repository("rust-lang", "cargo").await;

    let (job_id, trace_id) = stack.poll(id).await;

    let pulls = stack
        .served_pulls(id, &worker, Duration::from_secs(30))
        .await?;
    // The api lists pull requests by number, highest first.
    let mut sent = fake_github::pull_requests("rust-lang", "cargo");
    sent.sort_by_key(|pull| std::cmp::Reverse(pull.number));
    let served: Vec<_> = pulls.iter().map(|pull| &pull["title"]).collect();
    let sent: Vec<_> = sent.iter().map(|pull| &pull.title).collect();
    assert_eq!(served, sent);
    assert_eq!(pulls[0]["author"], fake_github::AUTHOR);

    let calls = github.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let traceparent = calls[0]
        .traceparent
        .clone()
        .expect("the provider call carries traceparent");
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(trace_id.as_str()),
        "{traceparent}"
    );

    let line = eventually(
        "a worker log line carries the api's trace id",
        Instant::now(),
        Duration::from_secs(10),
        || async {
            worker
                .json_lines()
                .into_iter()
                .find(|line| {
                    line["trace_id"] == trace_id.as_str() && line["message"] == "job finished"
                })
                .ok_or_else(|| anyhow::anyhow!("{}", worker.raw_output()))
        },
    )
    .await?
    .value;
    assert_eq!(line["job_id"], job_id.as_str(), "{line}");
    assert!(
        !worker.raw_output().contains("test-token-never-logged"),
        "the provider token was logged"
    );

    let metrics = worker.counted("success", Duration::from_secs(10)).await?;
    for family in [
        "provider_requests_total{status=\"200\"}",
        "db_query_duration_seconds_count{operation=\"upsert_pull_request\"}",
        "ampel_build_info{service=\"ampel-worker\"",
    ] {
        assert!(metrics.contains(family), "missing {family} in\n{metrics}");
    }
    for (series, value) in [
        (r#"pull_requests_stored_total{state="open"}"#, 2.0),
        (r#"pull_requests_stored_total{state="closed"}"#, 0.0),
        (
            r#"db_queries_total{operation="upsert_pull_request",status="success"}"#,
            2.0,
        ),
        (
            r#"db_errors_total{operation="upsert_pull_request",kind="constraint"}"#,
            0.0,
        ),
    ] {
        assert_eq!(
            sample(&metrics, series),
            Some(value),
            "{series} in\n{metrics}"
        );
    }
    // The queue depth and the stored pull requests are sampled every few seconds, so their
    // families may show up, and catch up with the poll, a little later.
    eventually(
        "the scrape holds exactly the worker's declared families (ampel_worker::EXPORTED_METRIC_FAMILIES), the open pull requests and a poll lag under a minute",
        Instant::now(),
        Duration::from_secs(15),
        || async {
            let metrics = worker.metrics().await;
            let problems = telemetry::testing::scrape_problems(
                ampel_worker::EXPORTED_METRIC_FAMILIES,
                &metrics,
            );
            anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
            let open = sample(&metrics, r#"pull_requests_open{provider="github"}"#);
            let lag = sample(&metrics, "repositories_poll_lag_max_seconds");
            anyhow::ensure!(
                open == Some(2.0) && lag.is_some_and(|lag| lag < 60.0),
                "open {open:?}, lag {lag:?}:\n{metrics}"
            );
            anyhow::ensure!(
                sample(&metrics, r#"db_pool_connections{state="idle"}"#)
                    .is_some_and(|idle| idle >= 1.0),
                "no idle pooled connection:\n{metrics}"
            );
            Ok(())
        },
    )
    .await?;
    Ok(())
}
