//! Where this workspace's dashboards and rule files are, and what their queries may select
//! besides the binaries' metrics: `check` (xtask-contract) parses the queries against the declared
//! metrics, `e2e` (xtask-lab) runs them against the e2e's stores, both reading them with
//! `otel_testkit::queries`.

/// The dashboards Grafana provisions, relative to the workspace root.
pub const DASHBOARDS: &str = "observability/grafana/dashboards";
/// The rule files Prometheus loads, relative to the workspace root.
pub const RULES: &str = "observability/prometheus/rules";

/// Metrics of the exporters compose runs that rules and dashboards may use. Sources: the
/// postgres_exporter README and its collectors `pg_stat_database`, `pg_settings`,
/// `pg_database`, `pg_locks` (prometheus-community/postgres_exporter); the redis_exporter README's
/// metric list (oliver006/redis_exporter). Names are those both the compose default images and
/// CI's Debian builds (postgres_exporter 0.11, redis_exporter 1.45) export.
pub const EXPORTER_METRICS: &[&str] = &[
    "pg_up",
    "pg_stat_database_numbackends",
    "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_blks_hit",
    "pg_stat_database_blks_read",
    "pg_stat_database_tup_fetched",
    "pg_stat_database_tup_returned",
    "pg_stat_database_tup_inserted",
    "pg_stat_database_tup_updated",
    "pg_stat_database_tup_deleted",
    "pg_stat_database_deadlocks",
    "pg_settings_max_connections",
    "pg_database_size_bytes",
    "pg_locks_count",
    "redis_up",
    "redis_connected_clients",
    "redis_config_maxclients",
    "redis_blocked_clients",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_commands_processed_total",
    "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_db_keys",
    "redis_evicted_keys_total",
    "redis_expired_keys_total",
    "redis_net_input_bytes_total",
    "redis_net_output_bytes_total",
    "redis_uptime_in_seconds",
];

/// `$__interval` at the Prometheus datasource's `timeInterval` of 5 s, which it is never below;
/// also the step a query over time must use for its `[$__interval]` windows to cover the range.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
