//! The `ampel-api` binary: `ampel-api` serves; `ampel-api migrate` only brings the schema up to
//! date (Fly's release command) and exits.

use ampel_api::{
    AppState,
    config::{Config, LISTEN_ADDR_VAR, METRICS_LISTEN_ADDR_VAR},
};
use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init(ampel_api::SERVICE_NAME, ampel_api::EXPORTED_METRIC_FAMILIES)?;
    let result = run().await;
    if let Err(err) = &result {
        telemetry::error_with!(err, "ampel-api stopped");
    }
    // Flush after the server has drained, so the last requests' spans and logs are exported.
    telemetry.shutdown();
    result
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let db = store::pool(&config.database_url)?;
    store::migrate(&db).await?;
    if std::env::args().nth(1).as_deref() == Some(ampel_api::MIGRATE_COMMAND) {
        tracing::info!("migrations applied");
        return Ok(());
    }
    let (queue, redis) = jobs::open(&config.redis_url, &config.queue).await?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| {
            format!(
                "bind {}: is another process using it? set {LISTEN_ADDR_VAR}",
                config.listen_addr
            )
        })?;
    tracing::info!(addr = %config.listen_addr, "listening");
    let metrics_app = ampel_api::metrics_app(db.clone());
    let relay = ampel_api::Relay::new(config.collector.clone())?;
    let app = ampel_api::app(
        AppState {
            db,
            queue,
            redis,
            relay,
        },
        config.web_dir.as_deref(),
    );
    let Some(metrics_addr) = config.metrics_listen_addr else {
        let app = app.merge(metrics_app);
        return ampel_api::serve(listener, app, telemetry::shutdown_signal()).await;
    };
    let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
        .await
        .with_context(|| {
            format!(
                "bind {metrics_addr}: is another process using it? set {METRICS_LISTEN_ADDR_VAR}"
            )
        })?;
    tracing::info!(addr = %metrics_addr, "serving /metrics");
    // Scrapes need no draining: the metrics listener simply ends with the process.
    let metrics = tokio::spawn(async move { axum::serve(metrics_listener, metrics_app).await });
    let result = ampel_api::serve(listener, app, telemetry::shutdown_signal()).await;
    metrics.abort();
    result
}
