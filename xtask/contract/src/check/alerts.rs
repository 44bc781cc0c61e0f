//! Rules on the alerting rules: each file parses; each alert has `labels.severity` (`critical`,
//! `warning` or `info`), `labels.service`, `annotations.summary`, `description` and `runbook_url`; the runbook URL is
//! `observability/RUNBOOK.md#<anchor>` and that heading exists; a promtool test names the alert.
//! promtool (`promtool.rs`) checks the files' schema again and runs the tests.

use std::collections::BTreeSet;

use otel_testkit::queries::{Rule, RuleFile};
use serde::Deserialize;
use xtask::queries::RULES;

use super::{Problem, Sources};

const TESTS: &str = "observability/prometheus/tests";
const RUNBOOK: &str = "observability/RUNBOOK.md";
const ANNOTATIONS: [&str; 3] = ["summary", "description", "runbook_url"];

/// `alert X` or `record X`, and the line of `text` that names the rule.
fn name(rule: &Rule, text: &str) -> (String, Option<usize>) {
    let (kind, name) = rule.kind_and_name();
    (format!("{kind} {name}"), line(kind, name, text))
}

/// The line of rule file `text` that names rule `name` of `kind` (`alert` or `record`).
pub fn line(kind: &str, name: &str, text: &str) -> Option<usize> {
    super::line_of(text, &format!("{kind}: {name}"))
}

/// A promtool test file, as far as it names alerts.
#[derive(Deserialize)]
struct TestFile {
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Deserialize)]
struct AlertTest {
    alertname: String,
}

/// Each rule file with its text, parsed.
fn rule_files(
    sources: &Sources,
) -> impl Iterator<Item = (&str, &str, serde_yaml::Result<RuleFile>)> {
    sources
        .in_folder(RULES, &[".yml", ".yaml"])
        .map(|(file, text)| (file, text, RuleFile::parse(text)))
}

pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    let anchors = sources.get(RUNBOOK).map(anchors);
    // A test file that does not parse is promtool's `test rules` to report.
    let tested: BTreeSet<String> = sources
        .in_folder(TESTS, &[".yml", ".yaml"])
        .filter_map(|(_, text)| serde_yaml::from_str::<TestFile>(text).ok())
        .flat_map(|file| file.tests)
        .flat_map(|group| group.alert_rule_test)
        .map(|test| test.alertname)
        .collect();
    for (file, text, parsed) in rule_files(sources) {
        let rules = match parsed {
            Ok(rules) => rules,
            Err(err) => {
                problems.push(Problem::new(
                    file,
                    err.location().map(|location| location.line()),
                    format!("not a Prometheus rule file ({err}); fix the YAML"),
                ));
                continue;
            }
        };
        for rule in rules.rules() {
            let Some(alert) = &rule.alert else { continue };
            let (what, line) = name(rule, text);
            let mut report = |message: String| {
                problems.push(Problem::new(file, line, format!("{what}: {message}")))
            };
            // The severities are those Alertmanager routes (check/alertmanager.rs).
            let severities: Vec<&str> = super::alertmanager::DESTINATIONS
                .iter()
                .map(|destination| destination.severity)
                .collect();
            match rule.labels.get(super::alertmanager::SEVERITY_LABEL) {
                Some(severity) if severities.contains(&severity.as_str()) => {}
                other => report(format!(
                    "labels.severity is {other:?}; set it to one of {severities:?}"
                )),
            }
            let service = super::alertmanager::SERVICE_LABEL;
            if rule
                .labels
                .get(service)
                .is_none_or(|value| value.trim().is_empty())
            {
                report(format!(
                    "labels.{service} is missing; set it to the failing service (api, worker, postgres, redis, or \"{{{{ $labels.job }}}}\"): Alertmanager groups and inhibits by it"
                ));
            }
            for key in ANNOTATIONS {
                if rule
                    .annotations
                    .get(key)
                    .is_none_or(|value| value.trim().is_empty())
                {
                    report(format!("annotations.{key} is missing; add it"));
                }
            }
            if let Some(url) = rule.annotations.get("runbook_url") {
                match url
                    .strip_prefix(RUNBOOK)
                    .and_then(|rest| rest.strip_prefix('#'))
                {
                    None => report(format!(
                        "runbook_url {url:?} is not {RUNBOOK}#<anchor>; point it at the alert's section there"
                    )),
                    Some(anchor) => match &anchors {
                        None => report(format!("{RUNBOOK} is missing; restore it from git")),
                        Some(anchors) if !anchors.contains(anchor) => report(format!(
                            "runbook_url points at #{anchor}, which is no heading of {RUNBOOK}; add a section \"## {alert}\" there (anchor #{})",
                            slug(alert)
                        )),
                        Some(_) => {}
                    },
                }
            }
            if !tested.contains(alert) {
                report(format!(
                    "no promtool test in {TESTS}/ names it (alertname: {alert}); add a case where it fires and one where it stays quiet"
                ));
            }
        }
    }
}

/// The GitHub anchors of a Markdown file's headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| slug(line.trim_start_matches('#').trim()))
        .collect()
}

/// GitHub's heading anchor: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "observability/prometheus/rules/targets.yml";
    const TEST_AT: &str = "observability/prometheus/tests/targets.test.yml";
    const FIXTURE: [(&str, &str); 3] = [
        (
            AT,
            "groups:
  - name: g
    rules:
      - alert: TargetDown
        expr: up == 0
        labels:
          severity: critical
          service: \"{{ $labels.job }}\"
        annotations:
          summary: down
          description: it is down
          runbook_url: observability/RUNBOOK.md#targetdown
",
        ),
        (
            TEST_AT,
            "tests:\n  - alert_rule_test:\n      - alertname: TargetDown\n",
        ),
        (RUNBOOK, "# Runbook\n\n## TargetDown\n\nRestart it.\n"),
    ];

    /// Each edit of the clean fixture makes one problem, which says what to change.
    #[test]
    fn each_rule_fires_on_its_break() {
        let edits = [
            (AT, FIXTURE[0].1, "groups: 3\n"),
            (AT, "critical", "page"),
            (AT, "          service: \"{{ $labels.job }}\"\n", ""),
            (AT, "          summary: down\n", ""),
            (RUNBOOK, "## TargetDown", "## Target Down"),
            (AT, "url: observability/", "url: https://wiki/"),
            (TEST_AT, "TargetDown", "TargetGone"),
        ];
        let found = Sources::found_after_edits(&FIXTURE, &edits, check);
        assert_eq!(
            found,
            [
                "observability/prometheus/rules/targets.yml:1: not a Prometheus rule file (groups: invalid type: integer `3`, expected a sequence at line 1 column 9); fix the YAML",
                "observability/prometheus/rules/targets.yml:4: alert TargetDown: labels.severity is Some(\"page\"); set it to one of [\"critical\", \"warning\", \"info\"]",
                "observability/prometheus/rules/targets.yml:4: alert TargetDown: labels.service is missing; set it to the failing service (api, worker, postgres, redis, or \"{{ $labels.job }}\"): Alertmanager groups and inhibits by it",
                "observability/prometheus/rules/targets.yml:4: alert TargetDown: annotations.summary is missing; add it",
                "observability/prometheus/rules/targets.yml:4: alert TargetDown: runbook_url points at #targetdown, which is no heading of observability/RUNBOOK.md; add a section \"## TargetDown\" there (anchor #targetdown)",
                "observability/prometheus/rules/targets.yml:4: alert TargetDown: runbook_url \"https://wiki/RUNBOOK.md#targetdown\" is not observability/RUNBOOK.md#<anchor>; point it at the alert's section there",
                "observability/prometheus/rules/targets.yml:4: alert TargetDown: no promtool test in observability/prometheus/tests/ names it (alertname: TargetDown); add a case where it fires and one where it stays quiet",
            ]
        );
    }

    /// Headings become GitHub anchors.
    #[test]
    fn github_slugs() {
        assert_eq!(slug("ApiHigh5xxRatio"), "apihigh5xxratio");
        assert_eq!(slug("What to do: first checks"), "what-to-do-first-checks");
    }
}
