//! Bad input gets a JSON 4xx that says what is wrong, and the service keeps serving.

use crate::helpers::{assert_json_error, spawn_app};

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

/// A known route asked with a method it does not take is a 405 JSON error naming the methods
/// it takes in `Allow`, like every other error (axum's own is an empty body).
#[tokio::test]
async fn unsupported_methods_get_json_405_with_allow() {
    let app = spawn_app().await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/api/repositories"),
        (reqwest::Method::PUT, "/api/vitals"),
        (reqwest::Method::POST, "/health"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        let allow = response
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!allow.contains(method.as_str()), "{method} {path}: {allow}");
        assert_json_error(response, 405).await;
    }
    let allow = app
        .client
        .delete(app.url("/api/repositories"))
        .send()
        .await
        .unwrap()
        .headers()["allow"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

/// The page's beacons carry `id`, `navigationType` and `attribution.target`: accepted; a
/// hostile selector and made-up navigation type are only log fields, so the scrape keeps the
/// family's closed labels and never shows them.
#[tokio::test]
async fn vitals_attribution_is_accepted_and_never_a_label() {
    let app = spawn_app().await;
    let hostile = format!("div#{}", "x".repeat(10_000));
    let beacons = [
        serde_json::json!({
            "name": "LCP", "value": 1800.0, "rating": "good", "id": "v5-1-2",
            "navigationType": "navigate", "attribution": { "target": "main > img.hero" }
        }),
        serde_json::json!({
            "name": "CLS", "value": 0.3, "rating": "poor", "id": "v5-3-4",
            "navigationType": "made-up-navigation", "attribution": { "target": hostile }
        }),
        serde_json::json!({
            "name": "TTFB", "value": 120.0, "rating": "good", "id": "v5-5-6",
            "navigationType": "reload"
        }),
    ];
    for beacon in beacons {
        let response = app
            .client
            .post(app.url("/api/vitals"))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(beacon.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{beacon}");
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"web_vitals_value_count{name="CLS",rating="poor"}"#),
        "{metrics}"
    );
    for leaked in ["xxxxxxxxxx", "made-up-navigation", "img.hero", "v5-3-4"] {
        assert!(!metrics.contains(leaked), "{leaked} is in the scrape");
    }
    let problems =
        telemetry::testing::scrape_problems(ampel_api::EXPORTED_METRIC_FAMILIES, &metrics);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
