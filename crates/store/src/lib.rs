//! PostgreSQL: the pool, the embedded migrations and every query the api and the worker run.
//!
//! sqlx rather than SeaORM: the schema is two tables, the queries are plain SQL that reads well
//! in a span, and sqlx's embedded migrations and pool are all we need from a database layer.
//! Each query runs through [`timed`], which gives it a client span and records its duration,
//! its outcome and, when it fails, the kind of error; its connection comes through [`acquire`],
//! which counts the callers waiting for one. [`record_pool`] samples the pool when scraped.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
pub use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Acquire as _, Postgres};
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

/// The `operation` of each query: its span's name and its metrics' label.
mod operation {
    pub const INSERT_REPOSITORY: &str = "insert_repository";
    pub const LIST_REPOSITORIES: &str = "list_repositories";
    pub const GET_REPOSITORY: &str = "get_repository";
    pub const LIST_PULL_REQUESTS: &str = "list_pull_requests";
    /// A poll's transaction: taking its connection and `BEGIN`.
    pub const BEGIN_POLL: &str = "begin_poll";
    pub const UPSERT_PULL_REQUEST: &str = "upsert_pull_request";
    pub const MARK_POLLED: &str = "mark_polled";
    /// A poll's `COMMIT`.
    pub const COMMIT_POLL: &str = "commit_poll";
    pub const COUNT_OPEN_PULL_REQUESTS: &str = "count_open_pull_requests";
    pub const MAX_POLL_LAG: &str = "max_poll_lag";
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
        operation::BEGIN_POLL,
        operation::UPSERT_PULL_REQUEST,
        operation::MARK_POLLED,
        operation::COMMIT_POLL,
        operation::COUNT_OPEN_PULL_REQUESTS,
        operation::MAX_POLL_LAG,
        operation::PING,
    ],
);

/// `status` of a query that returned its result.
const SUCCESS: &str = "success";
/// `status` of a query that failed, whatever the kind.
const ERROR: &str = "error";
/// `status`: how a query ended.
const STATUS: Label = Label::one_of("status", &[SUCCESS, ERROR]);

/// `kind`: why a query failed; see [`ErrorKind`].
const KIND: Label = Label::one_of(
    "kind",
    &[
        ErrorKind::Timeout.as_str(),
        ErrorKind::Connection.as_str(),
        ErrorKind::Constraint.as_str(),
        ErrorKind::Other.as_str(),
    ],
);

/// A connection in the pool doing nothing.
const IDLE: &str = "idle";
/// A connection lent to a query.
const IN_USE: &str = "in_use";
/// `state`: what a pooled connection is doing.
const POOL_STATE: Label = Label::one_of("state", &[IDLE, IN_USE]);

/// Recorded by [`timed`].
pub const DB_QUERY_DURATION_SECONDS: MetricFamily = MetricFamily::histogram(
    "db_query_duration_seconds",
    "Time of one PostgreSQL query, by operation, including the wait for a pooled connection.",
    &[OPERATION],
    telemetry::DURATION_BUCKETS,
);

/// Recorded by [`timed`].
pub const DB_QUERIES_TOTAL: MetricFamily = MetricFamily::counter(
    "db_queries_total",
    "PostgreSQL queries finished, by operation and outcome; an `error` is also counted in `db_errors_total` by kind.",
    &[OPERATION, STATUS],
);

/// Recorded by [`timed`].
pub const DB_ERRORS_TOTAL: MetricFamily = MetricFamily::counter(
    "db_errors_total",
    "Failed PostgreSQL queries, by operation and kind: `timeout` (no pooled connection within the acquire timeout), `connection` (the database could not be reached or dropped the connection), `constraint` (a unique, foreign-key, check or not-null violation), `other`.",
    &[OPERATION, KIND],
);

/// Recorded by [`record_pool`].
pub const DB_POOL_CONNECTIONS: MetricFamily = MetricFamily::gauge(
    "db_pool_connections",
    "Open connections of the process's PostgreSQL pool: `idle` or `in_use`. Sampled when scraped.",
    &[POOL_STATE],
);

/// Recorded by [`record_pool`].
pub const DB_POOL_MAX_CONNECTIONS: MetricFamily = MetricFamily::gauge(
    "db_pool_max_connections",
    "The most connections the process's PostgreSQL pool opens.",
    &[],
);

/// Recorded by [`acquire`].
pub const DB_POOL_ACQUIRES_WAITING: MetricFamily = MetricFamily::gauge(
    "db_pool_acquires_waiting",
    "Queries waiting for a connection from the pool now (sqlx counts no waiters; the store counts its own acquires).",
    &[],
);

/// The families this crate records, in every binary that queries PostgreSQL.
pub const METRIC_FAMILIES: &[MetricFamily] = &[
    DB_QUERY_DURATION_SECONDS,
    DB_QUERIES_TOTAL,
    DB_ERRORS_TOTAL,
    DB_POOL_CONNECTIONS,
    DB_POOL_MAX_CONNECTIONS,
    DB_POOL_ACQUIRES_WAITING,
];

/// Why a query failed, as few kinds as an operator acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No pooled connection came free within the acquire timeout: the pool is too small or
    /// queries hold their connections too long.
    Timeout,
    /// PostgreSQL could not be reached, or ended the connection.
    Connection,
    /// The data broke a constraint (SQLSTATE class 23): a bug in the caller, not an outage.
    Constraint,
    /// Anything else: a bad query, a row that does not decode.
    Other,
}

impl ErrorKind {
    /// Its `kind` label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Constraint => "constraint",
            ErrorKind::Other => "other",
        }
    }

    /// The kind of `err`.
    #[must_use]
    pub fn of(err: &sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut => ErrorKind::Timeout,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => ErrorKind::Connection,
            sqlx::Error::Database(db) => {
                let code = db.code();
                let class = code.as_deref().map(|code| code.get(..2).unwrap_or(code));
                if db.kind() != sqlx::error::ErrorKind::Other || class == Some("23") {
                    ErrorKind::Constraint
                // 08: connection exception; 57P01-03: the server is shutting down or starting.
                } else if class == Some("08")
                    || matches!(code.as_deref(), Some("57P01" | "57P02" | "57P03"))
                {
                    ErrorKind::Connection
                } else {
                    ErrorKind::Other
                }
            }
            _ => ErrorKind::Other,
        }
    }
}

/// One query being measured: a `db.query` client span (a child of the current span) held
/// while it runs, and its start.
///
/// The span is held, not entered on every poll of the query (`Instrument`): a query is polled
/// about six times, and each enter and exit makes the span's OpenTelemetry context current and
/// back (about 5k instructions per query, docs/performance.md). What sqlx logs while the query
/// runs is therefore in the caller's span: same trace.
struct Query {
    operation: &'static str,
    started: Instant,
    span: tracing::Span,
}

impl Query {
    fn start(operation: &'static str) -> Self {
        let span = tracing::info_span!(
            "db.query",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = operation,
        );
        Self {
            operation,
            started: Instant::now(),
            span,
        }
    }

    /// Ends the span and records the duration, the outcome and the kind of error of `result`.
    fn end<T>(self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        drop(self.span);
        let operation = self.operation;
        metrics::histogram!(DB_QUERY_DURATION_SECONDS.name, OPERATION.name => operation)
            .record(self.started.elapsed().as_secs_f64());
        let status = if result.is_ok() { SUCCESS } else { ERROR };
        metrics::counter!(DB_QUERIES_TOTAL.name, OPERATION.name => operation, STATUS.name => status)
            .increment(1);
        if let Err(err) = &result {
            metrics::counter!(DB_ERRORS_TOTAL.name, OPERATION.name => operation, KIND.name => ErrorKind::of(err).as_str())
                .increment(1);
        }
        result
    }
}

/// Runs `query` under a `db.query` client span and records its duration, its outcome
/// ([`DB_QUERIES_TOTAL`]) and, when it fails, its [`ErrorKind`] ([`DB_ERRORS_TOTAL`]), all by
/// `operation`.
pub async fn timed<T, F>(operation: &'static str, query: F) -> Result<T, sqlx::Error>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    let measured = Query::start(operation);
    let result = query.await;
    measured.end(result)
}

/// A connection from `pool`, counted in [`DB_POOL_ACQUIRES_WAITING`] until it arrives (or the
/// wait is given up or dropped).
pub async fn acquire(pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
    /// Uncounts the wait on drop, so a query cancelled while waiting (a request's timeout) is not
    /// counted as waiting forever.
    struct Waiting(metrics::Gauge);
    impl Drop for Waiting {
        fn drop(&mut self) {
            self.0.decrement(1.0);
        }
    }
    let waiting = Waiting(metrics::gauge!(DB_POOL_ACQUIRES_WAITING.name));
    waiting.0.increment(1.0);
    let connection = pool.acquire().await;
    drop(waiting);
    connection
}

/// Sets [`DB_POOL_CONNECTIONS`] and [`DB_POOL_MAX_CONNECTIONS`] from `pool`'s state now; the
/// binaries call it on each scrape of `/metrics`, so the gauges are never older than the scrape.
pub fn record_pool(pool: &PgPool) {
    let open = pool.size();
    // Read apart from `size`: a connection opened or closed between the two must not make
    // `in_use` negative.
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(open);
    metrics::gauge!(DB_POOL_CONNECTIONS.name, POOL_STATE.name => IDLE).set(f64::from(idle));
    metrics::gauge!(DB_POOL_CONNECTIONS.name, POOL_STATE.name => IN_USE)
        .set(f64::from(open - idle));
    metrics::gauge!(DB_POOL_MAX_CONNECTIONS.name)
        .set(f64::from(pool.options().get_max_connections()));
    // Registers the waiters' gauge at 0 before the first query waits, so it has a series.
    metrics::gauge!(DB_POOL_ACQUIRES_WAITING.name).increment(0.0);
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

/// A pull request's state as the provider reports it (GitHub's `state`: a merged pull request
/// is `closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullRequestState {
    Open,
    Closed,
}

impl PullRequestState {
    /// Every state's [`Self::as_str`], e.g. for a metric label's values.
    pub const NAMES: &[&str] = &[Self::Open.as_str(), Self::Closed.as_str()];

    /// As stored in `pull_requests.state` and as the provider spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// Inserts a repository; `None` when `owner/name` is followed already.
pub async fn insert_repository(
    pool: &PgPool,
    owner: &str,
    name: &str,
) -> Result<Option<Repository>, sqlx::Error> {
    timed(operation::INSERT_REPOSITORY, async {
        sqlx::query_as(
            "INSERT INTO repositories (owner, name) VALUES ($1, $2)
             ON CONFLICT (owner, name) DO NOTHING
             RETURNING id, owner, name, created_at, polled_at",
        )
        .bind(owner)
        .bind(name)
        .fetch_optional(&mut *acquire(pool).await?)
        .await
    })
    .await
}

/// All repositories, oldest first.
pub async fn list_repositories(pool: &PgPool) -> Result<Vec<Repository>, sqlx::Error> {
    timed(operation::LIST_REPOSITORIES, async {
        sqlx::query_as(
            "SELECT id, owner, name, created_at, polled_at FROM repositories ORDER BY id",
        )
        .fetch_all(&mut *acquire(pool).await?)
        .await
    })
    .await
}

/// One repository.
pub async fn get_repository(pool: &PgPool, id: i64) -> Result<Option<Repository>, sqlx::Error> {
    timed(operation::GET_REPOSITORY, async {
        sqlx::query_as(
            "SELECT id, owner, name, created_at, polled_at FROM repositories WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *acquire(pool).await?)
        .await
    })
    .await
}

/// A repository's pull requests, newest first.
pub async fn list_pull_requests(
    pool: &PgPool,
    repository_id: i64,
) -> Result<Vec<PullRequest>, sqlx::Error> {
    timed(operation::LIST_PULL_REQUESTS, async {
        sqlx::query_as(
            "SELECT number, title, author, state, draft, url, created_at, updated_at
             FROM pull_requests WHERE repository_id = $1 ORDER BY number DESC",
        )
        .bind(repository_id)
        .fetch_all(&mut *acquire(pool).await?)
        .await
    })
    .await
}

/// How many stored pull requests are open, over all repositories.
pub async fn count_open_pull_requests(pool: &PgPool) -> Result<i64, sqlx::Error> {
    timed(operation::COUNT_OPEN_PULL_REQUESTS, async {
        sqlx::query_scalar("SELECT count(*) FROM pull_requests WHERE state = $1")
            .bind(PullRequestState::Open.as_str())
            .fetch_one(&mut *acquire(pool).await?)
            .await
    })
    .await
}

/// Seconds since the repository polled longest ago was last polled successfully (since it was
/// added, if never); `None` when no repository is followed.
pub async fn max_poll_lag_seconds(pool: &PgPool) -> Result<Option<f64>, sqlx::Error> {
    timed(operation::MAX_POLL_LAG, async {
        sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM now() - min(COALESCE(polled_at, created_at)))::float8
             FROM repositories",
        )
        .fetch_one(&mut *acquire(pool).await?)
        .await
    })
    .await
}

/// `SELECT 1`, for `/ready`.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    timed(operation::PING, async {
        sqlx::query("SELECT 1")
            .execute(&mut *acquire(pool).await?)
            .await
    })
    .await
    .map(drop)
}

/// A pull request as the provider reports it, to be stored.
#[derive(Debug, Clone)]
pub struct NewPullRequest {
    pub number: i32,
    pub title: String,
    pub author: String,
    pub state: PullRequestState,
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
    // The transaction borrows its connection, so the two steps of `begin_poll` are measured
    // here rather than in one future.
    let begin = Query::start(operation::BEGIN_POLL);
    let mut connection = match acquire(pool).await {
        Ok(connection) => connection,
        Err(err) => return begin.end(Err(err)),
    };
    let mut tx = begin.end(connection.begin().await)?;
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
            .bind(pr.state.as_str())
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
    timed(operation::COMMIT_POLL, tx.commit()).await
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

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    /// An error as PostgreSQL reports it: only its SQLSTATE matters here.
    #[derive(Debug)]
    struct Postgres(&'static str);

    impl std::fmt::Display for Postgres {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Postgres {}

    impl sqlx::error::DatabaseError for Postgres {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        // As sqlx's own Postgres error does: the constraint kinds by SQLSTATE.
        fn kind(&self) -> sqlx::error::ErrorKind {
            match self.0 {
                "23505" => sqlx::error::ErrorKind::UniqueViolation,
                "23503" => sqlx::error::ErrorKind::ForeignKeyViolation,
                _ => sqlx::error::ErrorKind::Other,
            }
        }
    }

    /// Each error sqlx returns lands in the kind an operator acts on.
    #[test]
    fn errors_are_classified_by_kind() {
        let database = |code| sqlx::Error::Database(Box::new(Postgres(code)));
        let cases = [
            (sqlx::Error::PoolTimedOut, ErrorKind::Timeout),
            (sqlx::Error::PoolClosed, ErrorKind::Connection),
            (
                sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
                ErrorKind::Connection,
            ),
            (sqlx::Error::Protocol("eof".into()), ErrorKind::Connection),
            (database("23505"), ErrorKind::Constraint),
            (database("23503"), ErrorKind::Constraint),
            // A check violation, which the kind above does not name: by its class.
            (database("23514"), ErrorKind::Constraint),
            (database("08006"), ErrorKind::Connection),
            (database("57P01"), ErrorKind::Connection),
            // An undefined table: a bug, not an outage.
            (database("42P01"), ErrorKind::Other),
            (sqlx::Error::RowNotFound, ErrorKind::Other),
        ];
        for (err, kind) in cases {
            assert_eq!(ErrorKind::of(&err), kind, "{err:?}");
        }
    }
}
