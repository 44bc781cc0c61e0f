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
    /// The rows under the heading.
    fn print(&self, ctx: &Ctx);
    fn targets(&self) -> Vec<Target>;
}

/// A table, or why it could not be measured.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Part<T> {
    Done(T),
    Failed { error: String },
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
    pub fn new(what: String, value: f64, limit: &str, met: bool) -> Self {
        Self {
            what,
            value,
            limit: limit.to_owned(),
            met,
        }
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
    let measured = T::measure(ctx).await;
    println!("\n{}", T::TITLE);
    Some(match measured {
        Ok(table) => {
            table.print(ctx);
            summary.targets.extend(table.targets());
            Part::Done(table)
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
pub fn loadavg() -> String {
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
