//! Each query counts its outcome and, when it fails, its kind of error; the pool's gauges follow
//! its state. Needs PostgreSQL at DATABASE_URL (`bash .ci/services.sh`). Each test records into
//! a recorder of its own (tests run in parallel, and `#[tokio::test]` runs every task on the
//! test's thread, where the recorder is set).

use std::time::{Duration, Instant};

use ampel_store as store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use otel_testkit::eventually;
use telemetry::MetricFamily;

fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL: start PostgreSQL with `bash .ci/services.sh` and export what it prints",
    )
}

fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    let recorder = PrometheusBuilder::new()
        .set_buckets(telemetry::DURATION_BUCKETS)
        .expect("the buckets are not empty")
        .build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

/// The value of the sample line `series` (name and labels, exactly as rendered).
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `scrape` holds only the declared labels and values of `families`, and each has a series.
fn assert_declared(families: &[MetricFamily], scrape: &str) {
    let problems = telemetry::testing::scrape_problems(&[families], scrape);
    assert!(problems.is_empty(), "{}\n{scrape}", problems.join("\n"));
}

fn pull_request(number: i32) -> store::NewPullRequest {
    let now = chrono::Utc::now();
    store::NewPullRequest {
        number,
        title: format!("pull request {number}"),
        author: "octocat".into(),
        state: store::PullRequestState::Open,
        draft: false,
        url: format!("https://github.com/o/r/pull/{number}"),
        created_at: now,
        updated_at: now,
    }
}

/// A query that returns its result counts as `success`, and no error is counted.
#[tokio::test]
async fn a_successful_query_is_counted_as_success() {
    let (pool, _url) = store::testing::fresh_database(&database_url())
        .await
        .unwrap();
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);

    store::insert_repository(&pool, "o", "r").await.unwrap();

    let scrape = handle.render();
    assert_eq!(
        sample(
            &scrape,
            r#"db_queries_total{operation="insert_repository",status="success"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert!(!scrape.contains("db_errors_total"), "{scrape}");
    assert_declared(
        &[
            store::DB_QUERIES_TOTAL,
            store::DB_QUERY_DURATION_SECONDS,
            store::DB_POOL_ACQUIRES_WAITING,
        ],
        &scrape,
    );
}

/// Pull requests of a repository that does not exist break the foreign key: the upsert counts
/// as an `error` of kind `constraint`, and the transaction's begin as a success.
#[tokio::test]
async fn a_constraint_violation_is_counted_by_kind() {
    let (pool, _url) = store::testing::fresh_database(&database_url())
        .await
        .unwrap();
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);

    let err = store::store_poll(&pool, 999_999, &[pull_request(1)])
        .await
        .unwrap_err();

    let scrape = handle.render();
    assert_eq!(store::ErrorKind::of(&err), store::ErrorKind::Constraint);
    for (series, value) in [
        (
            r#"db_errors_total{operation="upsert_pull_request",kind="constraint"}"#,
            1.0,
        ),
        (
            r#"db_queries_total{operation="upsert_pull_request",status="error"}"#,
            1.0,
        ),
        (
            r#"db_queries_total{operation="begin_poll",status="success"}"#,
            1.0,
        ),
    ] {
        assert_eq!(
            sample(&scrape, series),
            Some(value),
            "{series} in\n{scrape}"
        );
    }
    assert_declared(
        &[
            store::DB_QUERIES_TOTAL,
            store::DB_ERRORS_TOTAL,
            store::DB_QUERY_DURATION_SECONDS,
            store::DB_POOL_ACQUIRES_WAITING,
        ],
        &scrape,
    );
}

/// With the pool's only connection taken, a query waits (counted in
/// `db_pool_acquires_waiting`), then fails as a `timeout`; a closed pool fails as `connection`.
#[tokio::test]
async fn pool_timeouts_and_a_closed_pool_are_counted_by_kind() {
    let (_pool, url) = store::testing::fresh_database(&database_url())
        .await
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&url)
        .await
        .unwrap();
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);

    let held = store::acquire(&pool).await.unwrap();
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { store::list_repositories(&pool).await }
    });
    let waiters = r"db_pool_acquires_waiting";
    eventually(
        "the query waits for a connection",
        Instant::now(),
        Duration::from_secs(5),
        || async {
            let scrape = handle.render();
            anyhow::ensure!(sample(&scrape, waiters) == Some(1.0), "{scrape}");
            Ok(())
        },
    )
    .await
    .unwrap();
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
    drop(held);
    pool.close().await;
    store::ping(&pool).await.unwrap_err();

    let scrape = handle.render();
    for (series, value) in [
        (
            r#"db_errors_total{operation="list_repositories",kind="timeout"}"#,
            1.0,
        ),
        (
            r#"db_errors_total{operation="ping",kind="connection"}"#,
            1.0,
        ),
        (
            r#"db_queries_total{operation="list_repositories",status="error"}"#,
            1.0,
        ),
        (waiters, 0.0),
    ] {
        assert_eq!(
            sample(&scrape, series),
            Some(value),
            "{series} in\n{scrape}"
        );
    }
}

/// `record_pool` shows a lent connection as `in_use`, the others as `idle`, and the pool's size.
#[tokio::test]
async fn the_pool_gauges_follow_its_state() {
    let (pool, _url) = store::testing::fresh_database(&database_url())
        .await
        .unwrap();
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let first = store::acquire(&pool).await.unwrap();
    let second = store::acquire(&pool).await.unwrap();
    drop(second);
    // Dropping hands the connection back to the pool from a task of its own.
    eventually(
        "the second connection is idle again",
        Instant::now(),
        Duration::from_secs(5),
        || async {
            store::record_pool(&pool);
            let scrape = handle.render();
            anyhow::ensure!(
                sample(&scrape, r#"db_pool_connections{state="idle"}"#) == Some(1.0),
                "{scrape}"
            );
            Ok(scrape)
        },
    )
    .await
    .unwrap();
    let scrape = handle.render();
    assert_eq!(
        sample(&scrape, r#"db_pool_connections{state="in_use"}"#),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "db_pool_max_connections"),
        Some(f64::from(pool.options().get_max_connections())),
        "{scrape}"
    );
    drop(first);
    assert_declared(
        &[
            store::DB_POOL_CONNECTIONS,
            store::DB_POOL_MAX_CONNECTIONS,
            store::DB_POOL_ACQUIRES_WAITING,
        ],
        &scrape,
    );
}

/// The open pull requests are counted over all repositories, and the poll lag is that of the
/// repository polled longest ago (a never-polled one counts from when it was added).
#[tokio::test]
async fn open_pull_requests_and_the_worst_poll_lag_are_read() {
    let (pool, _url) = store::testing::fresh_database(&database_url())
        .await
        .unwrap();
    assert_eq!(store::max_poll_lag_seconds(&pool).await.unwrap(), None);
    let polled = store::insert_repository(&pool, "o", "polled")
        .await
        .unwrap()
        .unwrap();
    let never = store::insert_repository(&pool, "o", "never")
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE repositories SET created_at = now() - interval '1 hour' WHERE id = $1")
        .bind(never.id)
        .execute(&pool)
        .await
        .unwrap();
    let mut closed = pull_request(3);
    closed.state = store::PullRequestState::Closed;
    store::store_poll(
        &pool,
        polled.id,
        &[pull_request(1), pull_request(2), closed],
    )
    .await
    .unwrap();

    assert_eq!(store::count_open_pull_requests(&pool).await.unwrap(), 2);
    let lag = store::max_poll_lag_seconds(&pool).await.unwrap().unwrap();
    assert!((3600.0..3660.0).contains(&lag), "{lag}");
}
