//! Alertmanager's routing, checked by its own tool when `amtool` is on PATH (Debian's
//! `prometheus-alertmanager` package has it): observability/alertmanager/alertmanager.yml is
//! rendered by its entrypoint.sh with the environment of compose's `alertmanager` service (its
//! defaults: the values come from compose, never restated here), then `amtool check-config`, then
//! one `amtool config routes test` per severity the alert rules set, each held to
//! [`DESTINATIONS`]. A route for a severity no rule sets is dead, and the inhibit rule must hold
//! to one service. `routes test` cannot check inhibition; the e2e proves that live.

use std::collections::BTreeMap;
use std::path::Path;

use otel_testkit::compose::interpolate;
use otel_testkit::queries::RuleFile;
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use serde::Deserialize;
use xtask::compose::{self as model, MAIN};
use xtask::queries::RULES;

use super::{Problem, Sources, line_of};

pub const TEMPLATE: &str = "observability/alertmanager/alertmanager.yml";
const ENTRYPOINT: &str = "observability/alertmanager/entrypoint.sh";
/// The compose service whose environment renders the template.
const SERVICE: &str = "alertmanager";
/// The label Alertmanager routes by.
pub const SEVERITY_LABEL: &str = "severity";
/// The label it groups and inhibits by: every alert rule sets it (`alerts.rs`).
pub const SERVICE_LABEL: &str = "service";

/// Where the alerts of one severity go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub severity: &'static str,
    /// The receiver's `name:` in alertmanager.yml.
    pub receiver: &'static str,
}

/// The contract README.md ("Alerts: where they go") and RUNBOOK.md describe: a page, a chat
/// message, an email.
pub const DESTINATIONS: [Destination; 3] = [
    Destination {
        severity: "critical",
        receiver: "pagerduty",
    },
    Destination {
        severity: "warning",
        receiver: "slack",
    },
    Destination {
        severity: "info",
        receiver: "email",
    },
];

/// Replaces the root route's receiver in the copy `routes test` reads: an alert that matches no
/// route of its own then shows as this, even where the root's receiver is the one it should get.
const ROOT_STAND_IN: &str = "ampel-check-root-route";

/// What the routing checks find under `root`, or `None` when amtool is not installed (outside CI).
pub fn problems(root: &Path) -> Option<Vec<Problem>> {
    let version = duct::cmd!("amtool", "--version");
    if version.stdout_null().stderr_null().run().is_err() {
        return without_amtool(std::env::var_os("CI").is_some());
    }
    // Unreadable files are the offline rules' to report.
    let (sources, _) = Sources::read(root);
    let mut problems = Vec::new();
    check(&sources, &mut problems);
    Some(problems)
}

/// Under CI a missing amtool is a problem (CI installs it, see .ci/run); elsewhere the check is
/// skipped.
fn without_amtool(under_ci: bool) -> Option<Vec<Problem>> {
    under_ci.then(|| {
        vec![Problem::new(
            TEMPLATE,
            None,
            "amtool is not on PATH, so its routing cannot be checked, and CI must check it: install it (Debian: apt-get install prometheus-alertmanager)",
        )]
    })
}

/// alertmanager.yml after rendering, as far as the rules read it.
#[derive(Debug, Deserialize)]
struct Config {
    route: Route,
    #[serde(default)]
    inhibit_rules: Vec<InhibitRule>,
}

#[derive(Debug, Deserialize)]
struct Route {
    #[serde(default)]
    matchers: Vec<String>,
    /// The older form, `match: {label: value}`.
    #[serde(default, rename = "match")]
    equal: BTreeMap<String, String>,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
struct InhibitRule {
    #[serde(default)]
    equal: Vec<String>,
}

impl Route {
    /// The severities this route and the ones below it match by equality, with the text that
    /// says so (to find its line).
    fn severities(&self, found: &mut Vec<(String, String)>, problems: &mut Vec<String>) {
        if let Some(value) = self.equal.get(SEVERITY_LABEL) {
            found.push((value.clone(), format!("{SEVERITY_LABEL}: {value}")));
        }
        for matcher in &self.matchers {
            // Alertmanager's matchers are PromQL's label matchers.
            match promql_parser::parser::parse(&format!("{{{matcher}}}")) {
                Ok(Expr::VectorSelector(selector)) => found.extend(
                    (selector.matchers.matchers.into_iter())
                        .filter(|m| m.name == SEVERITY_LABEL && m.op == MatchOp::Equal)
                        .map(|m| (m.value, matcher.clone())),
                ),
                _ => problems.push(format!(
                    "matcher {matcher:?} is not label=\"value\" (or !=, =~, !~); quote the value"
                )),
            }
        }
        for route in &self.routes {
            route.severities(found, problems);
        }
    }
}

/// The severities the alert rules set, each with the first alert that sets it and where.
fn rule_severities(sources: &Sources) -> BTreeMap<String, (String, String, Option<usize>)> {
    let mut severities = BTreeMap::new();
    // Files that do not parse are `alerts.rs`'s to report.
    for (file, text) in sources.in_folder(RULES, &[".yml", ".yaml"]) {
        let Ok(rules) = RuleFile::parse(text) else {
            continue;
        };
        for rule in rules.rules() {
            let (Some(alert), Some(severity)) = (&rule.alert, rule.labels.get(SEVERITY_LABEL))
            else {
                continue;
            };
            let line = super::alerts::line("alert", alert, text);
            (severities.entry(severity.clone()))
                .or_insert_with(|| (alert.clone(), file.to_owned(), line));
        }
    }
    severities
}

pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    let (Some(template), Some(entrypoint)) = (sources.get(TEMPLATE), sources.get(ENTRYPOINT))
    else {
        for file in [TEMPLATE, ENTRYPOINT]
            .iter()
            .filter(|f| sources.get(f).is_none())
        {
            problems.push(Problem::new(
                file,
                None,
                "missing; compose runs it: restore it from git",
            ));
        }
        return;
    };
    // Compose files that do not parse are the compose rules' to report.
    let Some(compose) = super::compose::model(sources) else {
        return;
    };
    let Some(service) = compose.services.get(SERVICE) else {
        problems.push(Problem::new(MAIN, None, format!(
            "no service {SERVICE}, whose environment renders {TEMPLATE}; add it (README.md, \"Alerts: where they go\")"
        )));
        return;
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => {
            problems.push(Problem::new(
                TEMPLATE,
                None,
                format!(
                    "no scratch folder to render it in ({err}); free some space in the temp dir"
                ),
            ));
            return;
        }
    };
    let rendered = match render(dir.path(), template, entrypoint, service) {
        Ok(rendered) => rendered,
        Err(message) => {
            problems.push(Problem::new(ENTRYPOINT, None, message));
            return;
        }
    };
    let command = format!(
        "amtool check-config (of {TEMPLATE} rendered with compose's {SERVICE} environment)"
    );
    let run = duct::cmd!("amtool", "check-config", &rendered);
    if let Some(problem) = super::tool_problem(TEMPLATE, &command, run) {
        problems.push(problem);
        return;
    }
    let at = |needle: &str| line_of(template, needle);
    let config: Config = match std::fs::read_to_string(&rendered)
        .map_err(|err| err.to_string())
        .and_then(|text| serde_yaml::from_str(&text).map_err(|err| err.to_string()))
    {
        Ok(config) => config,
        Err(err) => {
            problems.push(Problem::new(
                TEMPLATE,
                None,
                format!(
                    "amtool took it, but it does not read as a route tree ({err}); fix the YAML"
                ),
            ));
            return;
        }
    };
    let severities = rule_severities(sources);
    let routes = match stand_in_root(&rendered, dir.path()) {
        Ok(routes) => routes,
        Err(err) => {
            problems.push(Problem::new(
                TEMPLATE,
                None,
                format!(
                    "cannot write the routing test's copy ({err}); free some space in the temp dir"
                ),
            ));
            return;
        }
    };
    for (severity, (alert, file, line)) in &severities {
        let destination = DESTINATIONS.iter().find(|d| d.severity == severity);
        let Some(destination) = destination else {
            let known: Vec<&str> = DESTINATIONS.iter().map(|d| d.severity).collect();
            problems.push(Problem::new(file, *line, format!(
                "alert {alert}: severity {severity:?} has no receiver in the routing contract (xtask-contract check/alertmanager.rs DESTINATIONS: {known:?}); use one of those"
            )));
            continue;
        };
        let label = format!("{SEVERITY_LABEL}={severity}");
        let service = format!("{SERVICE_LABEL}=check");
        let run = duct::cmd!(
            "amtool",
            "config",
            "routes",
            "test",
            format!("--config.file={}", routes.display()),
            &label,
            &service
        );
        let output = match run.stderr_capture().stdout_capture().unchecked().run() {
            Ok(output) if output.status.success() => output,
            Ok(output) => {
                let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
                problems.push(Problem::new(
                    TEMPLATE,
                    None,
                    format!(
                        "`amtool config routes test {label}` failed ({said}); fix what it names"
                    ),
                ));
                continue;
            }
            Err(err) => {
                problems.push(Problem::new(
                    TEMPLATE,
                    None,
                    format!(
                        "`amtool config routes test` did not run ({err}); is amtool installed?"
                    ),
                ));
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let got: Vec<&str> = stdout.trim().split(',').map(str::trim).collect();
        let want = destination.receiver;
        if got == [ROOT_STAND_IN] {
            problems.push(Problem::new(TEMPLATE, at("routes:"), format!(
                "severity {severity} (set by alert {alert}) matches no route, so it falls through to the root route's receiver; add `- matchers: ['{SEVERITY_LABEL}=\"{severity}\"']` with `receiver: {want}`"
            )));
        } else if got != [want] {
            problems.push(Problem::new(TEMPLATE, at(&format!("{SEVERITY_LABEL}=\"{severity}\"")), format!(
                "severity {severity} (set by alert {alert}) goes to receiver {}, but it must go to {want} only (check/alertmanager.rs DESTINATIONS); fix that route's receiver",
                got.join(", ")
            )));
        }
    }
    let (mut matched, mut unreadable) = (Vec::new(), Vec::new());
    config.route.severities(&mut matched, &mut unreadable);
    for message in unreadable {
        problems.push(Problem::new(TEMPLATE, at("routes:"), message));
    }
    for (severity, text) in matched {
        if !severities.contains_key(&severity) {
            problems.push(Problem::new(TEMPLATE, at(&text), format!(
                "the route for severity {severity} is dead: no alert rule in {RULES}/ sets {SEVERITY_LABEL}: {severity}; remove the route, or fix the severity"
            )));
        }
    }
    if config.inhibit_rules.is_empty() {
        problems.push(Problem::new(TEMPLATE, None, format!(
            "no inhibit_rules: a critical alert must silence the warnings of its service; add one with `equal: [{SERVICE_LABEL}]`"
        )));
    }
    for (index, rule) in config.inhibit_rules.iter().enumerate() {
        if !rule.equal.iter().any(|label| label == SERVICE_LABEL) {
            problems.push(Problem::new(TEMPLATE, at("inhibit_rules:"), format!(
                "inhibit rule {} lacks {SERVICE_LABEL} in `equal`, so an alert of one service silences those of every other; add it",
                index + 1
            )));
        }
    }
}

/// Renders `template` in `dir` as the container would (entrypoint.sh `--render-only`) with the
/// compose service's environment, compose's defaults applied; returns the rendered file, or what
/// went wrong.
fn render(
    dir: &Path,
    template: &str,
    entrypoint: &str,
    service: &model::Service,
) -> Result<std::path::PathBuf, String> {
    let (template_path, script) = (dir.join("template.yml"), dir.join("entrypoint.sh"));
    std::fs::write(&template_path, template)
        .and_then(|()| std::fs::write(&script, entrypoint))
        .map_err(|err| {
            format!("cannot write a copy to render ({err}); free some space in the temp dir")
        })?;
    // Only the service's environment: the caller's own (real secrets, perhaps) stays out.
    let mut env: BTreeMap<String, String> = (service.environment.keys())
        .map(|key| {
            let value = service.env(key).unwrap_or_default();
            (key.clone(), interpolate(&value, |_| None))
        })
        .collect();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    env.insert(
        "ALERTMANAGER_TEMPLATE".into(),
        template_path.display().to_string(),
    );
    env.insert(
        "ALERTMANAGER_SECRETS_DIR".into(),
        dir.join("rendered").display().to_string(),
    );
    let output = duct::cmd!("sh", &script, "--render-only")
        .full_env(env)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|err| format!("`sh {ENTRYPOINT} --render-only` did not run ({err})"))?;
    if !output.status.success() {
        return Err(format!(
            "`{ENTRYPOINT} --render-only` with compose's {SERVICE} environment failed: {}; give the variable a default in {MAIN}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = stdout.lines().last().unwrap_or_default().trim();
    Ok(path.into())
}

/// A copy of `rendered` whose root route goes to [`ROOT_STAND_IN`] (a receiver with no
/// notifiers), for `routes test`.
fn stand_in_root(rendered: &Path, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let mut config: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(rendered)?)?;
    config["route"]["receiver"] = ROOT_STAND_IN.into();
    if let Some(receivers) = config["receivers"].as_sequence_mut() {
        let mut stand_in = serde_yaml::Mapping::new();
        stand_in.insert("name".into(), ROOT_STAND_IN.into());
        receivers.push(stand_in.into());
    }
    let path = dir.join("routes.yml");
    std::fs::write(&path, serde_yaml::to_string(&config)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE_FILE: &str = "observability/prometheus/rules/fixture.yml";
    const RULES_TEXT: &str = "groups:
  - name: g
    rules:
      - alert: Paged
        expr: up == 0
        labels:
          severity: critical
      - alert: Chatted
        expr: up == 0
        labels:
          severity: warning
      - alert: Mailed
        expr: up == 0
        labels:
          severity: info
";

    /// The repository's own compose file, template and entrypoint, with rules of each severity.
    fn fixture() -> Vec<(&'static str, String)> {
        let root = xtask::util::project_root();
        let real = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
        vec![
            (MAIN, real(MAIN)),
            (model::PEERS, real(model::PEERS)),
            (TEMPLATE, real(TEMPLATE)),
            (ENTRYPOINT, real(ENTRYPOINT)),
            (RULE_FILE, RULES_TEXT.to_owned()),
        ]
    }

    /// Each break of the routing (a route removed or sent elsewhere, a dead route, an inhibit
    /// rule across services, a variable compose does not set) is a problem that names it; the
    /// repository's own config with a rule of each severity is clean. Skipped (with a note) where
    /// amtool is not installed, except under `CI`, which installs it.
    #[test]
    fn each_routing_break_is_named() {
        if duct::cmd!("amtool", "--version")
            .stdout_null()
            .stderr_null()
            .run()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "amtool is not on PATH, and CI needs it (Debian: apt-get install prometheus-alertmanager)"
            );
            eprintln!("amtool is not on PATH; skipping");
            return;
        }
        let files = fixture();
        let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
        let warning_route = "    - matchers: ['severity=\"warning\"']\n      receiver: slack\n";
        let edits = [
            (TEMPLATE, warning_route, ""),
            (
                TEMPLATE,
                "['severity=\"critical\"']\n      receiver: pagerduty",
                "['severity=\"critical\"']\n      receiver: email",
            ),
            (TEMPLATE, "['severity=\"info\"']", "['severity=\"page\"']"),
            (
                TEMPLATE,
                "    equal: [service]\n",
                "    equal: [alertname]\n",
            ),
            (
                TEMPLATE,
                "smtp_from: '${SMTP_FROM}'",
                "smtp_from: '${SMTP_SENDER}'",
            ),
            (TEMPLATE, "route:\n", "route: 3\nx:\n"),
        ];
        let found = Sources::found_after_edits(&files, &edits, check);
        let expected = [
            "severity warning (set by alert Chatted) matches no route, so it falls through to the root route's receiver; add `- matchers: ['severity=\"warning\"']` with `receiver: slack`",
            "severity critical (set by alert Paged) goes to receiver email, but it must go to pagerduty only",
            "severity info (set by alert Mailed) matches no route",
            "the route for severity page is dead: no alert rule in observability/prometheus/rules/ sets severity: page",
            "inhibit rule 1 lacks service in `equal`",
            "set SMTP_SENDER; give the variable a default in compose/compose.yaml",
            "`amtool check-config (of observability/alertmanager/alertmanager.yml rendered with compose's alertmanager environment)` failed",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(
                found.contains(expected),
                "{found:?} does not say {expected:?}"
            );
        }
    }

    /// Missing amtool is a problem under CI only.
    #[test]
    fn amtool_is_required_under_ci() {
        assert!(without_amtool(false).is_none());
        let problems = without_amtool(true).unwrap();
        assert!(
            problems[0]
                .message
                .contains("apt-get install prometheus-alertmanager")
        );
    }

    /// Every severity has one receiver, and no two entries name the same severity.
    #[test]
    fn destinations_are_one_per_severity() {
        let mut severities: Vec<&str> = DESTINATIONS.iter().map(|d| d.severity).collect();
        severities.sort_unstable();
        severities.dedup();
        assert_eq!(severities.len(), DESTINATIONS.len());
    }
}
