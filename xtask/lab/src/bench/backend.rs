//! Table 2: the api with telemetry on, exporting to a live sink, to an address that refuses
//! connections, and to one that accepts and never answers.
//!
//! Export runs on the SDK's batch threads with bounded queues, so a dead backend should cost
//! requests nothing: same throughput and p99 as live, memory flat once the queues are full
//! (items are dropped, and counted), and a shutdown bounded by the telemetry guard's flush
//! timeout rather than the exporter's.

use std::time::Duration;

use otel_testkit::sink::{Hung, Sink};

use super::app;
use super::ctx::{Ctx, Export, median_by};
use super::load::{ApiRun, Route, api_run};
use super::report::{Columns, Table, Target};
use xtask::flags::BenchTable;

/// Table 2.
#[derive(Debug, serde::Serialize)]
pub struct Backend {
    pub rows: Vec<Row>,
}

/// One kind of backend: medians over the rounds (RSS growth and shutdown: the worst round).
#[derive(Debug, serde::Serialize)]
pub struct Row {
    pub backend: &'static str,
    pub rps: f64,
    pub p99_us: f64,
    /// This backend's median over live's.
    pub rps_ratio: f64,
    pub p99_ratio: f64,
    pub rss_start: u64,
    pub rss_end: u64,
    pub rss_growth: f64,
    pub requests: u64,
    pub dropped_spans: u64,
    pub dropped_logs: u64,
    pub received_spans: u64,
    pub received_logs: u64,
    pub shutdown_s: f64,
    pub runs: Vec<ApiRun>,
}

const KINDS: [&str; 3] = ["live", "refused", "hung"];

/// Load before the first RSS reading: long enough for the export queues to fill (a dead
/// backend's at once), and for the Prometheus recorder, which buffers histogram samples until
/// its upkeep folds them every 5 s, to reach its working size (docs/performance.md).
const SETTLE: Duration = Duration::from_secs(7);

fn rps(run: &ApiRun) -> f64 {
    run.wrk.rps
}

fn p99(run: &ApiRun) -> f64 {
    run.wrk.p99_us
}

fn growth(run: &ApiRun) -> f64 {
    run.rss_end as f64 / run.rss_start as f64 - 1.0
}

const COLUMNS: Columns = Columns(&[
    ("backend", -8),
    ("req/s", 9),
    ("ratio", 6),
    ("p99 µs", 8),
    ("ratio", 6),
    ("RSS MiB start->end", 22),
    ("dropped spans/logs", 17),
    ("recv spans/logs", 17),
    ("SIGTERM s", 10),
]);

impl Table for Backend {
    const TABLE: BenchTable = BenchTable::Backend;
    const TITLE: &'static str =
        "2. Dead and hung OTLP backend vs live (trivial route, telemetry on)";

    async fn measure(ctx: &Ctx) -> anyhow::Result<Self> {
        let route = Route::trivial();
        let runs = ctx
            .rounds("backend:", KINDS, async |kind, _| {
                // Each holds its endpoint open for the whole run.
                let export = match kind {
                    0 => Export::Live(Sink::start().await?),
                    1 => Export::Refused(app::free_addr()?),
                    _ => Export::Hung(Hung::start().await?),
                };
                let warmup = SETTLE.max(ctx.plan.warmup);
                api_run(
                    ctx,
                    &route,
                    &export,
                    warmup,
                    ctx.plan.rss_requests,
                    "backend",
                )
                .await
            })
            .await?;
        let live = &runs[0];
        let (live_rps, live_p99) = (median_by(live, rps), median_by(live, p99));
        let rows = KINDS
            .iter()
            .zip(runs)
            .map(|(backend, runs)| {
                let worst = runs
                    .iter()
                    .max_by(|a, b| growth(a).total_cmp(&growth(b)))
                    .expect("at least one round");
                let sum = |field: fn(&ApiRun) -> u64| runs.iter().map(field).sum();
                let (rps, p99_us) = (median_by(&runs, rps), median_by(&runs, p99));
                Row {
                    backend,
                    rps,
                    p99_us,
                    rps_ratio: rps / live_rps,
                    p99_ratio: p99_us / live_p99,
                    rss_start: worst.rss_start,
                    rss_end: worst.rss_end,
                    rss_growth: growth(worst),
                    requests: worst.requests,
                    dropped_spans: sum(|run| run.written.dropped_spans),
                    dropped_logs: sum(|run| run.written.dropped_logs),
                    received_spans: sum(|run| run.spans_received + run.other_spans_received),
                    received_logs: sum(|run| run.logs_received),
                    shutdown_s: runs.iter().map(|run| run.shutdown_s).fold(0.0, f64::max),
                    runs,
                }
            })
            .collect();
        Ok(Backend { rows })
    }

    fn print(&self, ctx: &Ctx) {
        COLUMNS.print_heading();
        for row in &self.rows {
            let mib = |bytes: u64| bytes as f64 / 1048576.0;
            let cells = [
                row.backend.to_owned(),
                format!("{:.0}", row.rps),
                format!("{:.3}", row.rps_ratio),
                format!("{:.0}", row.p99_us),
                format!("{:.3}", row.p99_ratio),
                format!(
                    "{:>11.1}->{:<6.1}{:>+4.0}%",
                    mib(row.rss_start),
                    mib(row.rss_end),
                    row.rss_growth * 100.0
                ),
                format!("{}/{}", row.dropped_spans, row.dropped_logs),
                format!("{}/{}", row.received_spans, row.received_logs),
                format!("{:.2}", row.shutdown_s),
            ];
            println!("{}", COLUMNS.row(&cells));
        }
        println!(
            "   RSS from after the warm-up to after {} more requests; dropped counts as the SDK reports them at shutdown",
            ctx.plan.rss_requests
        );
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for row in self.rows.iter().filter(|row| row.backend != "live") {
            let what = format!("{} backend: p99 vs live", row.backend);
            targets.push(Target::at_most(what, row.p99_ratio, 1.05));
        }
        for row in &self.rows {
            // Growth is what a queue without bounds would show; RSS may also fall (the
            // allocator handing back memory), which is no leak.
            let what = format!("{} backend: RSS growth over the run (%)", row.backend);
            targets.push(Target::at_most(what, row.rss_growth * 100.0, 10.0));
            let what = format!("{} backend: SIGTERM to exit (s)", row.backend);
            targets.push(Target::at_most(what, row.shutdown_s, 4.0));
        }
        targets
    }
}
