//! `worker_queue_depth`: how many jobs the Redis queue holds in each state, read every few
//! seconds.

use std::time::Duration;

use telemetry::{Label, MetricFamily};

/// How often the queue depth is read from Redis.
const DEPTH_INTERVAL: Duration = Duration::from_secs(5);

/// Waiting to run (`jobs::Depth::pending`).
const PENDING: &str = "pending";
/// Waiting for a retry (`jobs::Depth::scheduled`).
const SCHEDULED: &str = "scheduled";
/// Dead, kept for inspection (`jobs::Depth::failed`).
const FAILED: &str = "failed";

/// `queue`: which queue.
const QUEUE: Label = Label::open("queue", "the queue's name (`JOB_QUEUE`)");
/// `state`: which of the queue's states.
const STATE: Label = Label::one_of("state", &[PENDING, SCHEDULED, FAILED]);

pub const WORKER_QUEUE_DEPTH: MetricFamily = MetricFamily::gauge(
    "worker_queue_depth",
    "Jobs in the Redis queue by state: `pending` (waiting to run), `scheduled` (waiting for a retry), `failed` (dead, kept for inspection). Sampled every few seconds.",
    &[QUEUE, STATE],
);

/// Reads the depth of `queue` and sets [`WORKER_QUEUE_DEPTH`], every [`DEPTH_INTERVAL`], until
/// the task is aborted. A failed read is logged and tried again at the next tick.
pub(crate) async fn sample(mut redis: apalis_redis::ConnectionManager, queue: String) {
    let mut tick = tokio::time::interval(DEPTH_INTERVAL);
    loop {
        tick.tick().await;
        match jobs::depth(&mut redis, &queue).await {
            Ok(depth) => {
                for (state, count) in [
                    (PENDING, depth.pending),
                    (SCHEDULED, depth.scheduled),
                    (FAILED, depth.failed),
                ] {
                    metrics::gauge!(WORKER_QUEUE_DEPTH.name, QUEUE.name => queue.clone(), STATE.name => state)
                        .set(count as f64);
                }
            }
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "cannot read the queue depth")
            }
        }
    }
}
