//! The stop signal both binaries wait for.

const INTERRUPT: &str = "SIGINT";
const TERMINATE: &str = "SIGTERM";

/// The signals [`shutdown_signal`] turns into a graceful stop, by the names `kill -s` and Fly's
/// `kill_signal` use.
pub const HANDLED_SIGNALS: [&str; 2] = [INTERRUPT, TERMINATE];

/// Resolves on SIGINT (Ctrl-C; Fly's default kill signal) or SIGTERM (Docker's and Kubernetes'),
/// whichever comes first. Pass it to the server or worker loop as their shutdown future.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            crate::error_with!(&err, signal = INTERRUPT, "cannot listen for the signal");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                crate::error_with!(&err, signal = TERMINATE, "cannot listen for the signal");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!(signal = INTERRUPT, "shutting down"),
        () = terminate => tracing::info!(signal = TERMINATE, "shutting down"),
    }
}
