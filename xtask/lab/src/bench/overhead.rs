//! Table 1: the same api binary with telemetry on and off, on a trivial route and a
//! PostgreSQL-backed one.
//!
//! Routes: `POST /api/vitals` is the trivial one: it exists, it is metered (unlike the probes,
//! which are excluded from the HTTP metrics), it touches no database or queue, and its handler
//! costs a few thousand instructions (parse a small JSON body, record one histogram), so
//! telemetry's own cost stands out. `GET /api/repositories/{id}` of an existing row is the
//! PostgreSQL route: one indexed query, the api's typical read.
//!
//! Each route gets `rounds` off/on pairs, alternating which goes first, each on a fresh process:
//! wrk warm-up, then a measured wrk run with the server's CPU time read from /proc around it.
//! With telemetry on, the api's stdout says how many requests it answered (one access line each,
//! written inside the request's span) and how many log lines it wrote; the sink says what
//! arrived. Then one callgrind run per mode.

use anyhow::Context as _;

use super::app::{self, LogFile, load_cpu};
use super::callgrind::{self, Profile};
use super::ctx::{Ctx, Telemetry, alternating, median};
use super::load::{Route, Wrk, wrk};
use super::report::{self, Table, Target};
use super::sink::Sink;
use xtask::flags::BenchTable;

/// Table 1.
#[derive(Debug, serde::Serialize)]
pub struct Overhead {
    pub routes: Vec<RouteResult>,
    /// `/proc/loadavg` before and after: wall-clock figures are only as good as the machine was
    /// quiet.
    pub load_before: String,
    pub load_after: String,
}

/// One route, both modes.
#[derive(Debug, serde::Serialize)]
pub struct RouteResult {
    pub route: String,
    pub request: String,
    pub off: Mode,
    pub on: Mode,
    /// on / off of the medians.
    pub rps_ratio: f64,
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// on - off, per request.
    pub added_cpu_us: f64,
    pub added_instructions: f64,
}

/// One mode of one route: every run, their medians, the callgrind count.
#[derive(Debug, serde::Serialize)]
pub struct Mode {
    pub runs: Vec<Run>,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us_per_request: f64,
    pub load_cpu_share: f64,
    pub callgrind: Profile,
}

/// One measured wrk run on a fresh server.
#[derive(Debug, serde::Serialize)]
pub struct Run {
    pub wrk: Wrk,
    pub cpu_us_per_request: f64,
    /// How busy the load core was (wrk, the sink): near 1.0 it, not the server, set req/s.
    pub load_cpu_share: f64,
    /// Server spans the api made (its access lines), and those the sink got.
    pub spans_sent: u64,
    pub spans_received: u64,
    /// Other spans that arrived (the database's client spans on the PostgreSQL route).
    pub other_spans_received: u64,
    /// JSON log lines the api wrote, and OTLP log records the sink got.
    pub logs_sent: u64,
    pub logs_received: u64,
    pub dropped_spans: u64,
    pub dropped_logs: u64,
    pub shutdown_s: f64,
}

async fn run(ctx: &Ctx) -> anyhow::Result<Overhead> {
    let load_before = report::loadavg();
    let routes = routes(ctx).await?;
    let mut results = Vec::new();
    for route in &routes {
        let mut off = Vec::new();
        let mut on = Vec::new();
        for round in 0..ctx.plan.rounds {
            for telemetry_on in alternating(round) {
                eprintln!(
                    "overhead: {} {} round {}/{}",
                    route.name,
                    if telemetry_on { "on" } else { "off" },
                    round + 1,
                    ctx.plan.rounds
                );
                let run = measure(ctx, route, telemetry_on, round).await?;
                if telemetry_on { &mut on } else { &mut off }.push(run);
            }
        }
        eprintln!("overhead: {} under callgrind", route.name);
        let env_off = ctx.env("api", &Telemetry::Off);
        let profile_off =
            callgrind::measure(ctx, &format!("{}-off", route.name), &env_off, route, None).await?;
        let sink = Sink::start().await?;
        let env_on = ctx.env("api", &Telemetry::to(&sink.base_url()));
        let profile_on = callgrind::measure(
            ctx,
            &format!("{}-on", route.name),
            &env_on,
            route,
            Some(&sink),
        )
        .await?;
        let off = mode(off, profile_off);
        let on = mode(on, profile_on);
        results.push(RouteResult {
            route: route.name.to_owned(),
            request: format!("{} {}", route.method, route.template),
            rps_ratio: on.rps / off.rps,
            p50_ratio: on.p50_us / off.p50_us,
            p99_ratio: on.p99_us / off.p99_us,
            added_cpu_us: on.cpu_us_per_request - off.cpu_us_per_request,
            added_instructions: on.callgrind.per_request - off.callgrind.per_request,
            off,
            on,
        });
    }
    Ok(Overhead {
        routes: results,
        load_before,
        load_after: report::loadavg(),
    })
}

fn mode(runs: Vec<Run>, callgrind: Profile) -> Mode {
    let of = |field: fn(&Run) -> f64| median(&runs.iter().map(field).collect::<Vec<_>>());
    Mode {
        rps: of(|run| run.wrk.rps),
        p50_us: of(|run| run.wrk.p50_us),
        p99_us: of(|run| run.wrk.p99_us),
        cpu_us_per_request: of(|run| run.cpu_us_per_request),
        load_cpu_share: of(|run| run.load_cpu_share),
        runs,
        callgrind,
    }
}

/// One fresh server, warm-up, one measured wrk run, SIGTERM, and the counts.
async fn measure(
    ctx: &Ctx,
    route: &Route,
    telemetry_on: bool,
    round: usize,
) -> anyhow::Result<Run> {
    let (sink, telemetry) = Telemetry::with_sink(telemetry_on).await?;
    let log_name = format!("overhead-{}-{}-{round}.log", route.name, telemetry.label());
    let app = ctx.start_api(&telemetry, &log_name).await?;
    let log = app.log.clone();
    let c = ctx.plan.connections;
    wrk(&app.base_url, route, c, ctx.plan.warmup, &ctx.dir).await?;
    let (cpu_before, load_before) = (app::cpu(&app)?, load_cpu()?);
    let measured = wrk(&app.base_url, route, c, ctx.plan.duration, &ctx.dir).await?;
    let (cpu, load) = (app::cpu(&app)? - cpu_before, load_cpu()? - load_before);
    let shutdown = app.stop(std::time::Duration::from_secs(15)).await?;
    let written = LogFile::read(&log, route.template)?;
    // The logs of a finished run are only counted; at tens of MB each they are not kept.
    std::fs::remove_file(&log).with_context(|| format!("remove {}", log.display()))?;
    let tally = sink
        .as_ref()
        .map(Sink::received)
        .transpose()?
        .unwrap_or_default();
    let spans_received = tally.spans_named(&route.span_name());
    Ok(Run {
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / measured.requests as f64,
        load_cpu_share: load.as_secs_f64() / measured.seconds,
        wrk: measured,
        spans_sent: written.requests,
        spans_received,
        other_spans_received: tally.total_spans() - spans_received,
        logs_sent: written.lines,
        logs_received: tally.total_logs(),
        dropped_spans: written.dropped_spans,
        dropped_logs: written.dropped_logs,
        shutdown_s: shutdown.as_secs_f64(),
    })
}

/// The two routes; the PostgreSQL one needs a row, created (or found) through the api itself.
async fn routes(ctx: &Ctx) -> anyhow::Result<Vec<Route>> {
    let trivial = Route::trivial();
    let id = ctx.repositories(&["postgres-route"]).await?[0];
    let postgres = Route {
        name: "postgres",
        method: "GET",
        path: format!("/api/repositories/{id}"),
        template: "/api/repositories/{id}",
        body: None,
    };
    Ok(vec![trivial, postgres])
}

impl Table for Overhead {
    const TABLE: BenchTable = BenchTable::Overhead;
    const TITLE: &'static str =
        "1. Overhead: telemetry on vs off (AMPEL_TELEMETRY=off), same release binary";

    async fn measure(ctx: &Ctx) -> anyhow::Result<Self> {
        run(ctx).await
    }

    fn print(&self, ctx: &Ctx) {
        println!(
            "   load average {} -> {}; RUST_LOG={}; wrk -t1 -c{} on cpu {}, server on cpu {}",
            self.load_before,
            self.load_after,
            ctx.rust_log(),
            ctx.plan.connections,
            app::LOAD_CPU,
            app::SERVER_CPU
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
        for route in &self.routes {
            for (label, mode) in [("off", &route.off), ("on", &route.on)] {
                let sum = |field: fn(&Run) -> u64| -> u64 { mode.runs.iter().map(field).sum() };
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
            ctx.plan.callgrind_requests
        );
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for route in &self.routes {
            targets.push(Target::new(
                format!("{}: added instructions per request", route.route),
                route.added_instructions,
                "<= 75000",
                route.added_instructions <= 75_000.0,
            ));
            targets.push(Target::new(
                format!("{}: added CPU per request (µs)", route.route),
                route.added_cpu_us,
                "<= 10",
                route.added_cpu_us <= 10.0,
            ));
            if route.route == "postgres" {
                targets.push(Target::new(
                    "postgres: throughput on/off".into(),
                    route.rps_ratio,
                    ">= 0.90",
                    route.rps_ratio >= 0.90,
                ));
            }
        }
        targets
    }
}
