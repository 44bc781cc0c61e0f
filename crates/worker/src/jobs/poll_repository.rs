//! `poll_repository`: fetch a repository's open pull requests from the provider and store them.

use std::sync::Arc;
use std::time::Instant;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, TaskId};
use telemetry::{Label, MetricFamily};
use tracing::Instrument as _;

use super::{
    JOB_TYPE, JobError, STATUS, WORKER_JOB_DURATION_SECONDS, WORKER_JOBS_ACTIVE, WORKER_JOBS_TOTAL,
};
use crate::Context;

/// `state`: the pull request's state as the provider reported it.
const STATE: Label = Label::one_of("state", store::PullRequestState::NAMES);

pub const PULL_REQUESTS_STORED_TOTAL: MetricFamily = MetricFamily::counter(
    "pull_requests_stored_total",
    "Pull requests written to PostgreSQL by a successful poll, by their state. A pull request is counted at each poll that stores it again. The worker asks for open pull requests only, so `closed` (which includes merged ones) stays at 0 until it asks for more.",
    &[STATE],
);

/// The apalis handler. Failed attempts are retried by the queue (with a growing delay) until
/// `JOB_MAX_ATTEMPTS`; the last failure aborts the job, which the queue keeps in its dead set.
pub(crate) async fn handle(
    job: jobs::PollRepository,
    attempt: Attempt,
    task_id: TaskId,
    context: Data<Arc<Context>>,
) -> Result<(), BoxDynError> {
    let attempt = attempt.current().max(1);
    let span = tracing::info_span!(
        "poll_repository",
        job_id = %task_id,
        attempt,
        repository_id = job.repository_id,
    );
    let started = Instant::now();
    metrics::gauge!(WORKER_JOBS_ACTIVE.name, JOB_TYPE.name => jobs::POLL_REPOSITORY).increment(1.0);
    let result = run(&context, &job)
        .instrument(span.clone())
        .await
        .map_err(|source| {
            if attempt >= context.max_attempts {
                JobError::GiveUp {
                    attempts: attempt,
                    source,
                }
            } else {
                JobError::Retry(source)
            }
        });
    metrics::gauge!(WORKER_JOBS_ACTIVE.name, JOB_TYPE.name => jobs::POLL_REPOSITORY).decrement(1.0);
    let status = super::status(&result);
    metrics::counter!(WORKER_JOBS_TOTAL.name, JOB_TYPE.name => jobs::POLL_REPOSITORY, STATUS.name => status)
        .increment(1);
    metrics::histogram!(WORKER_JOB_DURATION_SECONDS.name, JOB_TYPE.name => jobs::POLL_REPOSITORY, STATUS.name => status)
        .record(started.elapsed().as_secs_f64());

    // Log lines carry the span's ids but not its fields, so the lines that end an attempt name
    // the job themselves.
    let _entered = span.enter();
    match result {
        Ok(()) => {
            tracing::info!(job_id = %task_id, status, "job finished");
            Ok(())
        }
        Err(err @ JobError::Retry(_)) => {
            tracing::warn!(job_id = %task_id, status, error = %err, max_attempts = context.max_attempts, "job attempt failed; it will be retried");
            Err(err.into())
        }
        Err(err @ JobError::GiveUp { .. }) => {
            telemetry::error_with!(
                &err,
                job_id = %task_id,
                status,
                "job failed; kept in the dead set"
            );
            Err(Box::new(AbortError::new(err)))
        }
    }
}

async fn run(context: &Context, job: &jobs::PollRepository) -> anyhow::Result<()> {
    let pull_requests = context
        .provider
        .pull_requests(&job.owner, &job.name)
        .await?;
    store::store_poll(&context.db, job.repository_id, &pull_requests).await?;
    for pr in &pull_requests {
        metrics::counter!(PULL_REQUESTS_STORED_TOTAL.name, STATE.name => pr.state.as_str())
            .increment(1);
    }
    tracing::info!(pull_requests = pull_requests.len(), "pull requests stored");
    Ok(())
}
