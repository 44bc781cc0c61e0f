//! The worker's own small HTTP server: [`HEALTH`] for probes, [`METRICS`] for Prometheus.

use axum::{Json, Router, routing::get};
use serde_json::json;

/// Liveness: the process answers.
pub const HEALTH: &str = "/health";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";

/// The router, apart from the socket so tests can call it. A scrape samples `db`'s pool first.
pub(crate) fn app(db: store::PgPool) -> Router {
    let prometheus = telemetry::prometheus_handle();
    Router::new()
        .route(HEALTH, get(|| async { Json(json!({ "status": "ok" })) }))
        .route(
            METRICS,
            get(move || {
                store::record_pool(&db);
                std::future::ready(prometheus.render())
            }),
        )
}

/// Serves [`app`] until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    db: store::PgPool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(err) = axum::serve(listener, app(db))
        .with_graceful_shutdown(shutdown)
        .await
    {
        telemetry::error_with!(&err, "the metrics listener failed");
    }
}
