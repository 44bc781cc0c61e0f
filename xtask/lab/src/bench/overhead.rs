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

use super::app;
use super::callgrind::{self, Profile};
use super::ctx::{Ctx, Export, median_by};
use super::load::{ApiRun, Route, api_run};
use super::report::{Columns, Table, Target};
use xtask::flags::BenchTable;

/// Table 1.
#[derive(Debug, serde::Serialize)]
pub struct Overhead {
    pub routes: Vec<RouteResult>,
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
    pub runs: Vec<ApiRun>,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us_per_request: f64,
    pub load_cpu_share: f64,
    pub callgrind: Profile,
}

impl Mode {
    async fn measure(
        ctx: &Ctx,
        route: &Route,
        runs: Vec<ApiRun>,
        on: bool,
    ) -> anyhow::Result<Self> {
        let label = format!("{}-{}", route.name, if on { "on" } else { "off" });
        let callgrind = callgrind::measure(ctx, &label, &Export::live_if(on).await?, route).await?;
        let of = |field: fn(&ApiRun) -> f64| median_by(&runs, field);
        Ok(Self {
            rps: of(|run| run.wrk.rps),
            p50_us: of(|run| run.wrk.p50_us),
            p99_us: of(|run| run.wrk.p99_us),
            cpu_us_per_request: of(|run| run.cpu_us_per_request),
            load_cpu_share: of(|run| run.load_cpu_share),
            runs,
            callgrind,
        })
    }
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

const COLUMNS: Columns = Columns(&[
    ("route", -9),
    ("mode", -6),
    ("req/s", 9),
    ("p50 µs", 8),
    ("p99 µs", 8),
    ("CPU µs/req", 10),
    ("instr/req", 10),
    ("spans sent/recv", 19),
    ("logs sent/recv", 19),
    ("dropped", 7),
    ("load", 5),
]);

impl Table for Overhead {
    const TABLE: BenchTable = BenchTable::Overhead;
    const TITLE: &'static str =
        "1. Overhead: telemetry on vs off (AMPEL_TELEMETRY=off), same release binary";

    async fn measure(ctx: &Ctx) -> anyhow::Result<Self> {
        let mut results = Vec::new();
        for route in routes(ctx).await? {
            let what = format!("overhead: {}", route.name);
            let [off, on] = ctx
                .rounds(&what, ["off", "on"], async |on, _| {
                    let export = Export::live_if(on == 1).await?;
                    let log = format!("overhead-{}", route.name);
                    api_run(ctx, &route, &export, ctx.plan.warmup, 0, &log).await
                })
                .await?;
            eprintln!("overhead: {} under callgrind", route.name);
            let off = Mode::measure(ctx, &route, off, false).await?;
            let on = Mode::measure(ctx, &route, on, true).await?;
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
        Ok(Overhead { routes: results })
    }

    fn settings(&self, ctx: &Ctx) -> String {
        format!(
            "; RUST_LOG={}; wrk -t1 -c{} on cpu {}, server on cpu {}",
            ctx.rust_log(),
            ctx.plan.connections,
            app::LOAD_CPU,
            app::SERVER_CPU
        )
    }

    fn print(&self, ctx: &Ctx) {
        COLUMNS.print_heading();
        for route in &self.routes {
            for (label, mode) in [("off", &route.off), ("on", &route.on)] {
                let sum = |field: fn(&ApiRun) -> u64| -> u64 { mode.runs.iter().map(field).sum() };
                let sent_received = |sent: u64, received: u64| match label {
                    "on" => format!("{sent}/{received}"),
                    _ => "-".into(),
                };
                let cells = [
                    route.route.clone(),
                    label.to_owned(),
                    format!("{:.0}", mode.rps),
                    format!("{:.0}", mode.p50_us),
                    format!("{:.0}", mode.p99_us),
                    format!("{:.2}", mode.cpu_us_per_request),
                    format!("{:.0}", mode.callgrind.per_request),
                    sent_received(sum(|r| r.written.requests), sum(|r| r.spans_received)),
                    sent_received(sum(|r| r.written.lines), sum(|r| r.logs_received)),
                    sum(|r| r.written.dropped_spans + r.written.dropped_logs).to_string(),
                    format!("{:.0}%", mode.load_cpu_share * 100.0),
                ];
                println!("{}", COLUMNS.row(&cells));
            }
            let ratios = [
                route.route.clone(),
                "on/off".into(),
                format!("{:.3}", route.rps_ratio),
                format!("{:.2}", route.p50_ratio),
                format!("{:.2}", route.p99_ratio),
                format!("{:+.2}", route.added_cpu_us),
                format!("{:+.0}", route.added_instructions),
            ];
            println!("{}   ({})", COLUMNS.row(&ratios), route.request);
        }
        println!(
            "   CPU µs/req: the server's user+system time over the measured run / requests; instr/req: callgrind, {} requests;\n   load: how busy the load core was (wrk + the OTLP sink); near 100% it, not the server, capped req/s",
            ctx.plan.callgrind_requests
        );
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for route in &self.routes {
            let what = |what: &str| format!("{}: {what}", route.route);
            let instructions = route.added_instructions;
            targets.push(Target::at_most(
                what("added instructions per request"),
                instructions,
                75_000.0,
            ));
            let cpu = route.added_cpu_us;
            targets.push(Target::at_most(
                what("added CPU per request (µs)"),
                cpu,
                10.0,
            ));
            if route.route == "postgres" {
                let ratio = route.rps_ratio;
                targets.push(Target::at_least(what("throughput on/off"), ratio, 0.90));
            }
        }
        targets
    }
}
