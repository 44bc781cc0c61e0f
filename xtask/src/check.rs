//! `cargo xtask check`: do compose/, observability/, docs/metrics.md, the crates, the Dockerfile
//! and fly/ agree? Offline and fast; `cargo test` runs it too (the `check` test below).
//!
//! ```text
//! cargo xtask check
//! ```
//!
//! Like rust-analyzer's tidy: [`problems`] only reads files and returns what is wrong, each with
//! `file[:line]` and what to change. The rules live one area per file: `compose.rs` (the compose
//! files themselves), `promql.rs` (expressions and metric names), `grafana.rs` (data sources),
//! `alerts.rs` (labels, annotations, runbook anchors, tests), `wiring.rs` (ports and paths across
//! files), `promtool.rs` (Prometheus' own checks, when promtool is installed). `sources.rs` reads
//! the files once; each rule gets them as text, so its tests feed it small inline fixtures.

mod alerts;
mod compose;
mod grafana;
mod promql;
mod promtool;
mod sources;
mod wiring;

use std::fmt;
use std::path::Path;

use crate::flags;
pub use sources::Sources;

/// One thing to fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Relative to the workspace root: the file to edit.
    pub file: String,
    pub line: Option<usize>,
    /// What is wrong; what to change.
    pub message: String,
}

impl Problem {
    pub fn new(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// A problem of `file` at the first line containing `needle` (the whole file if none does).
    pub fn near(file: &str, text: &str, needle: &str, message: impl Into<String>) -> Self {
        Self::new(file, line_of(text, needle), message)
    }

    /// Reads a `file[:line]: message` line, the shape `fly_problems` returns.
    fn parse(line: &str) -> Self {
        let Some((at, message)) = line.split_once(": ") else {
            return Self::new("fly", None, line);
        };
        match at.rsplit_once(':') {
            Some((file, number)) if number.parse::<usize>().is_ok() => {
                Self::new(file, number.parse().ok(), message)
            }
            _ => Self::new(at, None, message),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The 1-based line of the first occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    let at = text.find(needle)?;
    Some(text[..at].matches('\n').count() + 1)
}

/// Every problem the offline rules find in the repository at `root`, sorted by file and line.
pub fn problems(root: &Path) -> Vec<Problem> {
    let (sources, mut problems) = Sources::read(root);
    problems.extend(check_sources(&sources));
    problems.extend(
        crate::deploy::preflight::fly_problems(root)
            .iter()
            .map(|line| Problem::parse(line)),
    );
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
    let root = crate::util::project_root();
    let mut problems = problems(&root);
    match promtool::problems(&root) {
        Some(found) => problems.extend(found),
        None => eprintln!(
            "check: promtool not on PATH, skipping `promtool check`/`test rules` (Debian: apt-get install prometheus)"
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

impl flags::Check {
    pub fn run(self) -> anyhow::Result<()> {
        run()
    }
}

/// `cargo test` keeps the repository consistent: the same rules as `cargo xtask check`.
#[test]
fn check() {
    let root = crate::util::project_root();
    let mut problems = problems(&root);
    problems.extend(promtool::problems(&root).unwrap_or_default());
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        panic!(
            "\n{}\n\n{} problem(s) across compose/, observability/, docs/metrics.md, the crates and fly/.\nEach line names the file (and line) to edit; `cargo xtask check` prints the same list.\n",
            list.join("\n"),
            problems.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fly_problems` lines become problems with their file and line.
    #[test]
    fn fly_lines_keep_file_and_line() {
        assert_eq!(
            Problem::parse("fly/api.toml:12: internal_port = 80 is not 8080; set it to 8080"),
            Problem::new(
                "fly/api.toml",
                Some(12),
                "internal_port = 80 is not 8080; set it to 8080"
            )
        );
        assert_eq!(
            Problem::parse("fly/worker.toml: kill_timeout is unset; set it"),
            Problem::new("fly/worker.toml", None, "kill_timeout is unset; set it")
        );
    }
}
