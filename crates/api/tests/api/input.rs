//! Bad input gets a JSON 4xx that says what is wrong, and the service keeps serving.

use crate::helpers::spawn_app;

async fn assert_json_error(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        response.headers()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// Malformed JSON, wrong content type, unknown vital, 2 MB body, non-numeric id: each a 4xx JSON.
#[tokio::test]
async fn bad_input_gets_json_4xx_and_the_service_keeps_serving() {
    let app = spawn_app().await;
    let post = |path: &str| app.client.post(app.url(path));

    let malformed = post("/api/repositories")
        .header("content-type", "application/json")
        .body("{\"owner\": ")
        .send()
        .await
        .unwrap();
    assert_json_error(malformed, 400).await;

    let wrong_type = post("/api/repositories")
        .header("content-type", "text/html")
        .body("<p>hi</p>")
        .send()
        .await
        .unwrap();
    assert_json_error(wrong_type, 415).await;

    let unknown_vital = post("/api/vitals")
        .json(&serde_json::json!({ "name": "FID", "value": 12.0, "rating": "good" }))
        .send()
        .await
        .unwrap();
    let body = assert_json_error(unknown_vital, 422).await;
    assert!(body["detail"].as_str().unwrap().contains("FID"), "{body}");

    let huge = format!(
        "{{\"owner\": \"{}\", \"name\": \"x\"}}",
        "a".repeat(2 * 1024 * 1024)
    );
    let too_large = post("/api/repositories")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_json_error(too_large, 413).await;
    // Over our 64 KiB limit but under axum's default 2 MB one: proves the limit is ours.
    let beacon = format!(
        "{{\"name\": \"LCP\", \"value\": 1, \"rating\": \"good\", \"pad\": \"{}\"}}",
        "a".repeat(100 * 1024)
    );
    let over_limit = post("/api/vitals")
        .header("content-type", "text/plain")
        .body(beacon)
        .send()
        .await
        .unwrap();
    assert_json_error(over_limit, 413).await;

    let bad_id = app.get("/api/repositories/abc").await;
    assert_json_error(bad_id, 400).await;

    let unknown_route = app.get("/no/such/route").await;
    assert_json_error(unknown_route, 404).await;

    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    app.create_repository("still", "serving").await;
}

/// `navigator.sendBeacon` posts `text/plain`: accepted, and recorded by name and rating.
#[tokio::test]
async fn vitals_beacons_are_accepted_as_text_plain() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/vitals"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(r#"{"name":"INP","value":350,"rating":"needs-improvement","id":"v4-1","delta":350}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"web_vitals_value_count{name="INP",rating="needs-improvement"}"#),
        "{metrics}"
    );
}
