//! Rules on the alerting rules: each file parses; each alert has `labels.severity` (`critical` or
//! `warning`), `annotations.summary`, `description` and `runbook_url`; the runbook URL is
//! `observability/RUNBOOK.md#<anchor>` and that heading exists; a promtool test names the alert.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{Problem, Sources};

const RULES: &str = "observability/prometheus/rules";
const TESTS: &str = "observability/prometheus/tests";
const RUNBOOK: &str = "observability/RUNBOOK.md";
const SEVERITIES: [&str; 2] = ["critical", "warning"];
const ANNOTATIONS: [&str; 3] = ["summary", "description", "runbook_url"];

/// A Prometheus rule file.
#[derive(Debug, Deserialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
pub struct Group {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
pub struct Rule {
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// `("alert", name)` or `("record", name)`.
    pub fn name(&self) -> (&'static str, &str) {
        match (&self.alert, &self.record) {
            (Some(alert), _) => ("alert", alert),
            (None, Some(record)) => ("record", record),
            (None, None) => ("rule", "without a name"),
        }
    }
}

/// The rule files that parse, with their text (parse errors are [`check`]'s to report).
pub fn rule_files(sources: &Sources) -> Vec<(&str, &str, RuleFile)> {
    sources
        .in_folder(RULES, &[".yml", ".yaml"])
        .filter_map(|(file, text)| Some((file, text, serde_yaml::from_str(text).ok()?)))
        .collect()
}

pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    for (file, text) in sources.in_folder(RULES, &[".yml", ".yaml"]) {
        if let Err(err) = serde_yaml::from_str::<RuleFile>(text) {
            problems.push(Problem::new(
                file,
                err.location().map(|location| location.line()),
                format!("not a Prometheus rule file ({err}); fix the YAML"),
            ));
        }
    }
    let anchors = sources.get(RUNBOOK).map(anchors);
    let tested: BTreeSet<String> = sources
        .in_folder(TESTS, &[".yml", ".yaml"])
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| {
            let line = line.trim();
            line.strip_prefix("- ")
                .unwrap_or(line)
                .strip_prefix("alertname:")
        })
        .map(|name| name.trim().trim_matches(['"', '\'']).to_owned())
        .collect();
    for (file, text, rules) in rule_files(sources) {
        for rule in rules.groups.iter().flat_map(|group| &group.rules) {
            let Some(alert) = &rule.alert else { continue };
            let line = super::line_of(text, &format!("alert: {alert}"));
            let mut report = |message: String| {
                problems.push(Problem::new(
                    file,
                    line,
                    format!("alert {alert}: {message}"),
                ));
            };
            match rule.labels.get("severity") {
                Some(severity) if SEVERITIES.contains(&severity.as_str()) => {}
                other => report(format!(
                    "labels.severity is {other:?}; set it to one of {SEVERITIES:?}"
                )),
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
                check_runbook_url(alert, url, anchors.as_ref(), &mut report);
            }
            if !tested.contains(alert) {
                report(format!(
                    "no promtool test in {TESTS}/ names it (alertname: {alert}); add a case where it fires and one where it stays quiet"
                ));
            }
        }
    }
}

fn check_runbook_url(
    alert: &str,
    url: &str,
    anchors: Option<&BTreeSet<String>>,
    report: &mut impl FnMut(String),
) {
    let Some(anchor) = url
        .strip_prefix(RUNBOOK)
        .and_then(|rest| rest.strip_prefix('#'))
    else {
        report(format!(
            "runbook_url {url:?} is not {RUNBOOK}#<anchor>; point it at the alert's section there"
        ));
        return;
    };
    match anchors {
        None => report(format!("{RUNBOOK} is missing; restore it from git")),
        Some(anchors) if !anchors.contains(anchor) => report(format!(
            "runbook_url points at #{anchor}, which is no heading of {RUNBOOK}; add a section \"## {alert}\" there (anchor #{})",
            slug(alert)
        )),
        Some(_) => {}
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

    const GOOD: &str = "groups:
  - name: g
    rules:
      - alert: TargetDown
        expr: up == 0
        labels:
          severity: critical
        annotations:
          summary: down
          description: it is down
          runbook_url: observability/RUNBOOK.md#targetdown
";
    const RUNBOOK_TEXT: &str = "# Runbook\n\n## TargetDown\n\nRestart it.\n";
    const TEST: &str = "tests:\n  - alert_rule_test:\n      - alertname: TargetDown\n";

    fn problems_of(rules: &str, runbook: &str) -> Vec<String> {
        let sources = Sources::from_files(&[
            ("observability/prometheus/rules/targets.yml", rules),
            ("observability/prometheus/tests/targets.test.yml", TEST),
            (RUNBOOK, runbook),
        ]);
        let mut problems = Vec::new();
        check(&sources, &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    /// The fixture is clean, so each test below shows one rule.
    #[test]
    fn good_rules_pass() {
        assert_eq!(problems_of(GOOD, RUNBOOK_TEXT), Vec::<String>::new());
    }

    /// A rule file that is not one.
    #[test]
    fn unparsable_rule_file() {
        let problems = problems_of("groups: 3\n", RUNBOOK_TEXT);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("not a Prometheus rule file"),
            "{problems:?}"
        );
    }

    /// A severity outside the two the routing knows.
    #[test]
    fn bad_severity() {
        let problems = problems_of(&GOOD.replace("critical", "page"), RUNBOOK_TEXT);
        assert_eq!(
            problems,
            [
                "observability/prometheus/rules/targets.yml:4: alert TargetDown: labels.severity is Some(\"page\"); set it to one of [\"critical\", \"warning\"]"
            ]
        );
    }

    /// A missing annotation.
    #[test]
    fn missing_annotation() {
        let problems = problems_of(&GOOD.replace("          summary: down\n", ""), RUNBOOK_TEXT);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].ends_with("annotations.summary is missing; add it"));
    }

    /// A runbook anchor with no heading behind it.
    #[test]
    fn runbook_anchor_missing() {
        let problems = problems_of(GOOD, "# Runbook\n\n## Target Down\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("#targetdown, which is no heading of observability/RUNBOOK.md"),
            "{problems:?}"
        );
    }

    /// A runbook URL that is not repo-relative.
    #[test]
    fn runbook_url_elsewhere() {
        let rules = GOOD.replace(
            "observability/RUNBOOK.md#targetdown",
            "https://wiki/targetdown",
        );
        let problems = problems_of(&rules, RUNBOOK_TEXT);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("is not observability/RUNBOOK.md#<anchor>"));
    }

    /// An alert no promtool test names.
    #[test]
    fn untested_alert() {
        let rules = GOOD.replace("TargetDown", "TargetGone");
        let runbook = RUNBOOK_TEXT.replace("TargetDown", "TargetGone");
        let problems = problems_of(&rules.replace("#targetdown", "#targetgone"), &runbook);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("no promtool test"), "{problems:?}");
    }

    /// Headings become GitHub anchors.
    #[test]
    fn github_slugs() {
        assert_eq!(slug("ApiHigh5xxRatio"), "apihigh5xxratio");
        assert_eq!(slug("What to do: first checks"), "what-to-do-first-checks");
    }
}
