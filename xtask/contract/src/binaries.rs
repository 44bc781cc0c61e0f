//! The two binaries this repository builds, as their crates declare them. xtask links the crates,
//! so a renamed variable, a moved route or a longer timeout reaches every check that reads it
//! (`check` against compose/ and the Dockerfile, the deploy's preflight against fly/).

use std::fmt;
use std::time::Duration;

/// A constant of an app crate with its path, so a message can say where a value comes from.
#[derive(Debug, Clone, Copy)]
pub struct Linked<T: 'static> {
    pub path: &'static str,
    pub value: T,
}

macro_rules! linked {
    ($constant:path) => {
        Linked {
            path: stringify!($constant),
            value: $constant,
        }
    };
}

impl fmt::Display for Linked<&'static str> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path, self.value)
    }
}

impl fmt::Display for Linked<Duration> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} s)", self.path, self.value.as_secs_f64())
    }
}

/// What the checks need to know about one binary.
#[derive(Debug)]
pub struct Binary {
    /// The package and binary name, as the Dockerfile's ENTRYPOINT runs it.
    pub name: &'static str,
    /// The variable it reads its listen address from.
    pub listen_var: &'static str,
    /// Its listen address when that variable is unset; every deployment keeps its port.
    pub default_listen_addr: Linked<&'static str>,
    /// The variable that moves `metrics` to an address of its own, if the binary has one.
    pub metrics_listen_var: Option<&'static str>,
    /// The paths it serves on its listen address that probes and scrapes may ask.
    pub routes: &'static [&'static str],
    /// Liveness, for the platform's health checks.
    pub health: &'static str,
    /// Prometheus metrics.
    pub metrics: &'static str,
    /// What it may still spend after the stop signal, one bound after the other.
    pub shutdown: &'static [Linked<Duration>],
}

impl Binary {
    /// The port of [`Binary::default_listen_addr`].
    pub fn default_port(&self) -> u16 {
        port_of(self.default_listen_addr.value)
            .expect("the crate parses its own default at start-up")
    }

    /// The shortest stop timeout that lets it finish: the sum of [`Binary::shutdown`].
    pub fn shutdown_budget(&self) -> Duration {
        self.shutdown.iter().map(|bound| bound.value).sum()
    }

    /// The terms of [`Binary::shutdown_budget`], for a message.
    pub fn shutdown_terms(&self) -> String {
        let terms: Vec<String> = self.shutdown.iter().map(ToString::to_string).collect();
        terms.join(" + ")
    }
}

// Telemetry flushes traces and logs side by side, so one FLUSH_TIMEOUT bounds both.
pub const API: Binary = Binary {
    name: "ampel-api",
    listen_var: ampel_api::config::LISTEN_ADDR_VAR,
    default_listen_addr: linked!(ampel_api::config::DEFAULT_LISTEN_ADDR),
    metrics_listen_var: Some(ampel_api::config::METRICS_LISTEN_ADDR_VAR),
    routes: &[
        ampel_api::routes::HEALTH,
        ampel_api::routes::READY,
        ampel_api::routes::VERSION,
        ampel_api::routes::METRICS,
    ],
    health: ampel_api::routes::HEALTH,
    metrics: ampel_api::routes::METRICS,
    shutdown: &[
        linked!(ampel_api::DRAIN_TIMEOUT),
        linked!(telemetry::FLUSH_TIMEOUT),
    ],
};

// A job running at the signal finishes its provider call before the worker stops.
pub const WORKER: Binary = Binary {
    name: "ampel-worker",
    listen_var: ampel_worker::LISTEN_ADDR_VAR,
    default_listen_addr: linked!(ampel_worker::DEFAULT_LISTEN_ADDR),
    metrics_listen_var: None,
    routes: &[ampel_worker::http::HEALTH, ampel_worker::http::METRICS],
    health: ampel_worker::http::HEALTH,
    metrics: ampel_worker::http::METRICS,
    shutdown: &[
        linked!(ampel_worker::provider::REQUEST_TIMEOUT),
        linked!(telemetry::FLUSH_TIMEOUT),
    ],
};

pub const ALL: [&Binary; 2] = [&API, &WORKER];

/// The binary that reads its listen address from `var`.
pub fn listening_on(var: &str) -> Option<&'static Binary> {
    ALL.into_iter().find(|binary| binary.listen_var == var)
}

/// The port of an address like `0.0.0.0:8080`.
pub fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every default is an address, and a message names the constant next to its value.
    #[test]
    fn defaults_parse_and_messages_name_their_source() {
        for binary in ALL {
            binary.default_port();
        }
        assert_eq!(
            API.default_listen_addr.to_string(),
            format!(
                "ampel_api::config::DEFAULT_LISTEN_ADDR ({})",
                ampel_api::config::DEFAULT_LISTEN_ADDR
            )
        );
        assert_eq!(
            WORKER.shutdown_budget(),
            ampel_worker::provider::REQUEST_TIMEOUT + telemetry::FLUSH_TIMEOUT
        );
        assert!(
            API.shutdown_terms()
                .starts_with("ampel_api::DRAIN_TIMEOUT (")
        );
    }
}
