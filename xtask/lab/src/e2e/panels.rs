//! Every dashboard panel and every rule against live data: once the scenario's poll has run,
//! each PromQL query of the dashboards (`xtask::queries::DASHBOARDS`) and of the rule files
//! (`xtask::queries::RULES`) runs against the e2e's Prometheus and must return a series, so a
//! wrong metric name or label fails the run instead of showing "No data" in Grafana. The
//! browser e2e runs the same check for the queries that need a browser (vitals beacons, error
//! reports), their LogQL against Loki when the run has it.
//!
//! An alert's expression is run without its threshold (`expr > 0.05` runs `expr`; each operand
//! of a top-level `and`/`or` on its own, so too): that proves its names and labels while nothing
//! fires. What cannot have data in a healthy run is typed:
//! [`NEEDS`] lists the queries that need a fault or traffic the scenario does not cause;
//! queries of the exporters' metrics only (the e2e runs no exporter), LogQL without Loki (CI's
//! e2e runs VictoriaLogs) and TraceQL are skipped, each with its reason.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::checks::Check;
use otel_testkit::queries::{self, Language, Origin, Query, Selectors};
use otel_testkit::{TimedOut, eventually_every};
use xtask::queries::{DASHBOARDS, EXPORTER_METRICS, RULES};

use super::stack::Stack;

/// How long the queries may take to find data: a `rate` needs two scrapes (5 s apart) of the
/// series the poll created; the rest is slack for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);
/// Between two rounds of the queries that found nothing yet.
const INTERVAL: Duration = Duration::from_secs(1);

/// Which e2e run the check is part of: each proves the queries it has the data for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// The scenario's control run: every query but those that need a fault or a browser.
    Scenario,
    /// The browser e2e: the queries that need a browser ([`Needs::Browser`]).
    Browser,
}

/// What a query needs to return series that a healthy run of the scenario does not give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// A fault: error answers, failed jobs.
    Fault(&'static str),
    /// A browser's traffic: vitals beacons, error reports of the page (and the server errors
    /// the browser e2e provokes). [`Run::Browser`] runs these.
    Browser,
}

/// The queries a [`NEEDS`] entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listed {
    /// Every panel of a dashboard, by file name.
    Dashboard(&'static str),
    /// Every query of a panel: dashboard file name, panel title.
    Panel(&'static str, &'static str),
    /// An alert or a record rule, by name.
    Rule(&'static str),
}

const FIVE_XX: Needs = Needs::Fault("5xx answers; the scenario's requests all succeed");
const FAILED_JOBS: Needs = Needs::Fault("failed jobs; the scenario's poll succeeds");

/// The queries that return nothing in a healthy run, and why. Keep it short: a query here is
/// proven by nothing but `cargo xtask check`'s parse.
const NEEDS: &[(Listed, Needs)] = &[
    (Listed::Panel("api.json", "5xx ratio"), FIVE_XX),
    (Listed::Panel("api.json", "Errors by route"), FIVE_XX),
    (
        Listed::Panel("api.json", "Error ratio"),
        Needs::Fault("5xx and 4xx answers; the scenario's requests all succeed"),
    ),
    (Listed::Rule("ApiHigh5xxRatio"), FIVE_XX),
    (Listed::Panel("worker.json", "Failure ratio"), FAILED_JOBS),
    (Listed::Rule("WorkerJobFailureRatio"), FAILED_JOBS),
    (Listed::Dashboard("web-vitals.json"), Needs::Browser),
    (Listed::Dashboard("errors.json"), Needs::Browser),
];

impl Listed {
    fn covers(self, query: &Query) -> bool {
        let file = Path::new(&query.file)
            .file_name()
            .and_then(|name| name.to_str());
        match (self, &query.origin) {
            (Listed::Dashboard(dashboard), Origin::Panel { .. }) => file == Some(dashboard),
            (Listed::Panel(dashboard, title), Origin::Panel { title: panel }) => {
                file == Some(dashboard) && panel == title
            }
            (Listed::Rule(rule), Origin::Rule { name, .. }) => name == rule,
            _ => false,
        }
    }
}

/// Why a query is not run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skip {
    Needs(Needs),
    /// It selects only metrics of the exporters, which the e2e does not start.
    Exporter,
    /// A LogQL query, and the run has no Loki (CI's e2e runs VictoriaLogs).
    NoLoki,
    /// A query of a datasource this check cannot ask (TraceQL: CI's e2e runs Jaeger).
    Unsupported(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Needs(Needs::Fault(what)) => write!(f, "needs a fault: {what}"),
            Skip::Needs(Needs::Browser) => f.write_str(
                "needs a browser's beacons or error reports: the browser e2e's panels check runs it",
            ),
            Skip::Exporter => f.write_str(
                "needs an exporter the e2e does not run (it selects only EXPORTER_METRICS)",
            ),
            Skip::NoLoki => f.write_str(
                "a LogQL query and this run has no Loki (run with `--logs loki` to prove it; CI's e2e runs VictoriaLogs)",
            ),
            Skip::Unsupported(datasource) => write!(
                f,
                "a {datasource} query: this check runs PromQL and LogQL only"
            ),
        }
    }
}

/// One query sent to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Promql(String),
    Logql(String),
}

impl fmt::Display for Ask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ask::Promql(expr) | Ask::Logql(expr) => f.write_str(expr),
        }
    }
}

/// What is done with one query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Send these (variables substituted; an alert's operands without their thresholds); each
    /// must find series.
    Run(Vec<Ask>),
    Skip(Skip),
    /// Another run proves it.
    Elsewhere,
}

/// The plan for `query` in `run` (`loki`: whether LogQL can be asked), or what is wrong with it.
fn plan(query: &Query, run: Run, loki: bool) -> Result<Plan, String> {
    let needs = NEEDS
        .iter()
        .find(|(listed, _)| listed.covers(query))
        .map(|(_, needs)| *needs);
    match (run, needs == Some(Needs::Browser)) {
        (Run::Scenario, true) => return Ok(Plan::Skip(Skip::Needs(Needs::Browser))),
        (Run::Browser, false) => return Ok(Plan::Elsewhere),
        _ => {}
    }
    let expr = queries::substitute(&query.expr, xtask::queries::INTERVAL).map_err(|variable| {
        format!("uses the variable {variable}, which the e2e cannot substitute")
    })?;
    match query.language() {
        Language::Promql => {}
        Language::Logql if loki => return Ok(Plan::Run(vec![Ask::Logql(expr)])),
        Language::Logql => return Ok(Plan::Skip(Skip::NoLoki)),
        Language::Other(datasource) => return Ok(Plan::Skip(Skip::Unsupported(datasource))),
    }
    let parsed = promql_parser::parser::parse(&expr)
        .map_err(|err| format!("PromQL does not parse ({})", err.trim()))?;
    let names = Selectors::of(&parsed).names;
    if !names.is_empty()
        && names
            .iter()
            .all(|name| EXPORTER_METRICS.contains(&name.as_str()))
    {
        return Ok(Plan::Skip(Skip::Exporter));
    }
    if let Some(needs @ Needs::Fault(_)) = needs {
        return Ok(Plan::Skip(Skip::Needs(needs)));
    }
    let runs = match &query.origin {
        Origin::Rule { kind: "alert", .. } => otel_testkit::prometheus::rules::alert_parts(parsed),
        _ => vec![parsed],
    };
    Ok(Plan::Run(
        runs.iter()
            .map(|expr| Ask::Promql(expr.to_string()))
            .collect(),
    ))
}

/// The queries of every dashboard in `dashboards` and every rule file in `rules`, by file name.
fn read(dashboards: &Path, rules: &Path) -> anyhow::Result<Vec<Query>> {
    let mut found = Vec::new();
    for (dir, extensions) in [(dashboards, &["json"][..]), (rules, &["yml", "yaml"][..])] {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("list {}", dir.display()))?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| {
                path.extension()
                    .and_then(|extension| extension.to_str())
                    .is_some_and(|extension| extensions.contains(&extension))
            })
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            let root = xtask::util::project_root();
            let file = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let what = || format!("{file} does not parse; `cargo xtask check` says where");
            found.extend(if dir == dashboards {
                queries::dashboard_queries(&file, &text).with_context(what)?
            } else {
                queries::rule_queries(&file, &text).with_context(what)?
            });
        }
    }
    Ok(found)
}

/// `expr` on one line, for messages.
fn one_line(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The check of `run` against the stack's Prometheus and, when the run has it, Loki, from the
/// workspace's dashboards and rules; reported as `label`.
pub async fn check<L>(label: L, stack: &Stack, run: Run, produced: Instant) -> Check<L> {
    let (prometheus, loki) = (&stack.prometheus, stack.loki.as_ref());
    let root = xtask::util::project_root();
    let (dashboards, rules) = (root.join(DASHBOARDS), root.join(RULES));
    let outcome = prove(
        &dashboards,
        &rules,
        (run, loki.is_some()),
        produced,
        DEADLINE,
        |ask| async move {
            match (&ask, loki) {
                (Ask::Promql(query), _) => prometheus.series_count(query).await,
                (Ask::Logql(query), Some(loki)) => {
                    loki.series_count(query, xtask::queries::INTERVAL).await
                }
                (Ask::Logql(_), None) => unreachable!("LogQL is planned only with a Loki"),
            }
        },
    )
    .await;
    Check {
        label,
        backend: if loki.is_some() {
            "prometheus, loki"
        } else {
            "prometheus"
        }
        .to_owned(),
        outcome,
    }
}

/// Runs every query of `dashboards` and `rules` that `run` is to run (see [`plan`]; the bool:
/// whether LogQL can be asked) with `series` (how many series a query returns) until each has
/// returned one, or `deadline` passed: then it fails naming each query that found nothing, with
/// its file and panel or rule.
async fn prove<F, Fut>(
    dashboards: &Path,
    rules: &Path,
    (run, loki): (Run, bool),
    produced: Instant,
    deadline: Duration,
    series: F,
) -> Result<otel_testkit::Visible<String>, TimedOut>
where
    F: Fn(Ask) -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let what = match run {
        Run::Scenario => "[panels] every dashboard and rule query finds data",
        Run::Browser => "[panels] every query that needs a browser finds data",
    };
    let failed_at_once = |last_seen: String| TimedOut {
        what: what.to_owned(),
        waited: produced.elapsed(),
        last_seen,
    };
    let queries = read(dashboards, rules).map_err(|err| failed_at_once(format!("{err:#}")))?;
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    let mut wrong = Vec::new();
    let mut ours = 0;
    for query in &queries {
        let at = format!("{}: {}", query.file, query.origin);
        let planned = plan(query, run, loki);
        ours += usize::from(planned != Ok(Plan::Elsewhere));
        match planned {
            Ok(Plan::Run(asks)) => runs.extend(asks.into_iter().map(|ask| (at.clone(), ask))),
            Ok(Plan::Skip(skip)) => {
                skipped.push(format!("{at}: {} ({skip})", one_line(&query.expr)))
            }
            Ok(Plan::Elsewhere) => {}
            Err(problem) => wrong.push(format!("{at}: {problem}: {}", one_line(&query.expr))),
        }
    }
    if !wrong.is_empty() {
        return Err(failed_at_once(wrong.join("; ")));
    }
    // Skipped queries go into the log, for the record of what no run proves.
    for skip in &skipped {
        eprintln!("[panels] not run: {skip}");
    }
    // A query that found series once has shown its names and labels are right.
    let found = Mutex::new(vec![false; runs.len()]);
    let found = &found;
    let summary = format!(
        "{} queries found series, from {} of {} panel targets and rules; {} not run (listed above the table)",
        runs.len(),
        ours - skipped.len(),
        ours,
        skipped.len()
    );
    let (runs, series, summary) = (&runs, &series, &summary);
    eventually_every(INTERVAL, what, produced, deadline, || async move {
        let mut empty = Vec::new();
        for (index, (at, ask)) in runs.iter().enumerate() {
            if found.lock().expect("not poisoned")[index] {
                continue;
            }
            if series(ask.clone()).await? > 0 {
                found.lock().expect("not poisoned")[index] = true;
            } else {
                empty.push(format!("{at}: {ask} returned no series"));
            }
        }
        anyhow::ensure!(
            empty.is_empty(),
            "{} of {} queries found nothing: {}",
            empty.len(),
            runs.len(),
            empty.join("; ")
        );
        Ok(summary.clone())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dashboard with a good panel, a panel whose label is misspelt, an exporter's panel and a
    /// Loki panel; rules with an alert and a record rule.
    const DASHBOARD: &str = r#"{"panels": [
        {"title": "Requests", "datasource": {"type": "prometheus", "uid": "prometheus"},
         "targets": [{"expr": "sum(rate(axum_http_requests_total{status=\"200\"}[$__rate_interval]))"}]},
        {"title": "Scrape", "targets": [{"expr": "up{jbo=\"api\"}"}]},
        {"title": "PostgreSQL", "targets": [{"expr": "pg_up"}]},
        {"title": "Logs", "datasource": {"type": "loki", "uid": "loki"},
         "targets": [{"expr": "{service_name=\"ampel-api\"}"}]}]}"#;
    const RULES_FILE: &str = "groups:
  - name: g
    rules:
      - alert: Slow
        expr: histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m]))) > 1
      - alert: Burn
        expr: (fast_ratio > 14.4 and slow_ratio > 14.4) or day_ratio > 3
      - record: job:up
        expr: sum by (job) (up)
";

    /// The queries sent and the check's outcome, against a fake Prometheus that finds series
    /// for every query but those selecting `jbo`.
    fn run_against_fake(dashboard: &str) -> (Vec<String>, Result<String, String>) {
        run_files_against_fake(&[("api.json", dashboard)], (Run::Scenario, false))
    }

    /// [`run_against_fake`] for dashboards by file name, in `run`; LogQL queries are sent as
    /// `logql: …`.
    fn run_files_against_fake(
        files: &[(&str, &str)],
        run: (Run, bool),
    ) -> (Vec<String>, Result<String, String>) {
        let dir = tempfile::tempdir().unwrap();
        let (dashboards, rules) = (dir.path().join("dashboards"), dir.path().join("rules"));
        std::fs::create_dir_all(&dashboards).unwrap();
        std::fs::create_dir_all(&rules).unwrap();
        for (name, dashboard) in files {
            std::fs::write(dashboards.join(name), dashboard).unwrap();
        }
        std::fs::write(rules.join("api.yml"), RULES_FILE).unwrap();
        let sent = Mutex::new(Vec::new());
        let outcome = tokio::runtime::Runtime::new().unwrap().block_on(prove(
            &dashboards,
            &rules,
            run,
            Instant::now(),
            Duration::ZERO,
            |ask| {
                let query = match &ask {
                    Ask::Promql(query) => query.clone(),
                    Ask::Logql(query) => format!("logql: {query}"),
                };
                sent.lock().unwrap().push(query.clone());
                async move { Ok(usize::from(!query.contains("jbo"))) }
            },
        ));
        let mut sent = sent.into_inner().unwrap();
        sent.dedup();
        (
            sent,
            outcome
                .map(|found| found.value)
                .map_err(|err| err.last_seen),
        )
    }

    /// A panel whose query finds nothing fails the check, named by file, title and query;
    /// variables are substituted, the alert runs without its threshold, the exporter's and the
    /// Loki panel are not run.
    #[test]
    fn a_panel_without_data_fails_naming_it() {
        let (sent, outcome) = run_against_fake(DASHBOARD);
        assert_eq!(
            sent,
            [
                "sum(rate(axum_http_requests_total{status=\"200\"}[20s]))",
                "up{jbo=\"api\"}",
                "histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))",
                "fast_ratio",
                "slow_ratio",
                "day_ratio",
                "sum by (job) (up)",
            ]
        );
        let error = outcome.unwrap_err();
        assert!(error.contains("1 of 7 queries found nothing: "), "{error}");
        assert!(
            error.ends_with(
                "dashboards/api.json: panel \"Scrape\": up{jbo=\"api\"} returned no series"
            ),
            "{error}"
        );
        // The same dashboard with the label fixed passes.
        let (_, outcome) = run_against_fake(&DASHBOARD.replace("jbo", "job"));
        assert_eq!(
            outcome.unwrap(),
            "7 queries found series, from 5 of 7 panel targets and rules; 2 not run (listed above the table)"
        );
    }

    /// The browser run asks only the queries that need a browser, its LogQL at Loki when it has
    /// one; a LogQL panel that finds nothing fails naming it. The scenario skips them all.
    #[test]
    fn the_browser_run_proves_what_needs_a_browser() {
        let vitals = r#"{"panels": [{"title": "LCP p75",
            "targets": [{"expr": "histogram_quantile(0.75, sum by (le) (rate(web_vitals_value_bucket{name=\"LCP\"}[$__range])))"}]}]}"#;
        let errors = r#"{"panels": [{"title": "Errors by service", "datasource": {"type": "loki", "uid": "loki"},
            "targets": [{"expr": "sum by (service_name) (count_over_time({service_name=~\"ampel-.+\"} | jbo!=\"\" [$__interval]))"}]}]}"#;
        let files = [
            ("api.json", DASHBOARD),
            ("web-vitals.json", vitals),
            ("errors.json", errors),
        ];
        let (sent, outcome) = run_files_against_fake(&files, (Run::Browser, true));
        assert_eq!(
            sent,
            [
                "logql: sum by (service_name) (count_over_time({service_name=~\"ampel-.+\"} | jbo!=\"\" [5s]))",
                "histogram_quantile(0.75, sum by (le) (rate(web_vitals_value_bucket{name=\"LCP\"}[1h])))",
            ]
        );
        let error = outcome.unwrap_err();
        assert!(
            error.starts_with("1 of 2 queries found nothing: ")
                && error.contains("errors.json: panel \"Errors by service\": sum by"),
            "{error}"
        );
        // Without Loki the LogQL panel is not run, and what is run passes.
        let (sent, outcome) = run_files_against_fake(&files, (Run::Browser, false));
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            outcome.unwrap(),
            "1 queries found series, from 1 of 2 panel targets and rules; 1 not run (listed above the table)"
        );
        // The scenario leaves both to the browser run (and asks api.json's Loki panel).
        let (sent, _) = run_files_against_fake(&files, (Run::Scenario, true));
        assert!(
            !sent
                .iter()
                .any(|query| query.contains("web_vitals") || query.contains("count_over_time")),
            "{sent:?}"
        );
    }

    /// A query that cannot be run fails the check at once, saying why.
    #[test]
    fn a_query_that_cannot_run_fails_at_once() {
        let (sent, outcome) = run_against_fake(&DASHBOARD.replace("$__rate_interval", "$window"));
        assert!(sent.is_empty(), "{sent:?}");
        let error = outcome.unwrap_err();
        assert!(
            error.contains("panel \"Requests\": uses the variable $window"),
            "{error}"
        );
    }

    /// Against a real Prometheus (compose's, scraping itself): a panel whose label is wrong fails
    /// the check naming its title and query, while the right one found its series. Without an
    /// engine or the image it is skipped, and under `CI=true` it fails.
    #[tokio::test]
    async fn a_wrong_label_fails_against_a_live_prometheus() {
        use otel_testkit::container;
        let model = xtask::engine::Variant::Peers.model().unwrap();
        let spec = super::super::stack::spec(&model, "prometheus", true).unwrap();
        let image = spec.image();
        let test =
            "a_wrong_label_fails_against_a_live_prometheus (local images: `source .ci/images.env`)";
        if container::require_engine(test, &[image.as_str()])
            .await
            .is_none()
        {
            return;
        }
        let group = super::super::stack::start_containers(vec![("prometheus", spec)])
            .await
            .unwrap();
        let url = group
            .url("prometheus", otel_testkit::prometheus::API_PORT)
            .unwrap();
        let prometheus =
            otel_testkit::prometheus::Prometheus::new(reqwest::Client::new(), url).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (dashboards, rules) = (dir.path().join("dashboards"), dir.path().join("rules"));
        std::fs::create_dir_all(&dashboards).unwrap();
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::write(
            dashboards.join("self.json"),
            r#"{"panels": [{"title": "Scrape", "targets": [{"expr": "up{job=\"prometheus\"}"}]},
                {"title": "Scrape, misspelt", "targets": [{"expr": "up{jbo=\"prometheus\"}"}]}]}"#,
        )
        .unwrap();
        // Its first scrape of itself comes within one interval (5 s) of starting.
        let deadline = Duration::from_secs(15);
        let outcome = prove(
            &dashboards,
            &rules,
            (Run::Scenario, false),
            Instant::now(),
            deadline,
            |ask| {
                let prometheus = &prometheus;
                async move { prometheus.series_count(&ask.to_string()).await }
            },
        )
        .await;
        group.stop().await;
        let error = outcome.unwrap_err().last_seen;
        assert!(
            error.starts_with("1 of 2 queries found nothing: ")
                && error.ends_with(
                    "self.json: panel \"Scrape, misspelt\": up{jbo=\"prometheus\"} returned no series"
                ),
            "{error}"
        );
    }

    /// Each entry of [`NEEDS`] covers a query of the workspace's dashboards or rules: a renamed
    /// panel or rule must not leave an entry behind that excuses nothing.
    #[test]
    fn every_listed_query_exists() {
        let root = xtask::util::project_root();
        let queries = read(&root.join(DASHBOARDS), &root.join(RULES)).unwrap();
        let stale: Vec<_> = NEEDS
            .iter()
            .filter(|(listed, _)| !queries.iter().any(|query| listed.covers(query)))
            .collect();
        assert!(
            stale.is_empty(),
            "entries of NEEDS that cover no query: {stale:?}"
        );
    }
}
