//! The jobs the api enqueues and the worker runs, and the Redis queue they travel through.
//!
//! Both binaries depend on this crate so the job's wire shape and the queue's settings are
//! written once. A job is a JSON document in an apalis Redis queue; its metadata carries the
//! W3C trace context of the request that enqueued it, so the worker's job span continues that
//! request's trace.
//!
//! **Architecture Invariant:** no HTTP, no database: only the job types and the queue.

use std::time::Duration;

use anyhow::Context as _;
use apalis::layers::tracing::{OtelTraceContext, TracingContext};
use apalis::prelude::{TaskBuilder, TaskId, TaskSink as _};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use serde::{Deserialize, Serialize};

/// The `job_type` label of every job metric.
pub const POLL_REPOSITORY: &str = "poll_repository";

/// Every job type: the values of the `job_type` label.
pub const JOB_TYPES: &[&str] = &[POLL_REPOSITORY];

/// The variable the queue's name is read from, by the api and the worker alike.
pub const QUEUE_VAR: &str = "JOB_QUEUE";

/// The queue's name when [`QUEUE_VAR`] is unset. Several deployments (or test runs) can share one
/// Redis by giving each its own queue name.
pub const DEFAULT_QUEUE: &str = "ampel:poll_repository";

/// How often a live worker proves it is alive. A worker that misses [`MISSED_HEARTBEATS`] beats
/// is presumed dead and its in-flight jobs are queued again, so a SIGKILLed worker's job runs
/// again within about `HEARTBEAT_INTERVAL * MISSED_HEARTBEATS` (apalis' defaults make that 5
/// minutes).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// See [`HEARTBEAT_INTERVAL`].
pub const MISSED_HEARTBEATS: usize = 3;

/// Fetch pull requests of one repository from the Git provider and store them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRepository {
    /// The repository's id in PostgreSQL.
    pub repository_id: i64,
    /// Owner on the provider (`rust-lang` in `rust-lang/rust`).
    pub owner: String,
    /// Name on the provider (`rust` in `rust-lang/rust`).
    pub name: String,
}

/// The queue of [`PollRepository`] jobs.
pub type PollQueue = RedisStorage<PollRepository>;

/// [`QUEUE_VAR`], or [`DEFAULT_QUEUE`].
#[must_use]
pub fn queue_name() -> String {
    std::env::var(QUEUE_VAR)
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_QUEUE.to_owned())
}

/// The queue's settings: its name and the heartbeat that recovers a dead worker's jobs.
#[must_use]
pub fn config(queue: &str) -> Config {
    Config::default()
        .queue(queue)
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .missed_heartbeats(MISSED_HEARTBEATS)
}

/// Connects to Redis and opens the poll queue.
///
/// # Errors
/// When `redis_url` is not a Redis URL or Redis cannot be reached.
pub async fn open(redis_url: &str, queue: &str) -> anyhow::Result<(PollQueue, ConnectionManager)> {
    let conn = apalis_redis::connect(redis_url).await.with_context(|| {
        format!(
            "connect to Redis at {}: is it running, and is REDIS_URL right?",
            telemetry::redacted(redis_url)
        )
    })?;
    let storage = RedisStorage::new(conn.clone()).with_config(config(queue));
    Ok((storage, conn))
}

/// Pushes `job` with the current span's trace context and returns the job's id.
///
/// # Errors
/// When Redis refuses the job.
pub async fn enqueue(queue: &mut PollQueue, job: PollRepository) -> anyhow::Result<String> {
    let id = ulid::Ulid::new().to_string();
    let trace: TracingContext = OtelTraceContext::current().into();
    let task = TaskBuilder::new(job)
        .task_id(TaskId::from_string(id.clone()))
        .metadata(&trace)
        .build();
    queue
        .push_task(task)
        .await
        .map_err(|err| anyhow::anyhow!("push the job onto the Redis queue: {err}"))?;
    Ok(id)
}

/// How many jobs wait in each state of the queue; the worker exports it as `worker_queue_depth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Waiting to be picked up.
    pub pending: u64,
    /// Failed an attempt and waiting for the retry time.
    pub scheduled: u64,
    /// Failed their last attempt; kept for inspection.
    pub failed: u64,
}

/// Reads the queue's depth. The key names are apalis-redis' own, taken from its `Config`.
/// apalis-redis parks every new job in its scheduled set until its run time (now, for a fresh
/// job), so jobs due there count as pending and only future ones as scheduled.
///
/// # Errors
/// When Redis does not answer.
pub async fn depth(conn: &mut ConnectionManager, queue: &str) -> anyhow::Result<Depth> {
    let config = config(queue);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let (active, due, scheduled, failed): (u64, u64, u64, u64) = redis::pipe()
        .cmd("LLEN")
        .arg(config.active_jobs_list())
        .cmd("ZCOUNT")
        .arg(config.scheduled_jobs_set())
        .arg("-inf")
        .arg(now)
        .cmd("ZCOUNT")
        .arg(config.scheduled_jobs_set())
        .arg(format!("({now}"))
        .arg("+inf")
        .cmd("SCARD")
        .arg(config.dead_jobs_set())
        .query_async(conn)
        .await
        .context("read the queue depth from Redis")?;
    Ok(Depth {
        pending: active + due,
        scheduled,
        failed,
    })
}
