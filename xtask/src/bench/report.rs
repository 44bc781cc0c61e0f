//! The four tables, as text on stdout and as one JSON document for comparing commits.

use std::path::Path;

use anyhow::Context as _;

use super::Plan;
use super::backend::Backend;
use super::overhead::Overhead;
use super::visible::Visible;
use super::worker::Worker;

/// A table, or why it could not be measured.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Part<T> {
    Done(T),
    Failed { error: String },
}

/// Keeps going after a failed table (the others still say something), reporting the error.
pub fn part<T>(result: anyhow::Result<T>) -> Part<T> {
    match result {
        Ok(value) => Part::Done(value),
        Err(err) => {
            eprintln!("error: {err:#}");
            Part::Failed {
                error: format!("{err:#}"),
            }
        }
    }
}

/// One target of the issue, and whether this run met it.
#[derive(Debug, serde::Serialize)]
pub struct Target {
    pub what: String,
    pub value: f64,
    pub limit: String,
    pub met: bool,
}

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub commit: String,
    pub unix_time: u64,
    pub machine: String,
    pub quick: bool,
    pub plan: Plan,
    pub rust_log: String,
    pub overhead: Option<Part<Overhead>>,
    pub backend: Option<Part<Backend>>,
    pub visible: Option<Part<Visible>>,
    pub worker: Option<Part<Worker>>,
    pub targets: Vec<Target>,
    pub wall_seconds: f64,
}

impl Report {
    pub fn new(quick: bool, plan: &Plan, rust_log: String) -> Self {
        let commit = duct::cmd("git", ["describe", "--always", "--dirty"])
            .stderr_null()
            .read()
            .unwrap_or_else(|_| "unknown".into());
        Self {
            commit,
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
            machine: machine(),
            quick,
            plan: *plan,
            rust_log,
            overhead: None,
            backend: None,
            visible: None,
            worker: None,
            targets: Vec::new(),
            wall_seconds: 0.0,
        }
    }

    /// The names of the tables that could not be measured.
    pub fn failed(&self) -> Vec<&'static str> {
        let mut failed = Vec::new();
        if matches!(self.overhead, Some(Part::Failed { .. })) {
            failed.push("overhead");
        }
        if matches!(self.backend, Some(Part::Failed { .. })) {
            failed.push("backend");
        }
        if matches!(self.visible, Some(Part::Failed { .. })) {
            failed.push("visible");
        }
        if matches!(self.worker, Some(Part::Failed { .. })) {
            failed.push("worker");
        }
        failed
    }

    /// Checks the targets, prints them, and writes the JSON to `path`.
    pub fn write(&mut self, path: &Path) -> anyhow::Result<()> {
        self.targets = self.targets();
        println!("\nTargets ({})", self.machine);
        for target in &self.targets {
            println!(
                "  {:<4} {:<58} {:>10.2}  (limit {})",
                if target.met { "met" } else { "MISS" },
                target.what,
                target.value,
                target.limit
            );
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let mut add = |what: String, value: f64, limit: &str, met: bool| {
            targets.push(Target {
                what,
                value,
                limit: limit.to_owned(),
                met,
            });
        };
        if let Some(Part::Done(overhead)) = &self.overhead {
            for route in &overhead.routes {
                add(
                    format!("{}: added instructions per request", route.route),
                    route.added_instructions,
                    "<= 75000",
                    route.added_instructions <= 75_000.0,
                );
                add(
                    format!("{}: added CPU per request (µs)", route.route),
                    route.added_cpu_us,
                    "<= 10",
                    route.added_cpu_us <= 10.0,
                );
                if route.route == "postgres" {
                    add(
                        "postgres: throughput on/off".into(),
                        route.rps_ratio,
                        ">= 0.90",
                        route.rps_ratio >= 0.90,
                    );
                }
            }
        }
        if let Some(Part::Done(backend)) = &self.backend {
            for row in backend.rows.iter().filter(|row| row.backend != "live") {
                add(
                    format!("{} backend: p99 vs live", row.backend),
                    row.p99_ratio,
                    "<= 1.05",
                    row.p99_ratio <= 1.05,
                );
            }
            for row in &backend.rows {
                add(
                    // Growth is what a queue without bounds would show; RSS may also fall
                    // (the allocator handing back memory), which is no leak.
                    format!("{} backend: RSS growth over the run (%)", row.backend),
                    row.rss_growth * 100.0,
                    "<= 10",
                    row.rss_growth <= 0.10,
                );
                add(
                    format!("{} backend: SIGTERM to exit (s)", row.backend),
                    row.shutdown_s,
                    "<= 4",
                    row.shutdown_s <= 4.0,
                );
            }
        }
        if let Some(Part::Done(visible)) = &self.visible {
            for row in &visible.rows {
                add(
                    format!("time to visible: {} (s, median)", row.signal),
                    row.median_s,
                    &format!("<= {}", row.limit_s),
                    row.median_s <= row.limit_s,
                );
            }
        }
        targets
    }

    pub fn print_overhead(&self) {
        let Some(part) = &self.overhead else { return };
        println!("\n1. Overhead: telemetry on vs off (AMPEL_TELEMETRY=off), same release binary");
        let overhead = match part {
            Part::Done(overhead) => overhead,
            Part::Failed { error } => return println!("   not measured: {error}"),
        };
        println!(
            "   load average {} -> {}; RUST_LOG={}; wrk -t1 -c{} on cpu {}, server on cpu {}",
            overhead.load_before,
            overhead.load_after,
            self.rust_log,
            self.plan.connections,
            super::app::LOAD_CPU,
            super::app::SERVER_CPU
        );
        println!(
            "   {:<9} {:<6} {:>9} {:>8} {:>8} {:>10} {:>10} {:>19} {:>19} {:>7} {:>5}",
            "route",
            "mode",
            "req/s",
            "p50 µs",
            "p99 µs",
            "CPU µs/req",
            "instr/req",
            "spans sent/recv",
            "logs sent/recv",
            "dropped",
            "load"
        );
        for route in &overhead.routes {
            for (label, mode) in [("off", &route.off), ("on", &route.on)] {
                let sum = |field: fn(&super::overhead::Run) -> u64| -> u64 {
                    mode.runs.iter().map(field).sum()
                };
                let (spans, logs) = if label == "on" {
                    (
                        format!("{}/{}", sum(|r| r.spans_sent), sum(|r| r.spans_received)),
                        format!("{}/{}", sum(|r| r.logs_sent), sum(|r| r.logs_received)),
                    )
                } else {
                    ("-".into(), "-".into())
                };
                println!(
                    "   {:<9} {:<6} {:>9.0} {:>8.0} {:>8.0} {:>10.2} {:>10.0} {:>19} {:>19} {:>7} {:>4.0}%",
                    route.route,
                    label,
                    mode.rps,
                    mode.p50_us,
                    mode.p99_us,
                    mode.cpu_us_per_request,
                    mode.callgrind.per_request,
                    spans,
                    logs,
                    sum(|r| r.dropped_spans + r.dropped_logs),
                    mode.load_cpu_share * 100.0
                );
            }
            println!(
                "   {:<9} {:<6} {:>9.3} {:>8.2} {:>8.2} {:>+10.2} {:>+10.0}   ({})",
                route.route,
                "on/off",
                route.rps_ratio,
                route.p50_ratio,
                route.p99_ratio,
                route.added_cpu_us,
                route.added_instructions,
                route.request
            );
        }
        println!(
            "   CPU µs/req: the server's user+system time over the measured run / requests; instr/req: callgrind, {} requests;\n   load: how busy the load core was (wrk + the OTLP sink); near 100% it, not the server, capped req/s",
            self.plan.callgrind_requests
        );
    }

    pub fn print_backend(&self) {
        let Some(part) = &self.backend else { return };
        println!("\n2. Dead and hung OTLP backend vs live (trivial route, telemetry on)");
        let backend = match part {
            Part::Done(backend) => backend,
            Part::Failed { error } => return println!("   not measured: {error}"),
        };
        println!(
            "   load average {} -> {}",
            backend.load_before, backend.load_after
        );
        println!(
            "   {:<8} {:>9} {:>6} {:>8} {:>6} {:>22} {:>17} {:>17} {:>10}",
            "backend",
            "req/s",
            "ratio",
            "p99 µs",
            "ratio",
            "RSS MiB start->end",
            "dropped spans/logs",
            "recv spans/logs",
            "SIGTERM s"
        );
        for row in &backend.rows {
            println!(
                "   {:<8} {:>9.0} {:>6.3} {:>8.0} {:>6.3} {:>11.1}->{:<6.1}{:>+4.0}% {:>17} {:>17} {:>10.2}",
                row.backend,
                row.rps,
                row.rps_ratio,
                row.p99_us,
                row.p99_ratio,
                row.rss_start as f64 / 1048576.0,
                row.rss_end as f64 / 1048576.0,
                row.rss_growth * 100.0,
                format!("{}/{}", row.dropped_spans, row.dropped_logs),
                format!("{}/{}", row.received_spans, row.received_logs),
                row.shutdown_s
            );
        }
        println!(
            "   RSS from after the warm-up to after {} more requests; dropped counts as the SDK reports them at shutdown",
            self.plan.rss_requests
        );
    }

    pub fn print_visible(&self) {
        let Some(part) = &self.visible else { return };
        println!(
            "\n3. Time to visible: from a request's end until the backend answers a query for it"
        );
        let visible = match part {
            Part::Done(visible) => visible,
            Part::Failed { error } => return println!("   not measured: {error}"),
        };
        println!(
            "   load average {} -> {}; {}",
            visible.load_before, visible.load_after, visible.settings
        );
        println!(
            "   {:<8} {:<36} {:>9} {:>7}  samples (s)",
            "signal", "queried at", "median s", "target"
        );
        for row in &visible.rows {
            let samples: Vec<String> = row.samples_s.iter().map(|s| format!("{s:.2}")).collect();
            println!(
                "   {:<8} {:<36} {:>9.2} {:>7}  {}",
                row.signal,
                row.backend,
                row.median_s,
                format!("<= {}", row.limit_s),
                samples.join(" ")
            );
        }
    }

    pub fn print_worker(&self) {
        let Some(part) = &self.worker else { return };
        println!("\n4. Worker: jobs per second against a local fake provider, telemetry on vs off");
        let worker = match part {
            Part::Done(worker) => worker,
            Part::Failed { error } => return println!("   not measured: {error}"),
        };
        println!(
            "   load average {} -> {}; {} jobs per run, WORKER_CONCURRENCY default, worker on cpu {}",
            worker.load_before,
            worker.load_after,
            self.plan.worker_jobs,
            super::app::SERVER_CPU
        );
        println!(
            "   {:<6} {:>8} {:>12} {:>10} {:>9}",
            "mode", "jobs/s", "CPU ms/job", "spans/job", "logs/job"
        );
        for (label, mode) in [("off", &worker.off), ("on", &worker.on)] {
            println!(
                "   {:<6} {:>8.1} {:>12.3} {:>10.1} {:>9.1}",
                label, mode.jobs_per_s, mode.cpu_ms_per_job, mode.spans_per_job, mode.logs_per_job
            );
        }
        println!(
            "   {:<6} {:>8.3} {:>+12.3}",
            "on/off", worker.jobs_ratio, worker.added_cpu_ms
        );
    }
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
fn machine() -> String {
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
