//! Table 2: the api with telemetry on, exporting to a live sink, to an address that refuses
//! connections, and to one that accepts and never answers.
//!
//! Export runs on the SDK's batch threads with bounded queues, so a dead backend should cost
//! requests nothing: same throughput and p99 as live, memory flat once the queues are full
//! (items are dropped, and counted), and a shutdown bounded by the telemetry guard's flush
//! timeout rather than the exporter's.

use std::time::Duration;

use super::app::{self, LogFile};
use super::ctx::{Ctx, Telemetry, median};
use super::load::{Route, wrk};
use super::report::{self, Table, Target};
use super::sink::{Hung, Sink, refusing};
use xtask::flags::BenchTable;

/// Table 2.
#[derive(Debug, serde::Serialize)]
pub struct Backend {
    pub rows: Vec<Row>,
    pub load_before: String,
    pub load_after: String,
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
    pub runs: Vec<Run>,
}

/// One run on a fresh server.
#[derive(Debug, serde::Serialize)]
pub struct Run {
    pub rps: f64,
    pub p99_us: f64,
    pub rss_start: u64,
    pub rss_end: u64,
    /// Requests between the two RSS readings.
    pub requests: u64,
    pub dropped_spans: u64,
    pub dropped_logs: u64,
    pub received_spans: u64,
    pub received_logs: u64,
    pub shutdown_s: f64,
}

const KINDS: [&str; 3] = ["live", "refused", "hung"];

/// Load before the first RSS reading: long enough for the export queues to fill (a dead
/// backend's at once), and for the Prometheus recorder, which buffers histogram samples until
/// its upkeep folds them every 5 s, to reach its working size. Seen here: RSS rises for about
/// 5 s of load, then stays flat.
const SETTLE: Duration = Duration::from_secs(7);

async fn run(ctx: &Ctx) -> anyhow::Result<Backend> {
    let load_before = report::loadavg();
    let route = Route::trivial();
    let mut runs: [Vec<Run>; 3] = Default::default();
    for round in 0..ctx.plan.rounds {
        // Rotate the order each round, as the overhead table alternates off and on.
        for offset in 0..KINDS.len() {
            let index = (round + offset) % KINDS.len();
            eprintln!(
                "backend: {} round {}/{}",
                KINDS[index],
                round + 1,
                ctx.plan.rounds
            );
            runs[index].push(measure(ctx, &route, KINDS[index], round).await?);
        }
    }
    let medians: Vec<(f64, f64)> = runs
        .iter()
        .map(|runs| {
            (
                median(&runs.iter().map(|run| run.rps).collect::<Vec<_>>()),
                median(&runs.iter().map(|run| run.p99_us).collect::<Vec<_>>()),
            )
        })
        .collect();
    let (live_rps, live_p99) = medians[0];
    let rows = KINDS
        .iter()
        .zip(runs)
        .zip(&medians)
        .map(|((backend, runs), &(rps, p99_us))| {
            let worst = runs
                .iter()
                .max_by(|a, b| growth(a).total_cmp(&growth(b)))
                .expect("at least one round");
            let sum = |field: fn(&Run) -> u64| runs.iter().map(field).sum();
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
                dropped_spans: sum(|run| run.dropped_spans),
                dropped_logs: sum(|run| run.dropped_logs),
                received_spans: sum(|run| run.received_spans),
                received_logs: sum(|run| run.received_logs),
                shutdown_s: runs.iter().map(|run| run.shutdown_s).fold(0.0, f64::max),
                runs,
            }
        })
        .collect();
    Ok(Backend {
        rows,
        load_before,
        load_after: report::loadavg(),
    })
}

fn growth(run: &Run) -> f64 {
    run.rss_end as f64 / run.rss_start as f64 - 1.0
}

async fn measure(ctx: &Ctx, route: &Route, kind: &str, round: usize) -> anyhow::Result<Run> {
    // Each holds its endpoint open for the whole run.
    let (sink, _hung, base_url) = match kind {
        "live" => {
            let sink = Sink::start().await?;
            let url = sink.base_url();
            (Some(sink), None, url)
        }
        "refused" => (None, None, format!("http://{}", refusing()?)),
        _ => {
            let hung = Hung::start().await?;
            let url = format!("http://{}", hung.addr());
            (None, Some(hung), url)
        }
    };
    let log_name = format!("backend-{kind}-{round}.log");
    let app = ctx.start_api(&Telemetry::to(&base_url), &log_name).await?;
    let log = app.log.clone();
    let c = ctx.plan.connections;
    wrk(
        &app.base_url,
        route,
        c,
        SETTLE.max(ctx.plan.warmup),
        &ctx.dir,
    )
    .await?;
    let rss_start = app::rss(&app)?;
    let measured = wrk(&app.base_url, route, c, ctx.plan.duration, &ctx.dir).await?;
    let mut requests = measured.requests;
    while requests < ctx.plan.rss_requests {
        requests += wrk(&app.base_url, route, c, ctx.plan.duration, &ctx.dir)
            .await?
            .requests;
    }
    let rss_end = app::rss(&app)?;
    let shutdown = app.stop(Duration::from_secs(15)).await?;
    let written = LogFile::read(&log, route.template)?;
    std::fs::remove_file(&log)?;
    let tally = sink
        .as_ref()
        .map(Sink::received)
        .transpose()?
        .unwrap_or_default();
    Ok(Run {
        rps: measured.rps,
        p99_us: measured.p99_us,
        rss_start,
        rss_end,
        requests,
        dropped_spans: written.dropped_spans,
        dropped_logs: written.dropped_logs,
        received_spans: tally.total_spans(),
        received_logs: tally.total_logs(),
        shutdown_s: shutdown.as_secs_f64(),
    })
}

impl Table for Backend {
    const TABLE: BenchTable = BenchTable::Backend;
    const TITLE: &'static str =
        "2. Dead and hung OTLP backend vs live (trivial route, telemetry on)";

    async fn measure(ctx: &Ctx) -> anyhow::Result<Self> {
        run(ctx).await
    }

    fn print(&self, ctx: &Ctx) {
        println!(
            "   load average {} -> {}",
            self.load_before, self.load_after
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
        for row in &self.rows {
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
            ctx.plan.rss_requests
        );
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for row in self.rows.iter().filter(|row| row.backend != "live") {
            targets.push(Target::new(
                format!("{} backend: p99 vs live", row.backend),
                row.p99_ratio,
                "<= 1.05",
                row.p99_ratio <= 1.05,
            ));
        }
        for row in &self.rows {
            targets.push(Target::new(
                // Growth is what a queue without bounds would show; RSS may also fall
                // (the allocator handing back memory), which is no leak.
                format!("{} backend: RSS growth over the run (%)", row.backend),
                row.rss_growth * 100.0,
                "<= 10",
                row.rss_growth <= 0.10,
            ));
            targets.push(Target::new(
                format!("{} backend: SIGTERM to exit (s)", row.backend),
                row.shutdown_s,
                "<= 4",
                row.shutdown_s <= 4.0,
            ));
        }
        targets
    }
}
