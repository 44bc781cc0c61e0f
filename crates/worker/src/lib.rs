//! `ampel-worker`: runs the jobs the api enqueues on Redis.
//!
//! ```text
//! DATABASE_URL=postgres://ampel:ampel@127.0.0.1:5432/ampel REDIS_URL=redis://127.0.0.1:6379 cargo run -p ampel-worker
//! ```
//!
//! Layout: [`run`] wires everything and runs until its shutdown future resolves; `jobs/` has one
//! file per job kind; `provider.rs` is the Git provider's HTTP client; `http.rs` serves
//! `/health` and `/metrics` on the worker's own port; `depth.rs` and `stored.rs` sample the
//! queue and the database for gauges.
//!
//! Each job carries the trace context of the request that enqueued it: the job's span is a child
//! of the api's request span, and the provider call a child of the job's, so one trace runs
//! api -> queue -> worker -> provider.

mod depth;
pub mod http;
mod jobs;
pub mod provider;
mod stored;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use apalis::layers::tracing::{ContextualTaskSpan, TraceLayer};
use apalis::prelude::{WorkerBuilder, WorkerBuilderExt as _};
use telemetry::MetricFamily;

/// The families the worker records.
pub const METRIC_FAMILIES: &[MetricFamily] = &[
    jobs::WORKER_JOBS_TOTAL,
    jobs::WORKER_JOB_DURATION_SECONDS,
    jobs::WORKER_JOBS_ACTIVE,
    depth::WORKER_QUEUE_DEPTH,
    provider::PROVIDER_REQUESTS_TOTAL,
    provider::PROVIDER_REQUEST_DURATION_SECONDS,
    jobs::poll_repository::PULL_REQUESTS_STORED_TOTAL,
    stored::PULL_REQUESTS_OPEN,
    stored::REPOSITORIES_POLL_LAG_MAX_SECONDS,
];

/// Every family the `ampel-worker` binary exports: its own, the store's and telemetry's.
pub const EXPORTED_METRIC_FAMILIES: &[&[MetricFamily]] = &[
    METRIC_FAMILIES,
    store::METRIC_FAMILIES,
    telemetry::METRIC_FAMILIES,
];

/// The `service.name` the worker's telemetry carries, unless `OTEL_SERVICE_NAME` overrides it:
/// the stores, the dashboards and the e2e find the worker's spans and logs by it.
pub const SERVICE_NAME: &str = "ampel-worker";

/// The variable the worker's `/health` and `/metrics` address is read from.
pub const LISTEN_ADDR_VAR: &str = "WORKER_LISTEN_ADDR";

/// Where the worker listens when [`LISTEN_ADDR_VAR`] is unset: loopback only (containers set
/// `0.0.0.0:8081`).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8081";

/// The variable the Git provider's base URL is read from.
pub const PROVIDER_BASE_URL_VAR: &str = "PROVIDER_BASE_URL";

/// The variable the Git provider's token is read from (a secret).
pub const PROVIDER_TOKEN_VAR: &str = "PROVIDER_TOKEN";

/// The variable the attempts per job are read from.
pub const MAX_ATTEMPTS_VAR: &str = "JOB_MAX_ATTEMPTS";

/// The variable the number of jobs run at once is read from.
pub const CONCURRENCY_VAR: &str = "WORKER_CONCURRENCY";

/// Settings read from the environment; see the configuration table in README.md.
#[derive(Debug, Clone)]
pub struct Config {
    /// [`LISTEN_ADDR_VAR`], default [`DEFAULT_LISTEN_ADDR`]: `/health` and `/metrics`.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`, required.
    pub database_url: String,
    /// `REDIS_URL`, required.
    pub redis_url: String,
    /// [`::jobs::QUEUE_VAR`], default [`::jobs::DEFAULT_QUEUE`].
    pub queue: String,
    /// [`PROVIDER_BASE_URL_VAR`], default `https://api.github.com`.
    pub provider_base_url: String,
    /// [`PROVIDER_TOKEN_VAR`], optional; sent as a bearer token, never logged.
    pub provider_token: Option<String>,
    /// [`MAX_ATTEMPTS_VAR`], default 3: attempts before a job is given up and kept as failed.
    pub max_attempts: usize,
    /// [`CONCURRENCY_VAR`], default 4: jobs run at once.
    pub concurrency: usize,
}

impl Config {
    /// Reads the settings.
    ///
    /// # Errors
    /// When a required variable is missing or a value does not parse; the message names it.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        let required = |name: &str, example: &str| {
            var(name).with_context(|| {
                format!("{name} is not set: export {name}={example} (or run the stack with `cargo xtask obs-up`)")
            })
        };
        let number = |name: &str, default: usize| -> anyhow::Result<usize> {
            var(name).map_or(Ok(default), |value| {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{name}={value:?} must be a whole number above 0"))
            })
        };
        let listen_addr = var(LISTEN_ADDR_VAR).unwrap_or_else(|| DEFAULT_LISTEN_ADDR.into());
        Ok(Self {
            listen_addr: listen_addr.parse().with_context(|| {
                format!("{LISTEN_ADDR_VAR}={listen_addr:?} is not an address like 0.0.0.0:8081")
            })?,
            database_url: required(
                "DATABASE_URL",
                "postgres://ampel:ampel@127.0.0.1:5432/ampel",
            )?,
            redis_url: required("REDIS_URL", "redis://127.0.0.1:6379")?,
            queue: ::jobs::queue_name(),
            provider_base_url: var(PROVIDER_BASE_URL_VAR)
                .unwrap_or_else(|| "https://api.github.com".into()),
            provider_token: var(PROVIDER_TOKEN_VAR),
            max_attempts: number(MAX_ATTEMPTS_VAR, 3)?,
            concurrency: number(CONCURRENCY_VAR, 4)?,
        })
    }
}

/// What every job handler can reach.
pub(crate) struct Context {
    pub(crate) db: store::PgPool,
    pub(crate) provider: provider::Provider,
    pub(crate) max_attempts: usize,
}

/// Runs the worker until `shutdown` resolves: stops taking jobs, lets running ones finish, then
/// returns. Jobs still running when the process dies are re-queued by the next worker's
/// heartbeat check (see `jobs::HEARTBEAT_INTERVAL`).
///
/// # Errors
/// When a dependency cannot be reached at start-up or the listener cannot bind.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = store::pool(&config.database_url)?;
    let (queue, redis) = ::jobs::open(&config.redis_url, &config.queue).await?;
    let provider =
        provider::Provider::new(&config.provider_base_url, config.provider_token.clone())?;
    let context = Arc::new(Context {
        db,
        provider,
        max_attempts: config.max_attempts,
    });

    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| {
            format!(
                "bind {}: is another process using it? set {LISTEN_ADDR_VAR}",
                config.listen_addr
            )
        })?;
    tracing::info!(addr = %config.listen_addr, queue = config.queue, "listening");
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(listener, context.db.clone(), async {
        let _ = http_stopped.await;
    }));

    let depth = tokio::spawn(depth::sample(redis, config.queue.clone()));
    let stored = tokio::spawn(stored::sample(context.db.clone()));

    // A worker's name must be unique per process: apalis recovers a dead worker's jobs by its
    // missed heartbeats, and a reused name would keep a dead worker looking alive.
    let name = format!("ampel-worker-{}-{}", hostname(), std::process::id());
    let worker = WorkerBuilder::new(name)
        .backend(queue)
        .layer(
            TraceLayer::new().make_span_with(ContextualTaskSpan::new().level(tracing::Level::INFO)),
        )
        .concurrency(config.concurrency)
        .data(context)
        .build(jobs::poll_repository::handle);
    let result = worker
        .run_until(async move {
            shutdown.await;
            tracing::info!("no new jobs; waiting for running ones");
            Ok::<(), std::io::Error>(())
        })
        .await
        .context("the job worker stopped with an error");
    depth.abort();
    stored.abort();
    let _ = stop_http.send(());
    let _ = http.await;
    result
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
