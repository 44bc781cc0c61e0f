//! Rules on PromQL in the alert rules and dashboards: each expression parses (promql-parser),
//! uses only metrics that exist (the families the binaries declare, the exporters'
//! [`EXPORTER_METRICS`], `up`), and selects only `job`s that prometheus.yml scrapes.

use std::collections::BTreeSet;

use promql_parser::label::{METRIC_NAME, MatchOp};
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use telemetry::{Kind, MetricFamily};

use super::{Problem, Sources, alerts, grafana, wiring};

/// Metrics of the exporters compose runs that rules and dashboards may use. Sources: the
/// postgres_exporter README and its collectors `pg_stat_database`, `pg_settings`,
/// `pg_database`, `pg_locks` (prometheus-community/postgres_exporter); the redis_exporter README's
/// metric list (oliver006/redis_exporter). Names are those both the compose default images and
/// CI's Debian builds (postgres_exporter 0.11, redis_exporter 1.45) export.
const EXPORTER_METRICS: &[&str] = &[
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

/// Prometheus' own per-target series.
const PROMETHEUS_METRICS: &[&str] = &["up"];

/// Grafana's built-in variables in dashboard queries, and a value that makes the query parse.
const GRAFANA_VARIABLES: [(&str, &str); 3] = [
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__range", "1h"),
];

/// The rules, against the families both binaries declare.
pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    match crate::codegen::exported_families() {
        Ok(exported) => {
            let families: Vec<&MetricFamily> = exported.iter().map(|e| e.family).collect();
            check_against(sources, &families, problems);
        }
        Err(err) => problems.push(Problem::new(
            "crates",
            None,
            format!("the metric declarations disagree: {err:#}"),
        )),
    }
}

fn check_against(sources: &Sources, families: &[&MetricFamily], problems: &mut Vec<Problem>) {
    let exporters = EXPORTER_METRICS.iter().chain(PROMETHEUS_METRICS);
    let known: BTreeSet<String> = families
        .iter()
        .flat_map(|family| family.series_names())
        .chain(exporters.map(|name| name.to_string()))
        .collect();
    let jobs = wiring::scrape_jobs(sources);
    // Each expression with its file, line and `alert X` or `panel "Title"`. Files that do not
    // parse are reported by the alert and Grafana rules.
    let mut expressions = Vec::new();
    for (file, text, rules) in alerts::rule_files(sources) {
        for rule in rules
            .into_iter()
            .flat_map(|rules| rules.groups)
            .flat_map(|g| g.rules)
        {
            let (what, line) = rule.name(text);
            expressions.extend(rule.expr.map(|expr| (file, line, what, expr)));
        }
    }
    for (file, text, dashboard) in grafana::dashboards(sources) {
        for (title, expr) in dashboard.into_iter().flat_map(|dashboard| dashboard.exprs) {
            let line = super::line_of(text, &serde_json::to_string(&expr).expect("a string"));
            expressions.push((file, line, format!("panel {title:?}"), expr));
        }
    }
    for (file, line, what, mut expr) in expressions {
        let mut report = |message: String| {
            problems.push(Problem::new(file, line, format!("{what}: {message}")));
        };
        for (variable, value) in GRAFANA_VARIABLES {
            expr = expr
                .replace(&format!("${{{variable}}}"), value)
                .replace(&format!("${variable}"), value);
        }
        // A `$` before anything else is a regex anchor.
        if let Some(at) = expr.find('$')
            && expr[at + 1..].starts_with(|c: char| c == '{' || c == '_' || c.is_ascii_alphabetic())
        {
            let variable: String = expr[at..]
                .chars()
                .take_while(|c| matches!(c, '$' | '{' | '}' | '_') || c.is_alphanumeric())
                .collect();
            report(format!(
                "uses the variable {variable}, which check cannot substitute; use $__rate_interval or $__range, or add it to GRAFANA_VARIABLES in xtask/contract/src/check/promql.rs"
            ));
            continue;
        }
        let parsed = match promql_parser::parser::parse(&expr) {
            Ok(parsed) => parsed,
            Err(err) => {
                report(format!(
                    "PromQL does not parse ({}); fix the expression",
                    err.trim()
                ));
                continue;
            }
        };
        let mut selectors = Selectors::default();
        walk_expr(&mut selectors, &parsed).expect("collecting selectors cannot fail");
        for name in selectors.names.difference(&known) {
            // Classic histograms: only `_bucket`, `_sum` and `_count` exist as series.
            let histogram = families
                .iter()
                .any(|family| family.name == name && matches!(family.kind, Kind::Histogram { .. }));
            report(if histogram {
                format!(
                    "metric {name} is a histogram, which has no series of that name; use {name}_bucket, {name}_sum or {name}_count"
                )
            } else {
                format!(
                    "metric {name} is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/contract/src/check/promql.rs); fix the name, or declare the metric where it is recorded"
                )
            });
        }
        if let Some(jobs) = &jobs {
            for job in selectors.jobs.difference(jobs) {
                report(format!(
                    "selects job=\"{job}\", which observability/prometheus/prometheus.yml does not scrape (jobs: {}); use one of those",
                    jobs.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
}

/// Metric names and `job="…"` values of every selector in an expression.
#[derive(Default)]
struct Selectors {
    names: BTreeSet<String>,
    jobs: BTreeSet<String>,
}

impl Selectors {
    fn add(&mut self, selector: &VectorSelector) {
        let equal = |label: &str| {
            let matchers = selector.matchers.find_matchers(label).into_iter();
            matchers
                .filter(|matcher| matcher.op == MatchOp::Equal)
                .map(|matcher| matcher.value)
        };
        self.names
            .extend(selector.name.clone().into_iter().chain(equal(METRIC_NAME)));
        self.jobs.extend(equal("job"));
    }
}

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(selector) => self.add(selector),
            Expr::MatrixSelector(matrix) => self.add(&matrix.vs),
            _ => {}
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "observability/prometheus/rules/api.yml";
    const DASHBOARD: &str = "observability/grafana/dashboards/api.json";
    /// Declared metrics, histogram series, exporter metrics, `up`, scraped jobs, Grafana's
    /// variables and a regex anchor, in a rule and in a panel nested in a row.
    const FIXTURE: [(&str, &str); 3] = [
        (
            "observability/prometheus/prometheus.yml",
            "scrape_configs:\n  - job_name: api\n",
        ),
        (
            RULES,
            r#"groups:
  - name: g
    rules:
      - alert: Broken
        expr: sum(rate(axum_http_requests_total{job="api"}[5m])) + pg_up + up
"#,
        ),
        (
            DASHBOARD,
            r#"{"panels": [{"title": "Row", "panels": [{"title": "Requests", "targets": [
                {"expr": "rate(worker_job_duration_seconds_count[$__rate_interval])"},
                {"expr": "increase(up{instance=~\".+:8080$\"}[${__range}])"}]}]}]}"#,
        ),
    ];

    /// Each edit of the clean fixture makes one problem, which says what to change.
    #[test]
    fn each_rule_fires_on_its_break() {
        let families = [
            &MetricFamily::counter("axum_http_requests_total", "Requests.", &[]),
            &MetricFamily::histogram("worker_job_duration_seconds", "Time.", &[], &[1.0]),
        ];
        let edits = [
            (RULES, "[5m]))", "[5m])"),
            (DASHBOARD, "_count[", "_cuont["),
            (
                RULES,
                "axum_http_requests_total",
                "worker_job_duration_seconds",
            ),
            (RULES, "pg_up", "{__name__=\"nope_total\"}"),
            (DASHBOARD, "$__rate_interval", "$window"),
            (RULES, "job=\"api\"", "job=\"apii\""),
        ];
        let check = |sources: &Sources, found: &mut Vec<Problem>| {
            check_against(sources, &families, found);
        };
        let found = Sources::found_after_edits(&FIXTURE, &edits, check);
        assert_eq!(
            found,
            [
                "observability/prometheus/rules/api.yml:4: alert Broken: PromQL does not parse (unclosed left parenthesis); fix the expression",
                "observability/grafana/dashboards/api.json:2: panel \"Requests\": metric worker_job_duration_seconds_cuont is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/contract/src/check/promql.rs); fix the name, or declare the metric where it is recorded",
                "observability/prometheus/rules/api.yml:4: alert Broken: metric worker_job_duration_seconds is a histogram, which has no series of that name; use worker_job_duration_seconds_bucket, worker_job_duration_seconds_sum or worker_job_duration_seconds_count",
                "observability/prometheus/rules/api.yml:4: alert Broken: metric nope_total is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/contract/src/check/promql.rs); fix the name, or declare the metric where it is recorded",
                "observability/grafana/dashboards/api.json:2: panel \"Requests\": uses the variable $window, which check cannot substitute; use $__rate_interval or $__range, or add it to GRAFANA_VARIABLES in xtask/contract/src/check/promql.rs",
                "observability/prometheus/rules/api.yml:4: alert Broken: selects job=\"apii\", which observability/prometheus/prometheus.yml does not scrape (jobs: api); use one of those",
            ]
        );
    }
}
