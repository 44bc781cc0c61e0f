//! What every table's report is made of: the [`Table`] each table module implements (measure,
//! print, targets), running one into a [`Part`], the targets list, and the run's record (commit,
//! machine, load average). Knows no table: the tables import this, never the reverse.

use std::path::Path;

use anyhow::Context as _;
use clap::ValueEnum as _;

use super::ctx::Ctx;
use xtask::flags::BenchTable;

/// One table: how it is measured, printed, and held to its targets.
pub trait Table: serde::Serialize + Sized {
    /// Its `--only` value, and its name in the failure list.
    const TABLE: BenchTable;
    /// The heading printed above it (or above why it could not be measured).
    const TITLE: &'static str;
    async fn measure(ctx: &Ctx) -> anyhow::Result<Self>;
    /// What the figures depend on, printed after the load averages under the heading.
    fn settings(&self, _: &Ctx) -> String {
        String::new()
    }
    /// The rows under that line.
    fn print(&self, ctx: &Ctx);
    fn targets(&self) -> Vec<Target>;
}

/// A table, or why it could not be measured.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Part<T> {
    Done(Measured<T>),
    Failed { error: String },
}

/// A table and the machine's load around its measurement.
#[derive(Debug, serde::Serialize)]
pub struct Measured<T> {
    #[serde(flatten)]
    pub table: T,
    /// `/proc/loadavg` before and after: wall-clock figures are only as good as the machine
    /// was quiet.
    pub load_before: String,
    pub load_after: String,
}

/// One target of the issue, and whether this run met it.
#[derive(Debug, serde::Serialize)]
pub struct Target {
    pub what: String,
    pub value: f64,
    pub limit: String,
    pub met: bool,
}

impl Target {
    /// Met when `value <= limit`.
    pub fn at_most(what: String, value: f64, limit: f64) -> Self {
        Self::new(what, value, format!("<= {limit}"), value <= limit)
    }

    /// Met when `value >= limit`.
    pub fn at_least(what: String, value: f64, limit: f64) -> Self {
        Self::new(what, value, format!(">= {limit}"), value >= limit)
    }

    fn new(what: String, value: f64, limit: String, met: bool) -> Self {
        Self {
            what,
            value,
            limit,
            met,
        }
    }
}

/// The columns of a printed table, each a heading and a width (negative: left-aligned), so
/// the heading line and the rows below it are laid out from one list.
pub struct Columns(pub &'static [(&'static str, isize)]);

impl Columns {
    pub fn print_heading(&self) {
        let headings: Vec<String> = self.0.iter().map(|(name, _)| name.to_string()).collect();
        println!("{}", self.row(&headings));
    }

    /// `cells` laid out under the first `cells.len()` headings, indented as every table is.
    pub fn row(&self, cells: &[String]) -> String {
        let laid_out: Vec<String> = cells
            .iter()
            .zip(self.0)
            .map(|(cell, &(_, width))| match width.unsigned_abs() {
                left if width < 0 => format!("{cell:<left$}"),
                right => format!("{cell:>right$}"),
            })
            .collect();
        format!("   {}", laid_out.join(" "))
    }
}

/// The targets of the tables measured so far, and the names of those that failed.
#[derive(Debug, Default)]
pub struct Summary {
    pub targets: Vec<Target>,
    pub failed: Vec<String>,
}

/// Measures and prints table `T` unless `--only` leaves it out; a failed table is reported and
/// the run goes on (the others still say something).
pub async fn run<T: Table>(
    ctx: &Ctx,
    only: &[BenchTable],
    summary: &mut Summary,
) -> Option<Part<T>> {
    if !only.is_empty() && !only.contains(&T::TABLE) {
        return None;
    }
    let load_before = loadavg();
    let measured = T::measure(ctx).await;
    println!("\n{}", T::TITLE);
    Some(match measured {
        Ok(table) => {
            let load_after = loadavg();
            let settings = table.settings(ctx);
            println!("   load average {load_before} -> {load_after}{settings}");
            table.print(ctx);
            summary.targets.extend(table.targets());
            Part::Done(Measured {
                table,
                load_before,
                load_after,
            })
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            let error = format!("{err:#}");
            println!("   not measured: {error}");
            summary.failed.push(name(T::TABLE));
            Part::Failed { error }
        }
    })
}

fn name(table: BenchTable) -> String {
    table
        .to_possible_value()
        .expect("no table is skipped")
        .get_name()
        .to_owned()
}

/// Prints the targets with whether each was met.
pub fn print_targets(machine: &str, targets: &[Target]) {
    println!("\nTargets ({machine})");
    for target in targets {
        println!(
            "  {:<4} {:<58} {:>10.2}  (limit {})",
            if target.met { "met" } else { "MISS" },
            target.what,
            target.value,
            target.limit
        );
    }
}

/// Writes `report` to `path` as pretty JSON.
pub fn write(path: &Path, report: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// `git describe` of the tree measured.
pub fn commit() -> String {
    duct::cmd("git", ["describe", "--always", "--dirty"])
        .stderr_null()
        .read()
        .unwrap_or_else(|_| "unknown".into())
}

pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `/proc/loadavg`'s three averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU model, core count and kernel, for the record.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Counted from /proc/cpuinfo: this process is pinned to one core, so
    // `available_parallelism` would say 1.
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|text| {
            text.lines()
                .filter(|line| line.starts_with("processor"))
                .count()
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    format!("{model}, {cores} cores, Linux {kernel}")
}
