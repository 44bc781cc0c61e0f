//! Table 3's collector rows: what the collector in the path costs, on the e2e's stack, at the
//! no-loss tests' load (`e2e::no_loss::RATE` requests a second, paced, on the trivial route).
//!
//! The api runs once exporting to the stack's collector (which exports to Jaeger and
//! VictoriaLogs) and once straight to the kit's counting sink, the rest of its environment the
//! same, the order rotated each round. Around each run: the collector's cgroup CPU time and
//! memory from the engine's stats API (`Running::stats`), and the spans its receiver accepted
//! (`otelcol_receiver_accepted_spans` on its own metrics endpoint, reached at its bridge
//! address). Its CPU is read once its exporters have sent on what it accepted, so it includes
//! the whole pipeline's work for those spans and their log records. During the direct run it
//! gets nothing from the api: what it uses then is its idle rate, taken out of the net figure.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::container::Running;
use otel_testkit::{eventually_every, prometheus};

use super::app::{self, LogFile};
use super::ctx::{Ctx, Export, Service, median_by};
use super::load::{self, Paced, Route};
use super::report::{Columns, Target};
use crate::e2e::no_loss::RATE;
use crate::e2e::stack::{self, Stack};
use xtask::compose::COLLECTOR;

/// The collector's configuration: where its own metrics are served.
/// How long the collector may take to send on what it accepted (tail sampling decides a
/// trace once a second, after its root span came).
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// p99 and CPU per request with the collector over direct: "about 1.0" means within this.
const TOLERANCE: f64 = 0.10;
const MIB: f64 = (1u64 << 20) as f64;

/// The collector rows.
#[derive(Debug, serde::Serialize)]
pub struct Collector {
    pub rate: u32,
    pub collector: Vec<Run>,
    pub direct: Vec<Run>,
    /// The collector's CPU while the api exports elsewhere (median over the direct runs).
    pub idle_cpu_ms_per_s: f64,
    /// Medians over the collector's runs: its CPU per 1000 spans accepted, all of it and less
    /// the idle rate over the same window; its memory at the end.
    pub cpu_ms_per_1000_spans: f64,
    pub net_cpu_ms_per_1000_spans: f64,
    pub memory_mib: f64,
    /// collector / direct, of the medians.
    pub p99_ratio: f64,
    pub cpu_ratio: f64,
}

/// One paced api run.
#[derive(Debug, serde::Serialize)]
pub struct Run {
    pub load: Paced,
    /// The api's user + system CPU time per request over the paced load.
    pub api_cpu_us_per_request: f64,
    pub written: LogFile,
    /// Spans the receiver got: the collector's `otelcol_receiver_accepted_spans` delta, or the
    /// sink's count.
    pub spans_received: u64,
    pub logs_received: u64,
    /// The collector's CPU time over the run's window, that window, its memory at the end.
    pub collector_cpu_ms: f64,
    pub collector_window_s: f64,
    pub collector_memory_bytes: u64,
}

/// Runs both modes `ctx.plan.rounds` times.
pub async fn measure(ctx: &Ctx, stack: &mut Stack) -> anyhow::Result<Collector> {
    let endpoint = stack
        .app_env("api")?
        .into_iter()
        .find(|(key, _)| key == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|(_, value)| value)
        .context("compose's api sets no OTEL_EXPORTER_OTLP_ENDPOINT")?;
    let port = metrics_port()?;
    let container: &Running = stack.container(COLLECTOR)?;
    let [collector, direct] = ctx
        .rounds("collector:", ["collector", "direct"], async |index, _| {
            let export = match index {
                0 => Export::Collector(endpoint.clone()),
                _ => Export::live_if(true).await?,
            };
            run(ctx, &export, container, port).await
        })
        .await?;
    let of = |runs: &[Run], field: &dyn Fn(&Run) -> f64| median_by(runs, field);
    let cpu = |run: &Run| run.api_cpu_us_per_request;
    let p99 = |run: &Run| run.load.p99_us;
    let idle = of(&direct, &|run| {
        run.collector_cpu_ms / run.collector_window_s
    });
    let per_1000 = |run: &Run, cpu_ms: f64| cpu_ms * 1000.0 / run.spans_received as f64;
    Ok(Collector {
        rate: RATE,
        idle_cpu_ms_per_s: idle,
        cpu_ms_per_1000_spans: of(&collector, &|run| per_1000(run, run.collector_cpu_ms)),
        net_cpu_ms_per_1000_spans: of(&collector, &|run| {
            per_1000(run, run.collector_cpu_ms - idle * run.collector_window_s)
        }),
        memory_mib: of(&collector, &|run| run.collector_memory_bytes as f64 / MIB),
        p99_ratio: of(&collector, &p99) / of(&direct, &p99),
        cpu_ratio: of(&collector, &cpu) / of(&direct, &cpu),
        collector,
        direct,
    })
}

/// A fresh api under [`RATE`] paced requests for `ctx.plan.collector_load`, exporting to
/// `export`, and what `collector` (its container, its metrics port) did meanwhile.
async fn run(ctx: &Ctx, export: &Export, collector: &Running, port: u16) -> anyhow::Result<Run> {
    let metrics = format!("http://{}:{port}/metrics", collector.ip());
    let (before, stats_before) = (
        counters(&ctx.http, &metrics).await?,
        collector.stats().await?,
    );
    let window = Instant::now();
    let route = Route::trivial();
    let env = ctx.env(Service::Api, export);
    let log = ctx
        .logs
        .path()
        .join(format!("collector-{}.log", export.label()));
    let app = ctx.start(Service::Api, env, log.clone()).await?;
    let api_cpu_before = app::cpu(&app)?;
    let paced = load::paced(
        &ctx.http,
        &app.base_url,
        &route,
        RATE,
        ctx.plan.collector_load,
    )
    .await;
    let api_cpu = app::cpu(&app)? - api_cpu_before;
    app.stop(Duration::from_secs(15)).await?;
    let load = paced?;
    let written = LogFile::read(&log, route.template)?;
    std::fs::remove_file(&log).with_context(|| format!("remove {}", log.display()))?;
    let drained = eventually_every(
        Duration::from_millis(250),
        "collector: sent on what it accepted",
        Instant::now(),
        DRAIN_DEADLINE,
        || async {
            let now = counters(&ctx.http, &metrics).await?.since(&before);
            anyhow::ensure!(now.drained(), "{now:?}");
            Ok(now)
        },
    )
    .await?
    .value;
    let after = collector.stats().await?;
    let collector_window_s = window.elapsed().as_secs_f64();
    let (spans_received, logs_received) = match export.sink() {
        Some(_) => {
            let received = export.received()?;
            (received.total_spans(), received.total_logs())
        }
        None => (drained.accepted_spans as u64, drained.accepted_logs as u64),
    };
    anyhow::ensure!(
        spans_received > 0,
        "collector ({}): no spans received from {} requests; see the api's log",
        export.label(),
        load.requests
    );
    Ok(Run {
        api_cpu_us_per_request: api_cpu.as_secs_f64() * 1e6 / load.requests as f64,
        load,
        written,
        spans_received,
        logs_received,
        collector_cpu_ms: (after.cpu_ns - stats_before.cpu_ns) as f64 / 1e6,
        collector_window_s,
        collector_memory_bytes: after.memory_bytes,
    })
}

/// The collector's counters of spans and log records, accepted and sent on.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    accepted_spans: f64,
    accepted_logs: f64,
    sent_spans: f64,
    sent_logs: f64,
}

impl Counters {
    fn since(self, before: &Self) -> Self {
        Self {
            accepted_spans: self.accepted_spans - before.accepted_spans,
            accepted_logs: self.accepted_logs - before.accepted_logs,
            sent_spans: self.sent_spans - before.sent_spans,
            sent_logs: self.sent_logs - before.sent_logs,
        }
    }

    /// Everything accepted has been sent on (all of it is kept: the stack samples 100 %).
    fn drained(&self) -> bool {
        self.sent_spans >= self.accepted_spans && self.sent_logs >= self.accepted_logs
    }
}

async fn counters(http: &reqwest::Client, url: &str) -> anyhow::Result<Counters> {
    let samples = prometheus::scrape(http, url)
        .await
        .context("read the collector's own metrics at its bridge address")?;
    let sum = |name: &str| {
        samples
            .iter()
            .filter(|sample| sample.labels["__name__"] == name)
            .map(|sample| sample.value)
            .sum()
    };
    Ok(Counters {
        accepted_spans: sum("otelcol_receiver_accepted_spans"),
        accepted_logs: sum("otelcol_receiver_accepted_log_records"),
        sent_spans: sum("otelcol_exporter_sent_spans"),
        sent_logs: sum("otelcol_exporter_sent_log_records"),
    })
}

/// The port of the collector's own metrics, as observability/'s config sets it.
fn metrics_port() -> anyhow::Result<u16> {
    let path = xtask::util::project_root().join(stack::COLLECTOR_CONFIG);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read {}", stack::COLLECTOR_CONFIG))?;
    stack::collector_metrics_port(&text)
}

const COLUMNS: Columns = Columns(&[
    ("export", -11),
    ("req/s", 6),
    ("p50 µs", 8),
    ("p99 µs", 8),
    ("api CPU µs/req", 14),
    ("requests/spans recv", 19),
    ("logs recv", 9),
    ("collector CPU ms", 16),
    ("over s", 6),
    ("collector MiB", 13),
]);

impl Collector {
    pub fn print(&self) {
        println!(
            "   the collector's cost at {} req/s (paced, trivial route): exporting to it vs straight to the kit's sink",
            self.rate
        );
        COLUMNS.print_heading();
        for (label, runs) in [("collector", &self.collector), ("direct", &self.direct)] {
            for run in runs {
                let cells = [
                    label.to_owned(),
                    format!("{:.0}", run.load.rps),
                    format!("{:.0}", run.load.p50_us),
                    format!("{:.0}", run.load.p99_us),
                    format!("{:.1}", run.api_cpu_us_per_request),
                    format!("{}/{}", run.written.requests, run.spans_received),
                    run.logs_received.to_string(),
                    format!("{:.0}", run.collector_cpu_ms),
                    format!("{:.1}", run.collector_window_s),
                    format!("{:.0}", run.collector_memory_bytes as f64 / MIB),
                ];
                println!("{}", COLUMNS.row(&cells));
            }
        }
        let ratios = [
            "coll/direct".to_owned(),
            String::new(),
            String::new(),
            format!("{:.2}", self.p99_ratio),
            format!("{:.2}", self.cpu_ratio),
        ];
        println!("{}", COLUMNS.row(&ratios));
        println!(
            "   collector CPU per 1000 spans accepted: {:.0} ms, {:.0} ms net of its idle {:.1} ms/s (the direct runs); memory {:.0} MiB",
            self.cpu_ms_per_1000_spans,
            self.net_cpu_ms_per_1000_spans,
            self.idle_cpu_ms_per_s,
            self.memory_mib
        );
        println!(
            "   collector CPU: its cgroup's (engine stats) from before the api starts until its exporters sent on what it\n   accepted (its log records' work included); MiB: its cgroup's memory at the end"
        );
    }

    pub fn targets(&self) -> Vec<Target> {
        let within = |what: &str, ratio: f64| {
            Target::at_most(format!("collector/direct: {what}"), ratio, 1.0 + TOLERANCE)
        };
        vec![
            within("api p99 at the stack's load", self.p99_ratio),
            within("api CPU per request", self.cpu_ratio),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::Counters;

    /// Counts are taken since the run's start; the collector is drained only once it has sent
    /// on every span and log record it accepted since then.
    #[test]
    fn drained_once_everything_accepted_is_sent() {
        let before = Counters {
            accepted_spans: 100.0,
            accepted_logs: 100.0,
            sent_spans: 90.0,
            sent_logs: 100.0,
        };
        let at = |sent_spans, sent_logs| Counters {
            accepted_spans: 900.0,
            accepted_logs: 900.0,
            sent_spans,
            sent_logs,
        };
        let since = at(890.0, 900.0).since(&before);
        assert_eq!((since.accepted_spans, since.sent_spans), (800.0, 800.0));
        assert!(since.drained());
        assert!(!at(889.0, 900.0).since(&before).drained());
        assert!(!at(890.0, 899.0).since(&before).drained());
    }
}
