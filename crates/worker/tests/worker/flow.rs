//! The happy path: one trace from the api through the queue to the worker and the provider.

use std::time::Duration;

use crate::helpers::{Mode, eventually, sample, spawn_provider, spawn_stack};

/// Create -> poll -> the worker fetches from the provider -> pull requests stored and served;
/// the provider saw the request's trace id in `traceparent`; the worker's JSON log lines carry
/// the same trace id; `/metrics` counts the job, and the token never reaches a log line.
#[tokio::test]
async fn poll_flows_from_api_to_worker_with_one_trace() {
    let stack = spawn_stack().await;
    let provider = spawn_provider(Mode::Ok).await;
    let worker = stack.spawn_worker(&provider, 3);
    let id = stack.create_repository("rust-lang", "cargo").await;

    let (job_id, trace_id) = stack.poll(id).await;

    let pulls = eventually(
        "pull requests are served",
        Duration::from_secs(30),
        || async {
            let pulls = stack.pull_requests(id).await;
            if pulls.len() == 2 {
                Ok(pulls)
            } else {
                Err(format!("{pulls:?}; worker said:\n{}", worker.raw_output()))
            }
        },
    )
    .await;
    assert_eq!(pulls[0]["number"], 2);
    assert_eq!(pulls[0]["author"], "octocat");

    let traceparents = provider.traceparents();
    assert_eq!(traceparents.len(), 1, "{traceparents:?}");
    let traceparent = traceparents[0]
        .clone()
        .expect("the provider call carries traceparent");
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(trace_id.as_str()),
        "{traceparent}"
    );

    let line = eventually(
        "a worker log line carries the api's trace id",
        Duration::from_secs(10),
        || async {
            worker
                .json_lines()
                .into_iter()
                .find(|line| {
                    line["trace_id"] == trace_id.as_str() && line["message"] == "job finished"
                })
                .ok_or_else(|| worker.raw_output())
        },
    )
    .await;
    assert_eq!(line["job_id"], job_id.as_str(), "{line}");
    assert!(
        !worker.raw_output().contains("test-token-never-logged"),
        "the provider token was logged"
    );

    let metrics = eventually("the job is counted", Duration::from_secs(10), || async {
        let metrics = worker.metrics().await;
        match sample(
            &metrics,
            r#"worker_jobs_total{job_type="poll_repository",status="success"}"#,
        ) {
            Some(count) if count >= 1.0 => Ok(metrics),
            _ => Err(metrics),
        }
    })
    .await;
    for family in [
        "provider_requests_total{status=\"200\"}",
        "db_query_duration_seconds_count{operation=\"upsert_pull_request\"}",
        "ampel_build_info{service=\"ampel-worker\"",
    ] {
        assert!(metrics.contains(family), "missing {family} in\n{metrics}");
    }
    // The queue depth is sampled every few seconds, so its family may show up a little later.
    eventually(
        "every family docs/metrics.md lists for the worker is exported",
        Duration::from_secs(15),
        || async {
            let metrics = worker.metrics().await;
            let missing = telemetry::missing_from_scrape("worker", &metrics);
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}"))
            }
        },
    )
    .await;
}
