//! Rules on PromQL in the alert rules and dashboards: each expression parses (promql-parser),
//! uses only metrics that exist (the families the binaries declare, the exporters'
//! [`EXPORTER_METRICS`], `up`, the recording rules' series), and selects only `job`s that prometheus.yml scrapes.

use std::collections::BTreeSet;

use otel_testkit::queries::{self, Language, Origin, Selectors};
use telemetry::{Kind, MetricFamily};
use xtask::queries::{DASHBOARDS, EXPORTER_METRICS, INTERVAL, RULES};

use super::{Problem, Sources, alerts, wiring};

/// Prometheus' own per-target series.
const PROMETHEUS_METRICS: &[&str] = &["up"];

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
    let mut known: BTreeSet<String> = families
        .iter()
        .flat_map(|family| family.series_names())
        .chain(exporters.map(|name| name.to_string()))
        .collect();
    let jobs = wiring::scrape_jobs(sources);
    // Each expression with its file and line. Files that do not parse are reported by the
    // alert and Grafana rules.
    let mut expressions = Vec::new();
    for (file, text) in sources.in_folder(RULES, &[".yml", ".yaml"]) {
        let rules = queries::rule_queries(file, text).into_iter().flatten();
        expressions.extend(rules.map(|query| (file, text, query)));
    }
    for (file, text) in sources.in_folder(DASHBOARDS, &[".json"]) {
        // LogQL and TraceQL panels are proven live only (the e2e's panels check, against Loki).
        let panels = queries::dashboard_queries(file, text)
            .into_iter()
            .flatten()
            .filter(|query| query.language() == Language::Promql);
        expressions.extend(panels.map(|query| (file, text, query)));
    }
    // What a recording rule writes exists too (the SLO rules' `slo:sli_error:ratio_rate*`).
    known.extend(
        expressions
            .iter()
            .filter_map(|(_, _, query)| match &query.origin {
                Origin::Rule {
                    kind: "record",
                    name,
                } => Some(name.clone()),
                _ => None,
            }),
    );
    for (file, text, query) in expressions {
        let line = match &query.origin {
            Origin::Panel { .. } => {
                super::line_of(text, &serde_json::to_string(&query.expr).expect("a string"))
            }
            Origin::Rule { kind, name } => alerts::line(kind, name, text),
        };
        let what = &query.origin;
        let mut report = |message: String| {
            problems.push(Problem::new(file, line, format!("{what}: {message}")));
        };
        let expr = match queries::substitute(&query.expr, INTERVAL) {
            Ok(expr) => expr,
            Err(variable) => {
                report(format!(
                    "uses the variable {variable}, which check cannot substitute; use Grafana's $__interval, $__rate_interval or $__range"
                ));
                continue;
            }
        };
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
        let selectors = Selectors::of(&parsed);
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
                    "metric {name} is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/src/queries.rs); fix the name, or declare the metric where it is recorded"
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
                "observability/grafana/dashboards/api.json:2: panel \"Requests\": metric worker_job_duration_seconds_cuont is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/src/queries.rs); fix the name, or declare the metric where it is recorded",
                "observability/prometheus/rules/api.yml:4: alert Broken: metric worker_job_duration_seconds is a histogram, which has no series of that name; use worker_job_duration_seconds_bucket, worker_job_duration_seconds_sum or worker_job_duration_seconds_count",
                "observability/prometheus/rules/api.yml:4: alert Broken: metric nope_total is declared by neither binary (their EXPORTED_METRIC_FAMILIES) nor in the exporters' metrics (EXPORTER_METRICS in xtask/src/queries.rs); fix the name, or declare the metric where it is recorded",
                "observability/grafana/dashboards/api.json:2: panel \"Requests\": uses the variable $window, which check cannot substitute; use Grafana's $__interval, $__rate_interval or $__range",
                "observability/prometheus/rules/api.yml:4: alert Broken: selects job=\"apii\", which observability/prometheus/prometheus.yml does not scrape (jobs: api); use one of those",
            ]
        );
    }
}
