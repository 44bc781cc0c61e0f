//! Repositories, polling and readiness.

use crate::helpers::{spawn_app, spawn_app_with};

/// Created repositories are listed and fetched by id; a second follow is a 409; a bad name 422.
#[tokio::test]
async fn repositories_are_created_listed_and_fetched() {
    let app = spawn_app().await;
    let id = app.create_repository("rust-lang", "rust").await;

    let list: serde_json::Value = app.get("/api/repositories").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["owner"], "rust-lang");

    let one = app.get(&format!("/api/repositories/{id}")).await;
    assert_eq!(one.status(), 200);
    let missing = app.get("/api/repositories/999999").await;
    assert_eq!(missing.status(), 404);

    let again = app
        .post_json(
            "/api/repositories",
            serde_json::json!({ "owner": "rust-lang", "name": "rust" }),
        )
        .await;
    assert_eq!(again.status(), 409);
    let bad = app
        .post_json(
            "/api/repositories",
            serde_json::json!({ "owner": "rust lang", "name": "rust" }),
        )
        .await;
    assert_eq!(bad.status(), 422);
}

/// A poll answers 202 with the job id and the trace id, and the job waits in Redis.
#[tokio::test]
async fn poll_enqueues_a_job_and_returns_its_trace_id() {
    let mut app = spawn_app().await;
    let id = app.create_repository("tokio-rs", "axum").await;

    let response = app.post(&format!("/api/repositories/{id}/poll")).await;
    assert_eq!(response.status(), 202);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    let trace_id = body["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    assert_ne!(trace_id, "0".repeat(32));
    assert!(
        traceparent.contains(trace_id),
        "{traceparent} vs {trace_id}"
    );
    assert!(!body["job_id"].as_str().unwrap().is_empty());

    let depth = jobs::depth(&mut app.redis, &app.queue).await.unwrap();
    assert_eq!(depth.pending, 1, "{depth:?}");

    let missing = app.post("/api/repositories/424242/poll").await;
    assert_eq!(missing.status(), 404);
}

/// `/ready` is 200 when both dependencies answer, and 503 naming PostgreSQL when it does not.
#[tokio::test]
async fn ready_names_the_dependency_that_is_down() {
    let app = spawn_app().await;
    let up = app.get("/ready").await;
    assert_eq!(up.status(), 200);

    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let dead = store::pool("postgres://ampel:ampel@127.0.0.1:1/ampel").unwrap();
    let app = spawn_app_with(dead).await;
    let down = app.get("/ready").await;
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("postgres:"), "{body}");
    assert!(!detail.contains("redis"), "{body}");
    let health = app.get("/health").await;
    assert_eq!(
        health.status(),
        200,
        "liveness must not depend on the database"
    );
}
