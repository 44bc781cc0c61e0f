//! One file per job kind. Each kind's handler returns a [`JobError`] that says whether the
//! queue should try again, and records the job metric families declared here.

pub(crate) mod poll_repository;

use telemetry::{Label, MetricFamily};

/// Job attempts, which include a call to the Git provider: 10 ms to 60 s.
const JOB_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `status` of an attempt that succeeded.
const SUCCESS: &str = "success";
/// `status` of a failed attempt that will be retried.
const RETRY: &str = "retry";
/// `status` of a failed last attempt.
const FAILED: &str = "failed";

/// `job_type`: which kind of job.
const JOB_TYPE: Label = Label::one_of("job_type", jobs::JOB_TYPES);
/// `status`: how an attempt ended.
const STATUS: Label = Label::one_of("status", &[SUCCESS, RETRY, FAILED]);

pub const WORKER_JOBS_TOTAL: MetricFamily = MetricFamily::counter(
    "worker_jobs_total",
    "Job attempts finished. `retry`: the attempt failed and the job will run again; `failed`: the last attempt failed and the job is kept in the dead set.",
    &[JOB_TYPE, STATUS],
);

pub const WORKER_JOB_DURATION_SECONDS: MetricFamily = MetricFamily::histogram(
    "worker_job_duration_seconds",
    "Wall time of one job attempt.",
    &[JOB_TYPE, STATUS],
    JOB_BUCKETS,
);

pub const WORKER_JOBS_ACTIVE: MetricFamily = MetricFamily::gauge(
    "worker_jobs_active",
    "Job attempts running now.",
    &[JOB_TYPE],
);

/// Why an attempt failed, and what the queue does next.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// Worth another attempt (the provider or database had a bad moment).
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// The last attempt failed; the job goes to the queue's dead set and stays there.
    #[error("giving up after {attempts} attempts: {source:#}")]
    GiveUp {
        attempts: usize,
        source: anyhow::Error,
    },
}

/// The [`STATUS`] of an attempt that ended with `result`.
fn status(result: &Result<(), JobError>) -> &'static str {
    match result {
        Ok(()) => SUCCESS,
        Err(JobError::Retry(_)) => RETRY,
        Err(JobError::GiveUp { .. }) => FAILED,
    }
}
