//! Liveness, readiness and version probes.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{AppState, error::ApiError};

/// `GET /health`: the process is up. Checks nothing else, so a database outage does not get the
/// api restarted in a loop.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /version`: what is running. `GIT_COMMIT` is set by the deploy (`cargo xtask deploy fly`
/// passes the commit it deployed), so the deploy can check that the new version answers.
pub(crate) async fn version() -> Json<Value> {
    static COMMIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let commit =
        COMMIT.get_or_init(|| std::env::var("GIT_COMMIT").unwrap_or_else(|_| "unknown".into()));
    Json(json!({ "version": env!("CARGO_PKG_VERSION"), "commit": commit }))
}

/// `GET /ready`: PostgreSQL and Redis answer. 503 names the ones that did not.
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut redis = state.redis.clone();
    let ping = redis::cmd("PING");
    let (postgres, redis) = tokio::join!(
        store::ping(&state.db),
        ping.query_async::<String>(&mut redis)
    );
    let failures: Vec<String> = [
        postgres.err().map(|err| format!("postgres: {err}")),
        redis.err().map(|err| format!("redis: {err}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if failures.is_empty() {
        Ok(Json(json!({ "status": "ready" })))
    } else {
        Err(ApiError::Unavailable(failures.join("; ")))
    }
}
