//! For the binaries' tests (feature `test-support`): does a `/metrics` scrape hold exactly the
//! declared families, with their declared labels and values?

use std::collections::{BTreeMap, BTreeSet};

use crate::family::{Kind, LabelValues, MetricFamily};

/// Everything in `scrape` (Prometheus text format) that disagrees with `families`, one line each:
/// a declared family with no series, a series of no declared family, a label the family does
/// not declare or a series without one it does, a value outside a closed label's set. Empty when
/// they agree.
#[must_use]
pub fn scrape_problems(families: &[&[MetricFamily]], scrape: &str) -> Vec<String> {
    let mut by_series = BTreeMap::new();
    for family in families.iter().copied().flatten() {
        for series in family.series_names() {
            by_series.insert(series, family);
        }
    }
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for line in scrape.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, labels)) = parse_series(line) else {
            problems.push(format!("cannot read the scrape line {line:?}"));
            continue;
        };
        let Some(family) = by_series.get(series) else {
            problems.push(format!(
                "{series} is exported but no declared family has it: declare it next to where it is recorded"
            ));
            continue;
        };
        seen.insert(family.name);
        let bucket_bound =
            matches!(family.kind, Kind::Histogram { .. }) && series.ends_with("_bucket");
        for (name, value) in &labels {
            if bucket_bound && name == "le" {
                continue;
            }
            match family.labels.iter().find(|label| label.name == name) {
                None => problems.push(format!(
                    "{line}: label {name} is not declared for {}",
                    family.name
                )),
                Some(label) => {
                    if let LabelValues::OneOf(values) = label.values
                        && !values.contains(&value.as_str())
                    {
                        problems.push(format!(
                            "{line}: {name}={value:?} is not one of the declared values {values:?}"
                        ));
                    }
                }
            }
        }
        for label in family.labels {
            if !labels.iter().any(|(name, _)| name == label.name) {
                problems.push(format!(
                    "{line}: the declared label {} is missing",
                    label.name
                ));
            }
        }
    }
    for family in families.iter().copied().flatten() {
        if !seen.contains(family.name) {
            problems.push(format!("{} is declared but has no series", family.name));
        }
    }
    problems
}

/// `name{a="x",b="y"} 1` -> `("name", [("a", "x"), ("b", "y")])`, label values unescaped.
/// The scrapes read here come from metrics-exporter-prometheus, which writes every series on
/// one line in this shape. Not prometheus-parse: it skips any series whose label value holds a
/// `}` (route templates like `/api/repositories/{id}`), splits values at `,` and `=`, keeps
/// escapes, and drops unreadable lines without a word, so undeclared labels would go unseen.
fn parse_series(line: &str) -> Option<(&str, Vec<(String, String)>)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = Vec::new();
    let Some(mut rest) = line[name_end..].strip_prefix('{') else {
        return Some((name, labels));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return after.starts_with(' ').then_some((name, labels));
        }
        let (key, after_key) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after_key.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (at, '"') => break at,
                (_, other) => value.push(other),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after_key[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::scrape_problems;
    use crate::family::{Label, MetricFamily};

    const JOBS: MetricFamily = MetricFamily::counter(
        "jobs_total",
        "Jobs.",
        &[Label::one_of("status", &["ok", "failed"])],
    );
    const TIME: MetricFamily = MetricFamily::histogram(
        "job_seconds",
        "Time.",
        &[Label::open("queue", "the queue's name")],
        &[1.0],
    );
    const FAMILIES: &[&[MetricFamily]] = &[&[JOBS, TIME]];

    /// A scrape with every family, declared labels and values only, has no problem.
    #[test]
    fn an_agreeing_scrape_passes() {
        let scrape = "# TYPE jobs_total counter\njobs_total{status=\"ok\"} 1\n\
            job_seconds_bucket{queue=\"a,\\\"{b}\\\"\",le=\"1\"} 1\njob_seconds_sum{queue=\"a\"} 0.5\n\
            job_seconds_count{queue=\"a\"} 1\n";
        assert_eq!(scrape_problems(FAMILIES, scrape), Vec::<String>::new());
    }

    /// Each kind of disagreement is reported.
    #[test]
    fn disagreements_are_reported() {
        let scrape =
            "jobs_total{status=\"running\",extra=\"x\"} 1\nother_total 2\nbroken{status=\"x 1\n";
        let problems = scrape_problems(FAMILIES, scrape);
        let expected = [
            "jobs_total{status=\"running\",extra=\"x\"} 1: status=\"running\" is not one of the declared values [\"ok\", \"failed\"]",
            "jobs_total{status=\"running\",extra=\"x\"} 1: label extra is not declared for jobs_total",
            "other_total is exported but no declared family has it: declare it next to where it is recorded",
            "cannot read the scrape line \"broken{status=\\\"x 1\"",
            "job_seconds is declared but has no series",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for message in expected {
            assert!(
                problems.iter().any(|p| p == message),
                "{message} not in {problems:#?}"
            );
        }
    }

    /// A series without a declared label is reported.
    #[test]
    fn a_missing_label_is_reported() {
        let problems =
            scrape_problems(FAMILIES, "jobs_total 1\njob_seconds_count{queue=\"a\"} 1\n");
        assert_eq!(
            problems,
            ["jobs_total 1: the declared label status is missing"]
        );
    }
}
