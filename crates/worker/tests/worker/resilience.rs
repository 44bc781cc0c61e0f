//! What happens when things go wrong: a failing provider, a killed worker.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use fake_github::{FakeGithub, Mode};
use otel_testkit::eventually;

use crate::helpers::{sample, spawn_stack};

/// A provider that always fails: the job is retried, then given up and kept in the dead set,
/// and the metrics say so.
#[tokio::test]
async fn failing_provider_leads_to_retries_and_a_kept_failed_job() -> anyhow::Result<()> {
    let stack = spawn_stack().await;
    let github = FakeGithub::start(Mode::Fail).await.unwrap();
    let worker = stack.spawn_worker(&github, 2);
    let id = stack.create_repository("broken", "provider").await;
    stack.poll(id).await;

    // Given up after its attempts.
    let metrics = worker.counted("failed", Duration::from_secs(30)).await?;
    assert_eq!(
        sample(
            &metrics,
            r#"worker_jobs_total{job_type="poll_repository",status="retry"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(github.call_count(), 2, "one call per attempt");
    // The failure is counted in the handler; the queue moves the job to its dead set just after.
    let depth = eventually(
        "the failed job is kept in the dead set",
        Instant::now(),
        Duration::from_secs(10),
        || {
            let (mut redis, queue) = (stack.redis.clone(), stack.queue.clone());
            async move {
                let depth = jobs::depth(&mut redis, &queue).await?;
                anyhow::ensure!(depth.failed == 1, "{depth:?}");
                Ok(depth)
            }
        },
    )
    .await?
    .value;
    assert_eq!(
        depth.pending + depth.scheduled,
        0,
        "and not retried any more: {depth:?}"
    );
    assert!(stack.pull_requests(id).await.is_empty());
    Ok(())
}

/// A worker SIGKILLed in the middle of a job loses nothing: the next worker runs the job.
#[tokio::test]
async fn a_job_survives_a_sigkilled_worker() -> anyhow::Result<()> {
    let stack = spawn_stack().await;
    let github = FakeGithub::start(Mode::Hang).await.unwrap();
    let mut first = stack.spawn_worker(&github, 3);
    let id = stack.create_repository("killed", "mid-job").await;
    stack.poll(id).await;

    first.mid_job(&github).await?;
    first.kill();
    github.set_mode(Mode::Ok);

    let second = stack.spawn_worker(&github, 3);
    // The job runs again on the next worker.
    let pulls = stack
        .served_pulls(id, &second, Duration::from_secs(60))
        .await?;
    assert_eq!(pulls.len(), 2);
    assert!(github.call_count() >= 2, "the provider was called again");
    Ok(())
}

/// SIGTERM mid-job: the worker takes no new job but finishes the running one, then exits 0.
#[tokio::test]
async fn sigterm_lets_the_running_job_finish() -> anyhow::Result<()> {
    let stack = spawn_stack().await;
    let github = FakeGithub::start(Mode::Hang).await.unwrap();
    let mut worker = stack.spawn_worker(&github, 3);
    let id = stack.create_repository("graceful", "stop").await;
    stack.poll(id).await;
    worker.mid_job(&github).await?;

    let pid = worker.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(
        "the worker acknowledges the signal",
        Instant::now(),
        Duration::from_secs(10),
        || async {
            let output = worker.raw_output();
            anyhow::ensure!(output.contains("SIGTERM"), "{output}");
            Ok(())
        },
    )
    .await?;
    github.set_mode(Mode::Ok);

    let exit = eventually(
        "the worker exits after its job",
        Instant::now(),
        Duration::from_secs(30),
        || {
            let exited = worker.child.try_wait().map_err(anyhow::Error::from);
            std::future::ready(exited.and_then(|status| status.context("still running")))
        },
    )
    .await?
    .value;
    assert!(exit.success(), "{exit:?}\n{}", worker.raw_output());
    assert_eq!(
        stack.pull_requests(id).await.len(),
        2,
        "{}",
        worker.raw_output()
    );
    Ok(())
}
