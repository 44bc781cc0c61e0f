//! One file per job kind. Each kind's handler returns a [`JobError`] that says whether the
//! queue should try again.

pub(crate) mod poll_repository;

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
