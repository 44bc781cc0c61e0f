//! Settings read from the environment at start-up; see the configuration table in README.md.

use std::net::SocketAddr;

use anyhow::Context as _;

/// The variable the api's address is read from.
pub const LISTEN_ADDR_VAR: &str = "API_LISTEN_ADDR";

/// Where the api listens when [`LISTEN_ADDR_VAR`] is unset: loopback only, so a local run is not
/// reachable from the network (containers set `0.0.0.0:8080`).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";

/// The variable that moves `/metrics` to an address of its own.
pub const METRICS_LISTEN_ADDR_VAR: &str = "API_METRICS_LISTEN_ADDR";

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
    /// `JOB_QUEUE`, default [`jobs::DEFAULT_QUEUE`].
    pub queue: String,
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
        })
    }
}

/// A required variable, with an example in the error so the fix is one copy away.
pub(crate) fn required(name: &str, example: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .with_context(|| format!("{name} is not set: export {name}={example} (or run the stack with `cargo xtask obs-up`)"))
}
