//! Service level objectives as code: `observability/slo.yaml` (the spec) is read, its SLIs are
//! held to the metric families the binaries declare, and `cargo xtask codegen` writes from it
//! `observability/prometheus/rules/slo.yml` (`rules.rs`: error ratios per window, the SRE
//! workbook's multi-window multi-burn-rate alerts) and `observability/grafana/dashboards/slo.json`
//! (`dashboard.rs`: error budget left, burn rate per window).
//!
//! ```text
//! cargo xtask codegen [--check]
//! ```
//!
//! The spec is small and closed (`deny_unknown_fields`): a typo is an error, not an SLO that
//! silently measures nothing. An SLI names a declared family, only its labels and, for labels with
//! a closed set of values, values it takes; a latency threshold must be a bucket bound of the
//! declared histogram, since a ratio at any other bound cannot be read from the buckets.

mod dashboard;
mod rules;

use std::fmt;

use anyhow::Context as _;
use promql_parser::label::{METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};
use serde::Deserialize;
use telemetry::{Kind, LabelValues, MetricFamily};

use crate::binaries::{self, Binary};
use crate::codegen::Exported;

/// The spec, written by hand.
pub const SPEC: &str = "observability/slo.yaml";
/// The recording and alerting rules generated from [`SPEC`].
pub const RULES: &str = "observability/prometheus/rules/slo.yml";
/// The error-budget dashboard generated from [`SPEC`].
pub const DASHBOARD: &str = "observability/grafana/dashboards/slo.json";

/// Labels Prometheus adds to every scraped series, which a selector may use besides the family's.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// `observability/slo.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    slos: Vec<Slo>,
}

/// One SLO as the spec states it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slo {
    /// Lower-case words joined by `-`: the `slo` label, and the alerts' names in camel case.
    name: String,
    service: Service,
    /// The share of good events, strictly between 0 and 1.
    objective: f64,
    window: Window,
    /// What a good event is, for the alerts and the dashboard.
    description: String,
    /// `error_ratio: {...}` or `latency: {...}`: a map of one key, not a YAML tag.
    #[serde(with = "serde_yaml::with::singleton_map")]
    sli: Sli,
}

/// The binary whose metric an SLI reads; also the alerts' `service` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Api,
    Worker,
}

impl Service {
    /// The `service` label: the compose service, and the scrape job, of the binary.
    pub fn label(self) -> &'static str {
        match self {
            Service::Api => "api",
            Service::Worker => "worker",
        }
    }

    fn binary(self) -> &'static Binary {
        match self {
            Service::Api => &binaries::API,
            Service::Worker => &binaries::WORKER,
        }
    }
}

/// The compliance window. Only 30 days: the workbook's burn-rate factors (14.4, 6, 3, 1) are the
/// shares of a 30-day budget spent in their windows, and would be wrong for another period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Window {
    #[serde(rename = "30d")]
    Days30,
}

impl Window {
    /// The window as a PromQL range.
    pub fn range(self) -> &'static str {
        match self {
            Window::Days30 => "30d",
        }
    }
}

/// How the SLI counts bad events.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Sli {
    /// Bad events over all events, two selectors on a counter.
    ErrorRatio { errors: String, total: String },
    /// Events slower than `threshold` seconds, from a histogram's buckets.
    Latency { histogram: String, threshold: f64 },
}

/// An SLO whose SLI has been held to the declared families: what the generators read.
#[derive(Debug)]
pub struct Objective {
    pub name: String,
    pub service: Service,
    pub objective: f64,
    pub window: Window,
    pub description: String,
    ratio: ErrorRatio,
}

/// The error ratio of an SLI, as selectors the generator puts into `rate(...)`.
#[derive(Debug)]
enum ErrorRatio {
    Events { errors: String, total: String },
    Slower { fast: String, all: String },
}

impl Objective {
    /// The PromQL of the error ratio over `range`, one term per line. With no bad event yet the
    /// errors' selector matches no series; `or vector(0)` makes that a ratio of 0, not "no data".
    pub fn error_ratio(&self, range: &str) -> Vec<String> {
        match &self.ratio {
            ErrorRatio::Events { errors, total } => vec![
                format!("(sum(rate({errors}[{range}])) or vector(0))"),
                "  /".to_owned(),
                format!("sum(rate({total}[{range}]))"),
            ],
            ErrorRatio::Slower { fast, all } => vec![
                "1 - (".to_owned(),
                format!("  sum(rate({fast}[{range}]))"),
                "    /".to_owned(),
                format!("  sum(rate({all}[{range}]))"),
                ")".to_owned(),
            ],
        }
    }

    /// The share of events the budget allows to be bad, as PromQL: `(1 - objective)`, so the
    /// objective stays as written.
    pub fn budget(&self) -> String {
        format!("(1 - {})", self.objective)
    }

    /// The objective in per cent, e.g. `99.9%`.
    pub fn percent(&self) -> String {
        let percent = format!("{:.4}", self.objective * 100.0);
        format!("{}%", percent.trim_end_matches('0').trim_end_matches('.'))
    }

    /// The name in camel case, e.g. `ApiAvailability`.
    pub fn camel_name(&self) -> String {
        self.name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// The SLOs of [`SPEC`] in the repository, checked against the declared families.
///
/// # Errors
/// When the spec cannot be read, does not parse, or an SLO is wrong; the message names each.
pub fn objectives() -> anyhow::Result<Vec<Objective>> {
    let text = std::fs::read_to_string(xtask::util::project_root().join(SPEC))
        .with_context(|| format!("read {SPEC}"))?;
    let exported = crate::codegen::exported_families()?;
    parse(&text, &exported).map_err(|problems| {
        anyhow::format_err!(
            "{SPEC} is not a valid SLO spec:\n  {}",
            problems.join("\n  ")
        )
    })
}

/// The generated files and their contents.
///
/// # Errors
/// As [`objectives`].
pub fn generated() -> anyhow::Result<Vec<(&'static str, String)>> {
    let objectives = objectives()?;
    Ok(vec![
        (RULES, rules::file(&objectives)),
        (DASHBOARD, dashboard::file(&objectives)),
    ])
}

/// The spec's SLOs, or every problem found, each with what to change.
fn parse(text: &str, exported: &[Exported]) -> Result<Vec<Objective>, Vec<String>> {
    let spec: Spec = serde_yaml::from_str(text).map_err(|err| {
        vec![format!(
            "{err}; fix it (the file's header lists the fields)"
        )]
    })?;
    let mut problems = Vec::new();
    let mut objectives: Vec<Objective> = Vec::new();
    if spec.slos.is_empty() {
        problems.push("slos is empty; add an SLO".to_owned());
    }
    for slo in spec.slos {
        let mut report = |message: String| problems.push(format!("slo {}: {message}", slo.name));
        if !is_kebab(&slo.name) {
            report(
                "name is not lower-case words joined by `-` (e.g. api-availability); rename it"
                    .to_owned(),
            );
        }
        if objectives.iter().any(|known| known.name == slo.name) {
            report("name is used twice; give each SLO its own".to_owned());
        }
        // NaN fails both comparisons, so it is refused too.
        if !(slo.objective > 0.0 && slo.objective < 1.0) {
            report(format!(
                "objective {} is not strictly between 0 and 1; write the share of good events, e.g. 0.999 for 99.9%",
                slo.objective
            ));
        }
        if slo.description.trim().is_empty() {
            report("description is empty; say what a good event is".to_owned());
        }
        let ratio = match ratio(&slo.sli, slo.service, exported) {
            Ok(ratio) => ratio,
            Err(sli_problems) => {
                sli_problems.into_iter().for_each(report);
                continue;
            }
        };
        objectives.push(Objective {
            name: slo.name,
            service: slo.service,
            objective: slo.objective,
            window: slo.window,
            description: slo.description.trim().to_owned(),
            ratio,
        });
    }
    if problems.is_empty() {
        Ok(objectives)
    } else {
        Err(problems)
    }
}

/// `api-availability`, not `Api_availability` or `api--x-`.
fn is_kebab(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The SLI as selectors, held to the family it names.
fn ratio(sli: &Sli, service: Service, exported: &[Exported]) -> Result<ErrorRatio, Vec<String>> {
    match sli {
        Sli::ErrorRatio { errors, total } => {
            let errors = Selector::read("errors", errors, service, exported);
            let total = Selector::read("total", total, service, exported);
            let mut problems = Vec::new();
            for selector in [&errors, &total].into_iter().flatten() {
                if selector.family.kind != Kind::Counter {
                    problems.push(format!(
                        "{} selects {}, a {}; an error ratio needs a counter (for a histogram, use the `latency` SLI)",
                        selector.role,
                        selector.family.name,
                        selector.family.kind.as_str()
                    ));
                }
            }
            match (errors, total) {
                (Ok(errors), Ok(total)) if problems.is_empty() => Ok(ErrorRatio::Events {
                    errors: errors.to_string(),
                    total: total.to_string(),
                }),
                (errors, total) => {
                    problems.extend(errors.err().into_iter().flatten());
                    problems.extend(total.err().into_iter().flatten());
                    Err(problems)
                }
            }
        }
        Sli::Latency {
            histogram,
            threshold,
        } => {
            let histogram = Selector::read("histogram", histogram, service, exported)?;
            let Kind::Histogram { buckets } = histogram.family.kind else {
                return Err(vec![format!(
                    "histogram selects {}, a {}; name a histogram family (without `_bucket`)",
                    histogram.family.name,
                    histogram.family.kind.as_str()
                )]);
            };
            if !buckets.contains(threshold) {
                let bounds: Vec<String> = buckets.iter().map(ToString::to_string).collect();
                return Err(vec![format!(
                    "threshold {threshold} is no bucket bound of {} (its buckets: {}), so the share of faster events cannot be read from it; use one of those bounds, or add the bound to the histogram's declaration",
                    histogram.family.name,
                    bounds.join(", ")
                )]);
            }
            Ok(ErrorRatio::Slower {
                fast: histogram.bucket(&le_matcher(*threshold)),
                all: histogram.bucket("le=\"+Inf\""),
            })
        }
    }
}

/// Selects the bucket of bound `le`. The exporter writes `le="1"`, Prometheus 3 stores
/// `le="1.0"` (it normalises bounds to floats), so a whole-number bound matches both.
fn le_matcher(le: f64) -> String {
    if le.fract() == 0.0 {
        format!("le=~\"{le}(\\\\.0)?\"")
    } else {
        format!("le=\"{le}\"")
    }
}

/// A selector of the spec, parsed, naming a declared family of its service.
struct Selector {
    /// Which field of the SLI it is, for messages.
    role: &'static str,
    family: &'static MetricFamily,
    /// Its matchers, without the metric name.
    matchers: Vec<Matcher>,
}

impl Selector {
    fn read(
        role: &'static str,
        text: &str,
        service: Service,
        exported: &[Exported],
    ) -> Result<Self, Vec<String>> {
        let selector = match promql_parser::parser::parse(text) {
            Ok(Expr::VectorSelector(selector))
                if selector.offset.is_none()
                    && selector.at.is_none()
                    && selector.matchers.or_matchers.is_empty() =>
            {
                selector
            }
            Ok(_) => {
                return Err(vec![format!(
                    "{role} {text:?} is not a plain selector such as metric{{label=\"value\"}}; the generator adds rate() and the windows"
                )]);
            }
            Err(err) => {
                return Err(vec![format!(
                    "{role} {text:?} does not parse as PromQL ({}); fix it",
                    err.trim()
                )]);
            }
        };
        let family = Self::family(role, &selector, service, exported).map_err(|p| vec![p])?;
        let matchers: Vec<Matcher> = (selector.matchers.matchers.into_iter())
            .filter(|matcher| matcher.name != METRIC_NAME)
            .collect();
        let problems: Vec<String> = matchers
            .iter()
            .filter_map(|matcher| Self::label_problem(role, family, matcher))
            .collect();
        if problems.is_empty() {
            Ok(Self {
                role,
                family,
                matchers,
            })
        } else {
            Err(problems)
        }
    }

    /// The family the selector names, which `service`'s binary must export.
    fn family(
        role: &str,
        selector: &VectorSelector,
        service: Service,
        exported: &[Exported],
    ) -> Result<&'static MetricFamily, String> {
        let name = selector.name.clone().or_else(|| {
            let named = selector.matchers.find_matchers(METRIC_NAME).into_iter();
            named
                .filter(|matcher| matcher.op == MatchOp::Equal)
                .map(|matcher| matcher.value)
                .next()
        });
        let Some(name) = name else {
            return Err(format!(
                "{role} names no metric; start it with a family's name"
            ));
        };
        let binary = service.binary().name;
        match exported.iter().find(|e| e.family.name == name) {
            None => Err(format!(
                "{role} selects {name}, which is no metric family the binaries declare (docs/metrics.md); use one of those, or declare it where it is recorded"
            )),
            Some(e) if !e.binaries.contains(&binary) => Err(format!(
                "{role} selects {name}, which {} exports, not {binary} (service: {}); change the service or the metric",
                e.binaries.join(" and "),
                service.label()
            )),
            Some(e) => Ok(e.family),
        }
    }

    /// What is wrong with one matcher: a label the family does not have, or a value it never takes.
    fn label_problem(role: &str, family: &MetricFamily, matcher: &Matcher) -> Option<String> {
        if TARGET_LABELS.contains(&matcher.name.as_str()) {
            return None;
        }
        let Some(label) = family.labels.iter().find(|l| l.name == matcher.name) else {
            let labels: Vec<&str> = family.labels.iter().map(|l| l.name).collect();
            return Some(format!(
                "{role} matches label {}, which {} does not have (its labels: {}); use one of those",
                matcher.name,
                family.name,
                labels.join(", ")
            ));
        };
        let LabelValues::OneOf(values) = label.values else {
            return None;
        };
        let known = match matcher.op {
            MatchOp::Equal | MatchOp::NotEqual => values.contains(&matcher.value.as_str()),
            MatchOp::Re(_) | MatchOp::NotRe(_) => values.iter().any(|v| matcher.is_match(v)),
        };
        (!known).then(|| {
            format!(
                "{role}: {matcher} matches none of the values {} declares for {} ({}); use those",
                family.name,
                label.name,
                values.join(", ")
            )
        })
    }

    /// The `_bucket` series of the histogram with one more matcher, `le`.
    fn bucket(&self, le: &str) -> String {
        let mut matchers: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        matchers.push(le.to_owned());
        format!("{}_bucket{{{}}}", self.family.name, matchers.join(","))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let matchers: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        if matchers.is_empty() {
            write!(f, "{}", self.family.name)
        } else {
            write!(f, "{}{{{}}}", self.family.name, matchers.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in rules and dashboard are what the spec generates.
    #[test]
    fn slo_files_are_fresh() {
        crate::codegen::assert_fresh(generated());
    }

    /// The repository's spec passes.
    #[test]
    fn the_spec_is_valid() {
        let objectives = objectives().unwrap();
        let names: Vec<&str> = objectives.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["api-availability", "api-latency", "poll-freshness"]);
        assert_eq!(objectives[0].percent(), "99.9%");
        assert_eq!(objectives[0].camel_name(), "ApiAvailability");
    }

    const GOOD: &str = r#"
slos:
  - name: api-availability
    service: api
    objective: 0.999
    window: 30d
    description: Requests answered without 5xx.
    sli:
      error_ratio:
        errors: 'axum_http_requests_total{status=~"5.."}'
        total: axum_http_requests_total
  - name: api-latency
    service: api
    objective: 0.99
    window: 30d
    description: Fast requests.
    sli:
      latency:
        histogram: axum_http_requests_duration_seconds
        threshold: 0.25
"#;

    fn problems(text: &str) -> Vec<String> {
        let exported = crate::codegen::exported_families().unwrap();
        match parse(text, &exported) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// The fixture is clean, and the selectors it generates are those it states, plus `le`.
    #[test]
    fn good_spec_generates_its_selectors() {
        let exported = crate::codegen::exported_families().unwrap();
        let objectives = parse(GOOD, &exported).unwrap();
        assert_eq!(
            objectives[0].error_ratio("5m"),
            [
                "(sum(rate(axum_http_requests_total{status=~\"5..\"}[5m])) or vector(0))",
                "  /",
                "sum(rate(axum_http_requests_total[5m]))"
            ]
        );
        assert_eq!(
            objectives[1].error_ratio("1h")[1],
            "  sum(rate(axum_http_requests_duration_seconds_bucket{le=\"0.25\"}[1h]))"
        );
    }

    /// A whole-number bound selects the bucket as the exporter writes it (`1`) and as
    /// Prometheus 3 stores it (`1.0`), and no other bucket.
    #[test]
    fn whole_number_bounds_match_both_spellings() {
        let selector = format!("x{{{}}}", le_matcher(1.0));
        let Ok(Expr::VectorSelector(selector)) = promql_parser::parser::parse(&selector) else {
            panic!("{selector} does not parse");
        };
        let le = &selector.matchers.matchers[0];
        let matched: Vec<&str> = ["1", "1.0", "10", "0.1", "1.5"]
            .into_iter()
            .filter(|bound| le.is_match(bound))
            .collect();
        assert_eq!(matched, ["1", "1.0"]);
        assert_eq!(le_matcher(0.25), "le=\"0.25\"");
    }

    /// Each edit of the clean fixture is refused with one message that says what to change.
    #[test]
    fn bad_specs_are_refused() {
        let cases = [
            (
                "    window: 30d\n",
                "    window: 30d\n    owner: me\n",
                "unknown field `owner`",
            ),
            (
                "window: 30d\n    description: Fast",
                "window: 28d\n    description: Fast",
                "unknown variant `28d`, expected `30d`",
            ),
            (
                "objective: 0.999",
                "objective: 99.9",
                "objective 99.9 is not strictly between 0 and 1",
            ),
            (
                "objective: 0.999",
                "objective: 1",
                "objective 1 is not strictly between 0 and 1",
            ),
            (
                "objective: 0.99\n",
                "objective: 0\n",
                "objective 0 is not strictly between 0 and 1",
            ),
            (
                "threshold: 0.25",
                "threshold: 0.3",
                "threshold 0.3 is no bucket bound of axum_http_requests_duration_seconds (its buckets: 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)",
            ),
            (
                "total: axum_http_requests_total",
                "total: axum_http_requests",
                "total selects axum_http_requests, which is no metric family the binaries declare",
            ),
            (
                "histogram: axum_http_requests_duration_seconds",
                "histogram: axum_http_requests_duration_seconds_bucket",
                "histogram selects axum_http_requests_duration_seconds_bucket, which is no metric family",
            ),
            (
                "histogram: axum_http_requests_duration_seconds",
                "histogram: axum_http_requests_total",
                "histogram selects axum_http_requests_total, a counter; name a histogram family",
            ),
            (
                "total: axum_http_requests_total",
                "total: worker_jobs_total",
                "total selects worker_jobs_total, which ampel-worker exports, not ampel-api (service: api)",
            ),
            (
                "total: axum_http_requests_total",
                "total: axum_http_requests_pending",
                "total selects axum_http_requests_pending, a gauge; an error ratio needs a counter",
            ),
            (
                "{status=~\"5..\"}",
                "{code=~\"5..\"}",
                "errors matches label code, which axum_http_requests_total does not have (its labels: method, status, endpoint)",
            ),
            (
                "'axum_http_requests_total{status=~\"5..\"}'",
                "'rate(axum_http_requests_total[5m])'",
                "is not a plain selector",
            ),
            (
                "'axum_http_requests_total{status=~\"5..\"}'",
                "'axum_http_requests_total{'",
                "does not parse as PromQL",
            ),
            (
                "name: api-latency",
                "name: api-availability",
                "slo api-availability: name is used twice",
            ),
            (
                "name: api-latency",
                "name: ApiLatency",
                "slo ApiLatency: name is not lower-case words joined by `-`",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(GOOD.contains(from), "fixture has no {from:?}");
            let found = problems(&GOOD.replacen(from, to, 1));
            assert!(
                found.len() == 1 && found[0].contains(expected),
                "{to:?} should give one problem containing {expected:?}, got {found:#?}"
            );
        }
        assert!(problems(GOOD).is_empty());
    }

    /// A value a label with a closed set never takes (a typo) is refused; a declared one passes.
    #[test]
    fn closed_label_values_are_held_to_the_declaration() {
        let spec = |status: &str| {
            format!(
                "slos:\n  - name: poll\n    service: worker\n    objective: 0.99\n    window: 30d\n    description: Polls.\n    sli:\n      error_ratio:\n        errors: 'worker_jobs_total{{{status}}}'\n        total: worker_jobs_total\n"
            )
        };
        assert!(problems(&spec("status!=\"success\"")).is_empty());
        assert!(problems(&spec("status=~\"retry|failed\"")).is_empty());
        for typo in ["status!=\"sucess\"", "status=~\"error|fail\""] {
            let found = problems(&spec(typo));
            assert!(
                found.len() == 1
                    && found[0].contains("matches none of the values worker_jobs_total declares for status (success, retry, failed)"),
                "{typo}: {found:#?}"
            );
        }
    }
}
