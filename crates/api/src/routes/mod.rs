//! One module per resource, and the paths that deployments and probes depend on.

pub(crate) mod health;
pub mod otlp;
pub(crate) mod repositories;
pub(crate) mod vitals;

/// Liveness: the process answers; never checks dependencies.
pub const HEALTH: &str = "/health";
/// Readiness: PostgreSQL and Redis answer.
pub const READY: &str = "/ready";
/// What runs: version and commit.
pub const VERSION: &str = "/version";
/// Prometheus metrics ([`crate::metrics_app`]).
pub const METRICS: &str = "/metrics";
/// The followed repositories: list (reads PostgreSQL) and follow.
pub const REPOSITORIES: &str = "/api/repositories";
