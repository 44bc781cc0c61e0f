//! The `ampel-worker` binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init(
        ampel_worker::SERVICE_NAME,
        ampel_worker::EXPORTED_METRIC_FAMILIES,
    )?;
    let result = match ampel_worker::Config::from_env() {
        Ok(config) => ampel_worker::run(config, telemetry::shutdown_signal()).await,
        Err(err) => Err(err),
    };
    if let Err(err) = &result {
        telemetry::error_with!(err, "ampel-worker stopped");
    }
    // Flush after the last job finished, so its spans and logs are exported.
    telemetry.shutdown();
    result
}
