//! The spec (YAML, closed: `deny_unknown_fields`) and the [`Objective`]s it yields once every
//! SLO has been checked.

use std::fmt;

use serde::Deserialize;

use crate::Service;
use crate::sli::{self, ErrorRatio};

/// The spec file.
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
    /// The [`Service::name`] whose metric the SLI reads.
    service: String,
    /// The share of good events, strictly between 0 and 1.
    objective: f64,
    window: Window,
    /// What a good event is, for the alerts and the dashboard.
    description: String,
    /// `error_ratio: {...}` or `latency: {...}`: a map of one key, not a YAML tag.
    #[serde(with = "serde_yaml::with::singleton_map")]
    sli: Sli,
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
pub(crate) enum Sli {
    /// Bad events over all events, two selectors on a counter.
    ErrorRatio { errors: String, total: String },
    /// Events slower than `threshold` seconds, from a histogram's buckets.
    Latency { histogram: String, threshold: f64 },
}

/// An SLO whose SLI has been held to its service's families: what the generators read.
#[derive(Debug)]
pub struct Objective {
    pub name: String,
    /// The [`Service::name`].
    pub service: String,
    pub objective: f64,
    pub window: Window,
    pub description: String,
    ratio: ErrorRatio,
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

/// A spec that cannot be used: every problem found, each saying what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub problems: Vec<String>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for Invalid {}

/// The spec's SLOs, each SLI held to the families of the service it names.
///
/// # Errors
/// When the text does not parse, or any SLO is wrong: all problems at once.
pub fn parse(text: &str, services: &[Service]) -> Result<Vec<Objective>, Invalid> {
    let spec: Spec = serde_yaml::from_str(text).map_err(|err| Invalid {
        problems: vec![format!(
            "{err}; fix the spec there (prometheus-slo's README lists the fields)"
        )],
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
        let Some(service) = services.iter().find(|s| s.name == slo.service) else {
            let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            report(format!(
                "service {} is unknown; use one of {}",
                slo.service,
                known.join(", ")
            ));
            continue;
        };
        let ratio = match sli::ratio(&slo.sli, service, services) {
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
        Err(Invalid { problems })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Family, Label};

    /// Two services as a caller would declare them: a web server's request metrics and a job
    /// runner's, one label with a closed set of values.
    fn services() -> Vec<Service> {
        let http = || {
            vec![
                Label::open("method"),
                Label::open("status"),
                Label::open("endpoint"),
            ]
        };
        let buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        vec![
            Service {
                name: "api".to_owned(),
                families: vec![
                    Family::counter("axum_http_requests_total", http()),
                    Family::histogram("axum_http_requests_duration_seconds", buckets, http()),
                    Family::gauge("axum_http_requests_pending", vec![]),
                ],
            },
            Service {
                name: "worker".to_owned(),
                families: vec![Family::counter(
                    "worker_jobs_total",
                    vec![
                        Label::open("job_type"),
                        Label::one_of("status", ["success", "retry", "failed"]),
                    ],
                )],
            },
        ]
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
        match parse(text, &services()) {
            Ok(_) => Vec::new(),
            Err(invalid) => invalid.problems,
        }
    }

    /// The fixture is clean, and the selectors it generates are those it states, plus `le`.
    #[test]
    fn good_spec_generates_its_selectors() {
        let objectives = parse(GOOD, &services()).unwrap();
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
        assert_eq!(objectives[0].percent(), "99.9%");
        assert_eq!(objectives[0].camel_name(), "ApiAvailability");
        assert_eq!(objectives[1].service, "api");
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
                "description: Fast requests.",
                "description: ' '",
                "slo api-latency: description is empty",
            ),
            (
                "service: api",
                "service: web",
                "slo api-availability: service web is unknown; use one of api, worker",
            ),
            (
                "threshold: 0.25",
                "threshold: 0.3",
                "threshold 0.3 is no bucket bound of axum_http_requests_duration_seconds (its buckets: 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)",
            ),
            (
                "total: axum_http_requests_total",
                "total: axum_http_requests",
                "total selects axum_http_requests, which is no metric family api declares (its families: axum_http_requests_total, axum_http_requests_duration_seconds, axum_http_requests_pending)",
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
                "total selects worker_jobs_total, which worker exports, not api; change the service or the metric",
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
                "'{status=~\"5..\"}'",
                "errors names no metric",
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
        assert_eq!(problems("slos: []\n"), ["slos is empty; add an SLO"]);
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
        assert!(problems(&spec("job=\"worker\",job_type=\"anything\"")).is_empty());
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
