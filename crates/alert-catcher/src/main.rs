//! The `alert-catcher` binary: the local receiver `cargo xtask obs-up` points Alertmanager at.
//! Serves until SIGTERM or Ctrl-C, logging one line per notification.
//!
//! ```text
//! ALERT_CATCHER_LISTEN_ADDR=127.0.0.1:9095 ALERT_CATCHER_SMTP_LISTEN_ADDR=127.0.0.1:2525 alert-catcher
//! curl -s http://127.0.0.1:9095/
//! ```

use std::net::SocketAddr;

use alert_catcher::{
    AlertCatcher, DEFAULT_LISTEN_ADDR, DEFAULT_SMTP_LISTEN_ADDR, LISTEN_ADDR_VAR, PAGERDUTY_PATH,
    SLACK_PATH_PREFIX, SMTP_LISTEN_ADDR_VAR,
};
use clap::Parser;

/// Stands in for PagerDuty (Events API v2), Slack (incoming webhooks) and an SMTP relay, and
/// lists every notification Alertmanager sent them as JSON at `GET /`.
#[derive(Debug, Parser)]
#[command(version, after_help = after_help())]
struct Args {
    /// HTTP address: PagerDuty events, Slack webhooks and the list of notifications.
    #[arg(long, env = LISTEN_ADDR_VAR, default_value = DEFAULT_LISTEN_ADDR)]
    listen_addr: SocketAddr,
    /// SMTP address (plain SMTP: no STARTTLS, no AUTH; set `smtp_require_tls: false`).
    #[arg(long, env = SMTP_LISTEN_ADDR_VAR, default_value = DEFAULT_SMTP_LISTEN_ADDR)]
    smtp_listen_addr: SocketAddr,
}

fn after_help() -> String {
    format!(
        "Point Alertmanager at it:\n  \
         pagerduty_configs url: http://<listen addr>{PAGERDUTY_PATH}\n  \
         slack_configs api_url: http://<listen addr>{SLACK_PATH_PREFIX}<any path>\n  \
         smtp_smarthost: <smtp listen addr>"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        // Plain lines for `docker logs` and files; colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let catcher = AlertCatcher::start(args.listen_addr, args.smtp_listen_addr).await?;
    tracing::info!(
        http = %catcher.http_addr(),
        smtp = %catcher.smtp_addr(),
        "listening"
    );
    shutdown_signal().await?;
    drop(catcher);
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (`docker stop`). The catcher holds nothing to drain, so
/// this is `telemetry::shutdown_signal` without the telemetry crate (and its OpenTelemetry stack)
/// in a test tool's image.
async fn shutdown_signal() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("listen for SIGINT")?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    Ok(())
}
