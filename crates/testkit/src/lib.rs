//! Did my telemetry land? A test kit for OpenTelemetry pipelines: start a backend in a container,
//! send or produce the signal, and ask the backend until it shows up, with a deadline and a
//! message that says what was there instead.
//!
//! - [`eventually()`]: poll a probe until it passes or a deadline passes; measures time to
//!   visible. [`checks`]: a run's outcomes as a table.
//! - [`model`]: [`Span`], [`Trace`] (with [`Trace::find`] and [`Trace::descends_from`]),
//!   [`LogRecord`], [`Sample`], and the [`TraceStore`] / [`LogStore`] traits the clients implement.
//! - One module per backend, each with a typed query client and, with the `containers` feature,
//!   a preset [`container::ContainerSpec`]: [`jaeger`], [`tempo`] (traces), [`loki`],
//!   [`victorialogs`] (logs), [`prometheus`] (metrics); [`alertmanager`] (a client only: its
//!   alerts and what inhibits them); with the `rules` feature,
//!   `prometheus::rules`: rule files on a compressed clock, alerts without their thresholds.
//! - `queries` (feature `queries`): the queries of Grafana dashboards and Prometheus rule files,
//!   each with its panel or rule and its language, Grafana's variables substituted, for running
//!   them against live stores.
//! - `compose` (feature `compose`): compose files as data (services, ports, healthchecks, bind
//!   mounts, `${VAR:-default}`), laid over each other as `compose -f a -f b` does; with
//!   `containers`, a service as a [`container::ContainerSpec`]. `compose::cli` (feature
//!   `compose-cli`): compose itself, found among Docker's and Podman's, run on a project's files.
//! - [`otlp`] (feature `send`, on by default): OTLP requests that send spans and log records
//!   to a receiver.
//! - [`sink`] (feature `sink`, on by default): a local OTLP/HTTP receiver that counts the spans
//!   and log records it gets, by name and by id.
//! - [`container`] (feature `containers`, on by default): testcontainers on Docker or Podman,
//!   with the workarounds Podman needs; [`container::require_engine`] for tests that need it.
//! - [`process`] (feature `process`, on by default): the service under test as a host process.
//!
//! Without the `containers` feature the crate has no container machinery at all: a binary that
//! only polls and queries compiles without testcontainers.

pub mod alertmanager;
pub mod checks;
#[cfg(feature = "compose")]
pub mod compose;
#[cfg(feature = "containers")]
pub mod container;
pub mod eventually;
mod http;
pub mod jaeger;
pub mod loki;
pub mod model;
#[cfg(feature = "send")]
pub mod otlp;
mod otlp_json;
#[cfg(feature = "process")]
pub mod process;
pub mod prometheus;
#[cfg(feature = "queries")]
pub mod queries;
#[cfg(feature = "sink")]
pub mod sink;
pub mod tempo;
pub mod victorialogs;

pub use eventually::{TimedOut, Visible, eventually, eventually_every};
pub use model::{LogRecord, LogStore, Sample, Span, SpanKind, Trace, TraceStore};

/// `env`'s value when set, else `default`: each backend's `image()`.
fn image_from_env(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}
