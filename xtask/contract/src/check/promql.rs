//! Rules on PromQL in the alert rules and dashboards: each expression parses (promql-parser),
//! uses only metrics that exist (the families the binaries declare, the exporters'
//! [`EXPORTER_METRICS`], `up`), and selects only `job`s that prometheus.yml scrapes.

use std::collections::BTreeSet;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use telemetry::{Kind, MetricFamily};

use super::{Problem, Sources, alerts, wiring};

const DASHBOARDS: &str = "observability/grafana/dashboards";

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

/// Which metric names exist.
#[derive(Debug, Default)]
struct Known {
    names: BTreeSet<String>,
    /// Classic histograms: only `_bucket`, `_sum` and `_count` exist as series.
    histograms: BTreeSet<String>,
}

impl Known {
    fn new<'a>(families: impl IntoIterator<Item = &'a MetricFamily>) -> Self {
        let mut known = Known::default();
        for family in families {
            known.names.extend(family.series_names());
            if let Kind::Histogram { .. } = family.kind {
                known.histograms.insert(family.name.to_owned());
            }
        }
        known.names.extend(
            EXPORTER_METRICS
                .iter()
                .chain(PROMETHEUS_METRICS)
                .map(|name| name.to_string()),
        );
        known
    }

    /// `None` when `name` exists, else what to do.
    fn judge(&self, name: &str) -> Option<String> {
        if self.names.contains(name) {
            None
        } else if self.histograms.contains(name) {
            Some(format!(
                "metric {name} is a histogram, which has no series of that name; use {name}_bucket, {name}_sum or {name}_count"
            ))
        } else {
            Some(format!(
                "metric {name} is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/contract/src/check/promql.rs); fix the name, or declare the metric where it is recorded"
            ))
        }
    }
}

/// One PromQL expression and where it was found.
struct Expression {
    file: String,
    line: Option<usize>,
    /// `alert ApiHigh5xxRatio`, `panel "Requests"`.
    what: String,
    text: String,
}

/// The rules, against the families both binaries declare.
pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    match crate::codegen::exported_families() {
        Ok(exported) => check_against(
            sources,
            exported.iter().map(|exported| exported.family),
            problems,
        ),
        Err(err) => problems.push(Problem::new(
            "crates",
            None,
            format!("the metric declarations disagree: {err:#}"),
        )),
    }
}

fn check_against<'a>(
    sources: &Sources,
    families: impl IntoIterator<Item = &'a MetricFamily>,
    problems: &mut Vec<Problem>,
) {
    let known = Known::new(families);
    let jobs = wiring::scrape_jobs(sources);
    let mut expressions = rule_expressions(sources);
    expressions.extend(dashboard_expressions(sources, problems));
    for expression in expressions {
        check_expression(&expression, &known, jobs.as_ref(), problems);
    }
}

fn check_expression(
    expression: &Expression,
    known: &Known,
    jobs: Option<&BTreeSet<String>>,
    problems: &mut Vec<Problem>,
) {
    let mut report = |message: String| {
        problems.push(Problem::new(
            &expression.file,
            expression.line,
            format!("{}: {message}", expression.what),
        ));
    };
    let mut text = expression.text.clone();
    for (variable, value) in GRAFANA_VARIABLES {
        text = text
            .replace(&format!("${{{variable}}}"), value)
            .replace(&format!("${variable}"), value);
    }
    if let Some(at) = text.find('$')
        && text[at + 1..].starts_with(|c: char| c == '{' || c == '_' || c.is_ascii_alphabetic())
    {
        let variable: String = text[at..]
            .chars()
            .take_while(|c| *c == '$' || *c == '{' || *c == '}' || *c == '_' || c.is_alphanumeric())
            .collect();
        report(format!(
            "uses the variable {variable}, which check cannot substitute; use $__rate_interval or $__range, or add it to GRAFANA_VARIABLES in xtask/contract/src/check/promql.rs"
        ));
        return;
    }
    let parsed = match promql_parser::parser::parse(&text) {
        Ok(parsed) => parsed,
        Err(err) => {
            report(format!(
                "PromQL does not parse ({}); fix the expression",
                err.trim()
            ));
            return;
        }
    };
    let mut selectors = Selectors::default();
    walk_expr(&mut selectors, &parsed).expect("collecting selectors cannot fail");
    for name in &selectors.names {
        if let Some(message) = known.judge(name) {
            report(message);
        }
    }
    if let Some(jobs) = jobs {
        for job in selectors.jobs.difference(jobs) {
            report(format!(
                "selects job=\"{job}\", which observability/prometheus/prometheus.yml does not scrape (jobs: {}); use one of those",
                jobs.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
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
        if let Some(name) = &selector.name {
            self.names.insert(name.clone());
        }
        let matchers = selector
            .matchers
            .matchers
            .iter()
            .chain(selector.matchers.or_matchers.iter().flatten());
        for matcher in matchers {
            if matcher.op != MatchOp::Equal {
                continue;
            }
            match matcher.name.as_str() {
                "__name__" => {
                    self.names.insert(matcher.value.clone());
                }
                "job" => {
                    self.jobs.insert(matcher.value.clone());
                }
                _ => {}
            }
        }
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

fn rule_expressions(sources: &Sources) -> Vec<Expression> {
    let mut expressions = Vec::new();
    for (file, text, rules) in alerts::rule_files(sources) {
        for group in rules.groups {
            for rule in group.rules {
                let Some(expr) = rule.expr.clone() else {
                    continue;
                };
                let (kind, name) = rule.name();
                expressions.push(Expression {
                    file: file.to_owned(),
                    line: super::line_of(text, &format!("{kind}: {name}")),
                    what: format!("{kind} {name}"),
                    text: expr,
                });
            }
        }
    }
    expressions
}

/// Every `expr` string in the dashboards' JSON, whatever panel or row nests it.
fn dashboard_expressions(sources: &Sources, problems: &mut Vec<Problem>) -> Vec<Expression> {
    let mut expressions = Vec::new();
    for (file, text) in sources.in_folder(DASHBOARDS, &[".json"]) {
        let json: serde_json::Value = match serde_json::from_str(text) {
            Ok(json) => json,
            Err(err) => {
                problems.push(Problem::new(
                    file,
                    Some(err.line()),
                    format!("not valid JSON ({err}); fix the dashboard"),
                ));
                continue;
            }
        };
        collect_exprs(&json, "", &mut |title, expr| {
            let quoted = serde_json::to_string(expr).expect("a string serialises");
            expressions.push(Expression {
                file: file.to_owned(),
                line: super::line_of(text, &quoted),
                what: format!("panel {title:?}"),
                text: expr.to_owned(),
            });
        });
    }
    expressions
}

fn collect_exprs(json: &serde_json::Value, title: &str, found: &mut impl FnMut(&str, &str)) {
    match json {
        serde_json::Value::Object(object) => {
            let title = object
                .get("title")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(title);
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => found(title, expr),
                    _ => collect_exprs(value, title, found),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_exprs(item, title, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILIES: [MetricFamily; 2] = [
        MetricFamily::counter("axum_http_requests_total", "Requests.", &[]),
        MetricFamily::histogram("worker_job_duration_seconds", "Time.", &[], &[1.0]),
    ];

    const PROMETHEUS: &str = "scrape_configs:\n  - job_name: api\n    static_configs:\n      - targets: [\"api:8080\"]\n";

    fn problems_of(files: &[(&str, &str)]) -> Vec<String> {
        let mut all = vec![("observability/prometheus/prometheus.yml", PROMETHEUS)];
        all.extend_from_slice(files);
        let mut problems = Vec::new();
        check_against(&Sources::from_files(&all), &FAMILIES, &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    fn rule(expr: &str) -> String {
        format!("groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: {expr}\n")
    }

    fn dashboard(expr: &str) -> String {
        serde_json::json!({"panels": [{"title": "Requests", "targets": [{"expr": expr}]}]})
            .to_string()
    }

    const RULES: &str = "observability/prometheus/rules/api.yml";
    const DASHBOARD: &str = "observability/grafana/dashboards/api.json";

    /// Declared metrics, histogram series, exporter metrics, `up` and scraped jobs pass.
    #[test]
    fn good_expressions_pass() {
        let expr = "sum(rate(axum_http_requests_total{job=\"api\"}[5m])) + sum(rate(worker_job_duration_seconds_bucket[5m])) + pg_up + up";
        let dashboard = dashboard(
            "rate(worker_job_duration_seconds_count[$__rate_interval]) + increase(up[${__range}])",
        );
        let problems = problems_of(&[(RULES, &rule(expr))]);
        assert_eq!(problems, Vec::<String>::new());
        let problems = problems_of(&[(DASHBOARD, &dashboard)]);
        assert_eq!(problems, Vec::<String>::new());
    }

    /// An expression that does not parse, in a rule.
    #[test]
    fn unparsable_rule_expression() {
        let problems = problems_of(&[(RULES, &rule("sum(rate(up[5m])"))]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!("{RULES}:4: alert Broken: PromQL does not parse")),
            "{problems:?}"
        );
    }

    /// A metric nobody exports, in a dashboard.
    #[test]
    fn unknown_metric_in_dashboard() {
        let text = dashboard("sum(rate(axum_http_request_total[$__rate_interval]))");
        let problems = problems_of(&[(DASHBOARD, &text)]);
        assert_eq!(
            problems,
            [format!(
                "{DASHBOARD}:1: panel \"Requests\": metric axum_http_request_total is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/contract/src/check/promql.rs); fix the name, or declare the metric where it is recorded"
            )]
        );
    }

    /// A histogram used by its bare name.
    #[test]
    fn histogram_without_suffix() {
        let problems = problems_of(&[(RULES, &rule("worker_job_duration_seconds > 1"))]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("use worker_job_duration_seconds_bucket"),
            "{problems:?}"
        );
    }

    /// A name given through `__name__` is checked too.
    #[test]
    fn unknown_metric_by_name_matcher() {
        let problems = problems_of(&[(RULES, &rule("'{__name__=\"nope_total\"}'"))]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("metric nope_total"), "{problems:?}");
    }

    /// A Grafana variable check cannot substitute.
    #[test]
    fn unknown_grafana_variable() {
        let text = dashboard("rate(up[$window])");
        let problems = problems_of(&[(DASHBOARD, &text)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("uses the variable $window"),
            "{problems:?}"
        );
    }

    /// A job label no scrape config produces.
    #[test]
    fn unscraped_job() {
        let problems = problems_of(&[(RULES, &rule("up{job=\"apii\"} == 0"))]);
        assert_eq!(
            problems,
            [format!(
                "{RULES}:4: alert Broken: selects job=\"apii\", which observability/prometheus/prometheus.yml does not scrape (jobs: api); use one of those"
            )]
        );
    }

    /// A dashboard that is not JSON.
    #[test]
    fn dashboard_not_json() {
        let problems = problems_of(&[(DASHBOARD, "{\n\"panels\": [,]}")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!("{DASHBOARD}:2: not valid JSON")),
            "{problems:?}"
        );
    }
}
