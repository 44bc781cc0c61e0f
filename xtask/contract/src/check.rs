//! `cargo xtask check`: do compose/, observability/, the declared metric families, the crates,
//! the Dockerfile and fly/ agree? Offline and fast; `cargo test` runs it too (the `check` test
//! below).
//!
//! ```text
//! cargo xtask check
//! ```
//!
//! Like rust-analyzer's tidy: [`problems`] only reads files and returns what is wrong, each with
//! `file[:line]` and what to change. The rules live one area per file: `compose.rs` (the compose
//! files themselves), `promql.rs` (expressions and metric names), `grafana.rs` (data sources),
//! `alerts.rs` (labels, annotations, runbook anchors, tests), `wiring.rs` (ports and paths across
//! files), `promtool.rs` (Prometheus' own checks, when promtool is installed), `otelcol.rs` (the
//! collector's `validate`, when a collector binary is at hand), `alertmanager.rs` (amtool's
//! `check-config` and a routing test per severity, when amtool is installed). `sources.rs` reads
//! the files once; each rule gets them as text, so its tests feed it small inline fixtures.

mod alertmanager;
mod alerts;
mod compose;
mod grafana;
mod otelcol;
mod promql;
mod promtool;
mod sources;
mod wiring;

use std::path::Path;

pub use crate::problem::{Problem, line_of};
pub use sources::Sources;
pub use wiring::scraped_apps;
use xtask::flags;

/// Runs a tool's own check (promtool, `otelcol validate`): `None` when it passes, else a problem
/// on `file` quoting what the tool printed. `command` is how the message shows the run.
fn tool_problem(file: &str, command: &str, run: duct::Expression) -> Option<Problem> {
    let output = match run.stderr_to_stdout().stdout_capture().unchecked().run() {
        Ok(output) if output.status.success() => return None,
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(err) => err.to_string(),
    };
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    Some(Problem::new(
        file,
        None,
        format!(
            "`{command}` failed; fix what it names:\n    {}",
            lines.join("\n    ")
        ),
    ))
}

/// Every problem the offline rules find in the repository at `root`, sorted by file and line.
pub fn problems(root: &Path) -> Vec<Problem> {
    let (sources, mut problems) = Sources::read(root);
    problems.extend(check_sources(&sources));
    problems.extend(crate::deploy::preflight::fly_problems(root));
    problems.sort();
    problems.dedup();
    problems
}

/// The rules that look only at file contents.
pub fn check_sources(sources: &Sources) -> Vec<Problem> {
    let mut problems = Vec::new();
    compose::check(sources, &mut problems);
    promql::check(sources, &mut problems);
    grafana::check(sources, &mut problems);
    alerts::check(sources, &mut problems);
    wiring::check(sources, &mut problems);
    problems
}

/// What `cargo xtask check` runs: the offline rules, then promtool's checks when it is installed.
/// Prints the problems; fails when there is one.
pub fn run() -> anyhow::Result<()> {
    let root = xtask::util::project_root();
    let mut problems = problems(&root);
    match promtool::problems(&root) {
        Some(found) => problems.extend(found),
        None => eprintln!(
            "check: promtool not on PATH, skipping `promtool check`/`test rules` (Debian: apt-get install prometheus)"
        ),
    }
    match alertmanager::problems(&root) {
        Some(found) => problems.extend(found),
        None => eprintln!(
            "check: amtool not on PATH, skipping `amtool check-config` and the routing tests of {} (Debian: apt-get install prometheus-alertmanager)",
            alertmanager::TEMPLATE
        ),
    }
    match otelcol::problems(&root) {
        Some(found) => problems.extend(found),
        None => eprintln!(
            "check: no collector binary, skipping `validate` of {} (set AMPEL_OTELCOL, or put otelcol-contrib on PATH)",
            otelcol::CONFIG
        ),
    }
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        eprintln!("check: no problems");
        return Ok(());
    }
    anyhow::bail!(
        "check found {} problem(s); each line above names the file to edit",
        problems.len()
    )
}

impl crate::Run for flags::Check {
    fn run(self) -> anyhow::Result<()> {
        run()
    }
}

/// `cargo test` keeps the repository consistent: the same rules as `cargo xtask check`.
#[test]
fn check() {
    let root = xtask::util::project_root();
    let mut problems = problems(&root);
    problems.extend(promtool::problems(&root).unwrap_or_default());
    problems.extend(otelcol::problems(&root).unwrap_or_default());
    problems.extend(alertmanager::problems(&root).unwrap_or_default());
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        panic!(
            "\n{}\n\n{} problem(s) across compose/, observability/, the metric families, the crates and fly/.\nEach line names the file (and line) to edit; `cargo xtask check` prints the same list.\n",
            list.join("\n"),
            problems.len()
        );
    }
}
