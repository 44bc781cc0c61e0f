//! `pull_requests_open` and `repositories_poll_lag_max_seconds`: what PostgreSQL holds, read
//! every few seconds.
//!
//! Poll lag is one gauge, the worst repository's, read from `repositories.polled_at`, rather than
//! a histogram observed at each poll: a repository whose polls stopped (the case worth an alert)
//! adds no observation to a histogram, while its lag keeps growing here. Per-repository labels
//! would grow without bound, and the api already serves each repository's `polled_at`.
//! Every worker reads the same database, so with several workers dashboards take the `max`.

use std::time::Duration;

use telemetry::{Label, MetricFamily};

use crate::provider;

/// How often the gauges are read from PostgreSQL.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// `provider`: which Git provider the pull requests come from.
const PROVIDER: Label = Label::one_of("provider", &[provider::GITHUB]);

pub const PULL_REQUESTS_OPEN: MetricFamily = MetricFamily::gauge(
    "pull_requests_open",
    "Stored pull requests whose state is `open`, over all repositories, by provider. Sampled every few seconds from PostgreSQL.",
    &[PROVIDER],
);

pub const REPOSITORIES_POLL_LAG_MAX_SECONDS: MetricFamily = MetricFamily::gauge(
    "repositories_poll_lag_max_seconds",
    "Seconds since the repository polled longest ago was last polled successfully (since it was added, if never); 0 with no repository. Sampled every few seconds from PostgreSQL.",
    &[],
);

/// Reads the gauges from `db` and sets them, every [`SAMPLE_INTERVAL`], until the task is
/// aborted. A failed read is logged (and counted in `db_errors_total`) and tried again at the
/// next tick; the gauge keeps its last value meanwhile.
pub(crate) async fn sample(db: store::PgPool) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        tick.tick().await;
        match store::count_open_pull_requests(&db).await {
            Ok(open) => metrics::gauge!(PULL_REQUESTS_OPEN.name, PROVIDER.name => provider::GITHUB)
                .set(open as f64),
            Err(err) => tracing::warn!(error = %err, "cannot count the open pull requests"),
        }
        match store::max_poll_lag_seconds(&db).await {
            Ok(lag) => {
                metrics::gauge!(REPOSITORIES_POLL_LAG_MAX_SECONDS.name).set(lag.unwrap_or(0.0))
            }
            Err(err) => tracing::warn!(error = %err, "cannot read the repositories' poll lag"),
        }
    }
}
