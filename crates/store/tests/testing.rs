//! `ampel_store::testing::fresh_database` cleans up after test runs: the databases of test processes
//! that have ended are dropped, those of running ones are kept. Needs PostgreSQL at DATABASE_URL.

use sqlx::{Connection as _, Executor as _, PgConnection};

async fn database_exists(admin: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *admin)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn databases_of_ended_test_processes_are_dropped_and_running_ones_kept() {
    let base_url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL: start PostgreSQL with `bash .ci/services.sh` and export what it prints",
    );
    let mut admin = PgConnection::connect(&base_url).await.unwrap();
    // No process has a pid this large (Linux caps pids at 2^22), so its owner has ended.
    let ended = "ampel_test_4294967295_1_0";
    let running = format!("ampel_test_{}_1_0", std::process::id());
    for name in [ended, running.as_str()] {
        admin
            .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .unwrap();
    }

    let (pool, _url) = ampel_store::testing::fresh_database(&base_url)
        .await
        .unwrap();
    pool.close().await;

    let ended_left = database_exists(&mut admin, ended).await;
    let running_left = database_exists(&mut admin, &running).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{running}""#
        )))
        .await
        .unwrap();
    assert!(
        !ended_left,
        "{ended} should have been dropped: its process has ended"
    );
    assert!(
        running_left,
        "{running} should be kept: its process is running"
    );
}
