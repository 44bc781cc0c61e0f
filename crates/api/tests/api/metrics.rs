//! `/metrics`: the request series by matched route, and bounded cardinality.

use crate::helpers::spawn_app;

/// The poll request shows up keyed by its route template, method and status, and the scrape
/// holds exactly the families the api binary declares, with their declared labels and values.
#[tokio::test]
async fn request_series_are_keyed_by_route_template() {
    let app = spawn_app().await;
    let id = app.create_repository("serde-rs", "serde").await;
    let beacon = app
        .post_json(
            "/api/vitals",
            serde_json::json!({ "name": "CLS", "value": 0.05, "rating": "good" }),
        )
        .await;
    assert_eq!(beacon.status(), 204);
    let probe = app.get("/health").await;
    assert_eq!(probe.status(), 200);
    let response = app.post(&format!("/api/repositories/{id}/poll")).await;
    assert_eq!(response.status(), 202);

    let response = app.get("/metrics").await;
    assert_eq!(
        response.headers()["content-type"],
        telemetry::PROMETHEUS_CONTENT_TYPE,
        "Prometheus 3 refuses scrapes of an unknown type"
    );
    let metrics = response.text().await.unwrap();
    for series in [
        r#"axum_http_requests_total{method="POST",status="202",endpoint="/api/repositories/{id}/poll"}"#,
        r#"axum_http_requests_duration_seconds_bucket{method="POST",status="201",endpoint="/api/repositories",le="0.005"}"#,
        r#"api_jobs_enqueued_total{job_type="poll_repository"}"#,
        r#"db_query_duration_seconds_count{operation="insert_repository"}"#,
        // The recorder is the process's, shared by the tests running beside this one: names
        // and labels only, no values.
        r#"db_queries_total{operation="insert_repository",status="success"}"#,
        r#"db_errors_total{operation="insert_repository",kind="timeout"}"#,
        r#"db_pool_connections{state="in_use"}"#,
        "db_pool_max_connections ",
        "db_pool_acquires_waiting ",
        r#"ampel_build_info{service="ampel-api-test""#,
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    assert!(
        !metrics.contains(&format!("/api/repositories/{id}/poll")),
        "raw path leaked into a label"
    );
    let problems =
        telemetry::testing::scrape_problems(ampel_api::EXPORTED_METRIC_FAMILIES, &metrics);
    assert!(
        problems.is_empty(),
        "/metrics disagrees with the api's declared families (ampel_api::EXPORTED_METRIC_FAMILIES):\n{}",
        problems.join("\n")
    );
    assert!(
        !metrics.contains(r#"endpoint="/health""#),
        "/health must not be metered"
    );
}

/// 500 distinct unknown paths add no series: they all share `endpoint="unmatched"`.
#[tokio::test]
async fn unknown_paths_do_not_create_series() {
    let app = spawn_app().await;
    for n in 0..500 {
        let response = app.get(&format!("/scan/{n}/wp-login.php")).await;
        assert_eq!(response.status(), 404);
    }
    let metrics = app.metrics().await;
    let endpoints: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("axum_http_requests_total"))
        .filter_map(|line| line.split("endpoint=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        endpoints.contains(ampel_api::UNMATCHED_ENDPOINT),
        "{endpoints:?}"
    );
    let raw: Vec<&&str> = endpoints
        .iter()
        .filter(|endpoint| {
            **endpoint != ampel_api::UNMATCHED_ENDPOINT
                && !endpoint.starts_with("/api/")
                // The page's routes, which another test may have asked in this process.
                && ![ampel_api::page::INDEX, ampel_api::page::ASSETS].contains(*endpoint)
        })
        .collect();
    assert!(
        raw.is_empty(),
        "{} raw paths became series, e.g. {:?}",
        raw.len(),
        &raw[..raw.len().min(3)]
    );
    let unmatched: f64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("axum_http_requests_total") && line.contains(r#"endpoint="unmatched""#)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(unmatched >= 500.0, "{unmatched}");
}
