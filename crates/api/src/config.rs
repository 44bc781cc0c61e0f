//! Settings read from the environment at start-up; see the configuration table in README.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

/// The variable the api's address is read from.
pub const LISTEN_ADDR_VAR: &str = "API_LISTEN_ADDR";

/// Where the api listens when [`LISTEN_ADDR_VAR`] is unset: loopback only, so a local run is not
/// reachable from the network (containers set `0.0.0.0:8080`).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";

/// The variable that moves `/metrics` to an address of its own.
pub const METRICS_LISTEN_ADDR_VAR: &str = "API_METRICS_LISTEN_ADDR";

/// The variable that names the built page's folder (`frontend/dist`), served at `/`.
pub const WEB_DIR_VAR: &str = "AMPEL_WEB_DIR";

/// The collector's base URL, the one the api's own exporter reads (`telemetry`'s `otlp.rs`):
/// the page's relayed exports go to its `/v1/traces` and `/v1/logs`, so it must be the
/// collector's OTLP/HTTP receiver (port 4318), as every compose file and Fly config has it.
pub const COLLECTOR_VAR: &str = opentelemetry_otlp::OTEL_EXPORTER_OTLP_ENDPOINT;

/// Everything `main` needs to start the api.
#[derive(Debug, Clone)]
pub struct Config {
    /// [`LISTEN_ADDR_VAR`], default [`DEFAULT_LISTEN_ADDR`].
    pub listen_addr: SocketAddr,
    /// [`METRICS_LISTEN_ADDR_VAR`], optional: serve `/metrics` there instead of on the API's port
    /// (Fly sets it, so the public port does not expose metrics).
    pub metrics_listen_addr: Option<SocketAddr>,
    /// `DATABASE_URL`, required.
    pub database_url: String,
    /// `REDIS_URL`, required.
    pub redis_url: String,
    /// [`jobs::QUEUE_VAR`], default [`jobs::DEFAULT_QUEUE`].
    pub queue: String,
    /// [`WEB_DIR_VAR`], optional: the folder with the page's `index.html`; unset, no page.
    pub web_dir: Option<PathBuf>,
    /// [`COLLECTOR_VAR`], optional: where `/otlp/v1/*` forwards to; unset, those routes answer 503.
    pub collector: Option<String>,
}

impl Config {
    /// Reads the settings.
    ///
    /// # Errors
    /// When a required variable is missing or a value does not parse; the message names it.
    pub fn from_env() -> anyhow::Result<Self> {
        let listen_addr =
            std::env::var(LISTEN_ADDR_VAR).unwrap_or_else(|_| DEFAULT_LISTEN_ADDR.into());
        Ok(Self {
            listen_addr: listen_addr.parse().with_context(|| {
                format!("{LISTEN_ADDR_VAR}={listen_addr:?} is not an address like 0.0.0.0:8080")
            })?,
            metrics_listen_addr: match std::env::var(METRICS_LISTEN_ADDR_VAR) {
                Ok(addr) if !addr.trim().is_empty() => Some(addr.parse().with_context(|| {
                    format!(
                        "{METRICS_LISTEN_ADDR_VAR}={addr:?} is not an address like 0.0.0.0:9091"
                    )
                })?),
                _ => None,
            },
            database_url: required(
                "DATABASE_URL",
                "postgres://ampel:ampel@127.0.0.1:5432/ampel",
            )?,
            redis_url: required("REDIS_URL", "redis://127.0.0.1:6379")?,
            queue: jobs::queue_name(),
            web_dir: web_dir(std::env::var(WEB_DIR_VAR).ok())?,
            collector: std::env::var(COLLECTOR_VAR)
                .ok()
                .filter(|value| !value.trim().is_empty()),
        })
    }
}

/// [`WEB_DIR_VAR`]'s folder, which must hold a built page: a typo or a missing build fails the
/// start rather than every page load.
fn web_dir(value: Option<String>) -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = value.filter(|value| !value.trim().is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir);
    if !dir.join("index.html").is_file() {
        anyhow::bail!(
            "{WEB_DIR_VAR}={} has no index.html: build the page with `npm ci && npm run build` in \
             frontend/ and point {WEB_DIR_VAR} at frontend/dist (or unset it to serve no page)",
            dir.display()
        );
    }
    Ok(Some(dir))
}

/// A required variable, with an example in the error so the fix is one copy away.
pub(crate) fn required(name: &str, example: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .with_context(|| format!("{name} is not set: export {name}={example} (or run the stack with `cargo xtask obs-up`)"))
}

#[cfg(test)]
mod tests {
    /// Unset or empty: no page. A folder with an index.html: served. Anything else: a start-up
    /// error that says how to build the page.
    #[test]
    fn web_dir_must_hold_a_built_page() {
        assert!(super::web_dir(None).unwrap().is_none());
        assert!(super::web_dir(Some(" ".into())).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        let err = super::web_dir(Some(path.clone())).unwrap_err().to_string();
        assert!(err.contains("npm ci && npm run build"), "{err}");
        std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
        assert_eq!(
            super::web_dir(Some(path)).unwrap().as_deref(),
            Some(dir.path())
        );
    }
}
