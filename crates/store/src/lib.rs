//! PostgreSQL: the pool, the embedded migrations and every query the api and the worker run.
//!
//! sqlx rather than SeaORM: the schema is two tables, the queries are plain SQL that reads well
//! in a span, and sqlx's embedded migrations and pool are all we need from a database layer.
//! Each query runs through [`timed`], which gives it a client span and a
//! [`DB_QUERY_DURATION_SECONDS`] sample.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
pub use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use telemetry::{Label, MetricFamily};

/// Migrations compiled into the binary, so a deploy cannot run code against an older schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens a pool. Connections are made lazily, so a database that is still starting does not
/// stop the api from starting; `/ready` tells when it can serve.
///
/// # Errors
/// When `url` is not a PostgreSQL URL.
pub fn pool(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(url)
        .with_context(|| {
            format!(
                "DATABASE_URL={} is not a PostgreSQL URL",
                telemetry::redacted(url)
            )
        })
}

/// How long start-up waits for PostgreSQL: in a compose stack the database may still be
/// initialising when the api starts.
pub const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Brings the schema up to date, waiting up to [`STARTUP_WAIT`] for PostgreSQL to accept
/// connections; safe to run from several processes at once (sqlx takes an advisory lock).
///
/// # Errors
/// When PostgreSQL cannot be reached in time or a migration fails.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    use backon::Retryable as _;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(3))
        .with_total_delay(Some(STARTUP_WAIT))
        .without_max_times();
    (|| MIGRATOR.run(pool))
        .retry(backoff)
        // Only a database that is not there yet is worth waiting for; a failing migration is not.
        .when(|err| matches!(err, sqlx::migrate::MigrateError::Execute(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)))
        .notify(|err, delay| tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "waiting for PostgreSQL"))
        .await
        .context("run database migrations: is PostgreSQL up and DATABASE_URL right?")
}

/// The `operation` of each query: its span's name and its duration's label.
mod operation {
    pub const INSERT_REPOSITORY: &str = "insert_repository";
    pub const LIST_REPOSITORIES: &str = "list_repositories";
    pub const GET_REPOSITORY: &str = "get_repository";
    pub const LIST_PULL_REQUESTS: &str = "list_pull_requests";
    pub const UPSERT_PULL_REQUEST: &str = "upsert_pull_request";
    pub const MARK_POLLED: &str = "mark_polled";
    pub const PING: &str = "ping";
}

/// `operation`: which query ran.
const OPERATION: Label = Label::one_of(
    "operation",
    &[
        operation::INSERT_REPOSITORY,
        operation::LIST_REPOSITORIES,
        operation::GET_REPOSITORY,
        operation::LIST_PULL_REQUESTS,
        operation::UPSERT_PULL_REQUEST,
        operation::MARK_POLLED,
        operation::PING,
    ],
);

/// Recorded by [`timed`].
pub const DB_QUERY_DURATION_SECONDS: MetricFamily = MetricFamily::histogram(
    "db_query_duration_seconds",
    "Time of one PostgreSQL query, by operation.",
    &[OPERATION],
    telemetry::DURATION_BUCKETS,
);

/// The families this crate records, in every binary that queries PostgreSQL.
pub const METRIC_FAMILIES: &[MetricFamily] = &[DB_QUERY_DURATION_SECONDS];

/// Runs `query` under a `db.query` client span (a child of the current span, open while the
/// query runs) and records its duration by `operation`.
///
/// The span is held, not entered on every poll of the query (`Instrument`): a query is polled
/// about six times, and each enter and exit makes the span's OpenTelemetry context current and
/// back (about 5k instructions per query, docs/performance.md). What sqlx logs while the query
/// runs is therefore in the caller's span: same trace.
pub async fn timed<T, F>(operation: &'static str, query: F) -> Result<T, sqlx::Error>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    let span = tracing::info_span!(
        "db.query",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
    );
    let started = Instant::now();
    let result = query.await;
    drop(span);
    metrics::histogram!(DB_QUERY_DURATION_SECONDS.name, OPERATION.name => operation)
        .record(started.elapsed().as_secs_f64());
    result
}

/// A followed repository.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Repository {
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub polled_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A pull request as last fetched from the provider.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PullRequest {
    pub number: i32,
    pub title: String,
    pub author: String,
    pub state: String,
    pub draft: bool,
    pub url: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Inserts a repository; `None` when `owner/name` is followed already.
pub async fn insert_repository(
    pool: &PgPool,
    owner: &str,
    name: &str,
) -> Result<Option<Repository>, sqlx::Error> {
    timed(
        operation::INSERT_REPOSITORY,
        sqlx::query_as(
            "INSERT INTO repositories (owner, name) VALUES ($1, $2)
             ON CONFLICT (owner, name) DO NOTHING
             RETURNING id, owner, name, created_at, polled_at",
        )
        .bind(owner)
        .bind(name)
        .fetch_optional(pool),
    )
    .await
}

/// All repositories, oldest first.
pub async fn list_repositories(pool: &PgPool) -> Result<Vec<Repository>, sqlx::Error> {
    timed(
        operation::LIST_REPOSITORIES,
        sqlx::query_as(
            "SELECT id, owner, name, created_at, polled_at FROM repositories ORDER BY id",
        )
        .fetch_all(pool),
    )
    .await
}

/// One repository.
pub async fn get_repository(pool: &PgPool, id: i64) -> Result<Option<Repository>, sqlx::Error> {
    timed(
        operation::GET_REPOSITORY,
        sqlx::query_as(
            "SELECT id, owner, name, created_at, polled_at FROM repositories WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool),
    )
    .await
}

/// A repository's pull requests, newest first.
pub async fn list_pull_requests(
    pool: &PgPool,
    repository_id: i64,
) -> Result<Vec<PullRequest>, sqlx::Error> {
    timed(
        operation::LIST_PULL_REQUESTS,
        sqlx::query_as(
            "SELECT number, title, author, state, draft, url, created_at, updated_at
             FROM pull_requests WHERE repository_id = $1 ORDER BY number DESC",
        )
        .bind(repository_id)
        .fetch_all(pool),
    )
    .await
}

/// `SELECT 1`, for `/ready`.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    timed(operation::PING, sqlx::query("SELECT 1").execute(pool))
        .await
        .map(drop)
}

/// A pull request as the provider reports it, to be stored.
#[derive(Debug, Clone)]
pub struct NewPullRequest {
    pub number: i32,
    pub title: String,
    pub author: String,
    pub state: String,
    pub draft: bool,
    pub url: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Stores one polled page of pull requests and marks the repository polled, in one transaction,
/// so a reader never sees half a poll. Re-running a poll (a retried job) updates in place.
pub async fn store_poll(
    pool: &PgPool,
    repository_id: i64,
    pull_requests: &[NewPullRequest],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for pr in pull_requests {
        timed(
            operation::UPSERT_PULL_REQUEST,
            sqlx::query(
                "INSERT INTO pull_requests
                   (repository_id, number, title, author, state, draft, url, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (repository_id, number) DO UPDATE SET
                   title = EXCLUDED.title, author = EXCLUDED.author, state = EXCLUDED.state,
                   draft = EXCLUDED.draft, url = EXCLUDED.url, updated_at = EXCLUDED.updated_at,
                   fetched_at = now()",
            )
            .bind(repository_id)
            .bind(pr.number)
            .bind(&pr.title)
            .bind(&pr.author)
            .bind(&pr.state)
            .bind(pr.draft)
            .bind(&pr.url)
            .bind(pr.created_at)
            .bind(pr.updated_at)
            .execute(&mut *tx),
        )
        .await?;
    }
    timed(
        operation::MARK_POLLED,
        sqlx::query("UPDATE repositories SET polled_at = now() WHERE id = $1")
            .bind(repository_id)
            .execute(&mut *tx),
    )
    .await?;
    tx.commit().await
}

/// Helpers for tests that need a database of their own.
#[cfg(feature = "test-support")]
pub mod testing {
    use anyhow::Context as _;
    use sqlx::{Connection as _, Executor as _, PgConnection};

    /// Creates an empty, migrated database named `ampel_test_<random>` next to the one
    /// `base_url` names, and returns its pool and URL. Tests run in parallel, each with its own.
    ///
    /// # Errors
    /// When PostgreSQL at `base_url` cannot be reached or refuses `CREATE DATABASE`.
    pub async fn fresh_database(base_url: &str) -> anyhow::Result<(super::PgPool, String)> {
        let name = format!("ampel_test_{}", uuid_like());
        let mut admin = PgConnection::connect(base_url).await.with_context(|| {
            format!(
                "connect to {}: start PostgreSQL with `bash .ci/services.sh`, or set DATABASE_URL",
                telemetry::redacted(base_url)
            )
        })?;
        drop_left_over_databases(&mut admin).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .context("create the test database")?;
        let Some((server, database)) = base_url
            .rsplit_once('/')
            .filter(|(server, _)| server.contains("://") && !server.ends_with('/'))
        else {
            anyhow::bail!(
                "DATABASE_URL must name a database, like postgres://ampel:ampel@127.0.0.1:5432/ampel"
            );
        };
        let options = database.find('?').map_or("", |start| &database[start..]);
        let url = format!("{server}/{name}{options}");
        let pool = super::pool(&url)?;
        super::migrate(&pool).await?;
        Ok((pool, url))
    }

    /// Drops the test databases of test processes that have ended, once per process: nothing
    /// else removes them, and at ~7 MB each a few hundred test runs filled the disk of a CI
    /// machine. A database belongs to the process whose pid its name carries; one of a process
    /// still running on this host (a test binary beside this one) is left alone.
    async fn drop_left_over_databases(admin: &mut PgConnection) -> anyhow::Result<()> {
        static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        // Without /proc (not Linux) a live owner cannot be told from a gone one: keep them all.
        if !std::path::Path::new("/proc/self").exists() {
            return Ok(());
        }
        let names: Vec<String> = sqlx::query_scalar(
            r"SELECT datname FROM pg_database WHERE datname LIKE 'ampel\_test\_%'",
        )
        .fetch_all(&mut *admin)
        .await
        .context("list the test databases left by earlier runs")?;
        for name in names {
            let pid = name
                .strip_prefix("ampel_test_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            let owner_alive =
                pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if owner_alive {
                continue;
            }
            // WITH (FORCE) ends a connection a crashed run may have left; IF EXISTS covers
            // another test binary sweeping at the same moment.
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                )))
                .await
                .with_context(|| format!("drop the left-over test database {name}"))?;
        }
        Ok(())
    }

    fn uuid_like() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        format!(
            "{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }
}
