//! What happens when things go wrong: a failing provider, a killed worker.

use std::time::Duration;

use fake_github::{FakeGithub, Mode};

use crate::helpers::{eventually, sample, spawn_stack};

/// A provider that always fails: the job is retried, then given up and kept in the dead set,
/// and the metrics say so.
#[tokio::test]
async fn failing_provider_leads_to_retries_and_a_kept_failed_job() {
    let stack = spawn_stack().await;
    let github = FakeGithub::start(Mode::Fail).await.unwrap();
    let worker = stack.spawn_worker(&github, 2);
    let id = stack.create_repository("broken", "provider").await;
    stack.poll(id).await;

    let metrics = eventually("the job is given up", Duration::from_secs(30), || async {
        let metrics = worker.metrics().await;
        match sample(
            &metrics,
            r#"worker_jobs_total{job_type="poll_repository",status="failed"}"#,
        ) {
            Some(count) if count >= 1.0 => Ok(metrics),
            _ => Err(format!("{metrics}\nworker said:\n{}", worker.raw_output())),
        }
    })
    .await;
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
        Duration::from_secs(10),
        || {
            let (mut redis, queue) = (stack.redis.clone(), stack.queue.clone());
            async move {
                let depth = jobs::depth(&mut redis, &queue)
                    .await
                    .map_err(|err| format!("{err:#}"))?;
                if depth.failed == 1 {
                    Ok(depth)
                } else {
                    Err(format!("{depth:?}"))
                }
            }
        },
    )
    .await;
    assert_eq!(
        depth.pending + depth.scheduled,
        0,
        "and not retried any more: {depth:?}"
    );
    assert!(stack.pull_requests(id).await.is_empty());
}

/// A worker SIGKILLed in the middle of a job loses nothing: the next worker runs the job.
#[tokio::test]
async fn a_job_survives_a_sigkilled_worker() {
    let stack = spawn_stack().await;
    let github = FakeGithub::start(Mode::Hang).await.unwrap();
    let mut first = stack.spawn_worker(&github, 3);
    let id = stack.create_repository("killed", "mid-job").await;
    stack.poll(id).await;

    eventually(
        "the first worker is mid-job",
        Duration::from_secs(20),
        || async {
            if github.call_count() == 0 {
                Err(first.raw_output())
            } else {
                Ok(())
            }
        },
    )
    .await;
    first.kill();
    github.set_mode(Mode::Ok);

    let second = stack.spawn_worker(&github, 3);
    let pulls = eventually(
        "the job runs again on the next worker",
        Duration::from_secs(60),
        || async {
            let pulls = stack.pull_requests(id).await;
            if pulls.len() == 2 {
                Ok(pulls)
            } else {
                Err(format!(
                    "{pulls:?}; second worker said:\n{}",
                    second.raw_output()
                ))
            }
        },
    )
    .await;
    assert_eq!(pulls.len(), 2);
    assert!(github.call_count() >= 2, "the provider was called again");
}

/// SIGTERM mid-job: the worker takes no new job but finishes the running one, then exits 0.
#[tokio::test]
async fn sigterm_lets_the_running_job_finish() {
    let stack = spawn_stack().await;
    let github = FakeGithub::start(Mode::Hang).await.unwrap();
    let mut worker = stack.spawn_worker(&github, 3);
    let id = stack.create_repository("graceful", "stop").await;
    stack.poll(id).await;
    eventually("the worker is mid-job", Duration::from_secs(20), || async {
        if github.call_count() == 0 {
            Err(worker.raw_output())
        } else {
            Ok(())
        }
    })
    .await;

    let pid = worker.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(
        "the worker acknowledges the signal",
        Duration::from_secs(10),
        || async {
            let output = worker.raw_output();
            if output.contains("SIGTERM") {
                Ok(())
            } else {
                Err(output)
            }
        },
    )
    .await;
    github.set_mode(Mode::Ok);

    let exit = eventually(
        "the worker exits after its job",
        Duration::from_secs(30),
        || {
            let exited = match worker.child.try_wait() {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err("still running".to_owned()),
                Err(err) => Err(err.to_string()),
            };
            std::future::ready(exited)
        },
    )
    .await;
    assert!(exit.success(), "{exit:?}\n{}", worker.raw_output());
    assert_eq!(
        stack.pull_requests(id).await.len(),
        2,
        "{}",
        worker.raw_output()
    );
}
