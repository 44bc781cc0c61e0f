//! Table 3: how long after a request's end its trace, its log record and its counter can be
//! queried, with the stack's settings (compose's export delays, observability/'s scrape
//! interval) against the CI stand-ins for the stack: the api exports traces and logs to the
//! collector, which exports them to Jaeger and VictoriaLogs; Prometheus scrapes the api. Then,
//! on the same stack, what the collector costs (`collector.rs`).
//!
//! Each sample is one `POST /api/vitals`; its trace id comes back in `traceparent`. From the
//! moment the response has arrived, probes poll (every 25 ms, `otel_testkit::eventually_every`)
//! until Jaeger returns the trace by
//! id (`/api/v3/traces/{id}`), VictoriaLogs returns the request's log record by trace id
//! (LogsQL), and Prometheus' `axum_http_requests_total` for the route includes it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::{SpanKind, eventually_every};

use super::collector::{self, Collector};
use super::ctx::{Ctx, Service, median_by};
use super::load::{self, Route};
use super::report::{Columns, Table, Target};
use crate::e2e::apps;
use crate::e2e::stack::Stack;
use xtask::flags::{BenchTable, LogBackend, TraceBackend};

/// Table 3.
#[derive(Debug, serde::Serialize)]
pub struct Visible {
    pub rows: Vec<Row>,
    /// The delays and interval that govern the figures.
    pub settings: String,
    pub collector: Collector,
}

#[derive(Debug, serde::Serialize)]
pub struct Row {
    pub signal: &'static str,
    pub backend: String,
    pub median_s: f64,
    pub samples_s: Vec<f64>,
    pub limit_s: f64,
}

/// How long one sample may take to become visible before the table fails.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(30);
const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// The Prometheus configuration the stack uses; its scrape interval is the one measured.
const PROMETHEUS_CONFIG: &str = "observability/prometheus/prometheus.yml";

async fn measure(ctx: &Ctx, stack: &mut Stack) -> anyhow::Result<Visible> {
    // The e2e's Prometheus takes its global settings from the stack's configuration.
    let scrape_interval = scrape_interval()?;
    let api_listen = apps::free_port(stack.host_ip)?;
    stack
        .scrape(&[("api", api_listen)], "bench")
        .await
        .context("point Prometheus at the api")?;
    let env = stack.app_env("api")?;
    let settings = format!(
        "OTEL_BSP_SCHEDULE_DELAY={} ms, OTEL_BLRP_SCHEDULE_DELAY={} ms (compose), scrape_interval {} s ({PROMETHEUS_CONFIG})",
        value(&env, "OTEL_BSP_SCHEDULE_DELAY"),
        value(&env, "OTEL_BLRP_SCHEDULE_DELAY"),
        scrape_interval.as_secs_f64()
    );
    let log = ctx.dir.join("visible-api.log");
    let app = ctx
        .start_on(Service::Api, api_listen, &[], env, log)
        .await?;
    let probes = Probes {
        stack: &*stack,
        route: Route::trivial(),
    };
    eventually_every(
        PROBE_INTERVAL,
        "visible: Prometheus scraped the api",
        Instant::now(),
        SAMPLE_DEADLINE + scrape_interval,
        || async {
            probes
                .counter()
                .await?
                .context("no scrape of the api yet (up{job=\"api\"} has no series)")
        },
    )
    .await?;

    // Requests follow each other as soon as the previous one's trace and log are visible, so
    // they land at different points of the scrape interval. The counter is watched throughout;
    // request k is visible there once the count reaches the count before the first + k + 1.
    let base = probes.counter().await?.unwrap_or(0.0);
    let samples = ctx.plan.visible_samples;
    let ends = std::sync::Mutex::new(Vec::new());
    let requests = async {
        let mut found = [Vec::new(), Vec::new()];
        for sample in 0..samples {
            eprintln!("visible: sample {}/{samples}", sample + 1);
            let trace_id = probes.request(&ctx.http, &app.base_url).await?;
            let end = Instant::now();
            ends.lock().expect("no panic while holding it").push(end);
            let (trace, log) = tokio::join!(
                probes.until(end, "trace", || probes.trace(&trace_id)),
                probes.until(end, "log", || probes.log(&trace_id)),
            );
            found[0].push(trace?.as_secs_f64());
            found[1].push(log?.as_secs_f64());
        }
        anyhow::Ok(found)
    };
    let counter = async {
        let mut seen = Vec::new();
        while seen.len() < samples {
            // Request k's deadline runs from its end; it is waited for once it has been sent.
            let end = eventually_every(
                PROBE_INTERVAL,
                "visible: the next request sent",
                Instant::now(),
                SAMPLE_DEADLINE * 2,
                || async {
                    ends.lock()
                        .expect("no panic while holding it")
                        .get(seen.len())
                        .copied()
                        .context("not sent yet")
                },
            )
            .await?
            .value;
            let expected = base + seen.len() as f64 + 1.0;
            let counted = eventually_every(
                PROBE_INTERVAL,
                &format!("visible: request {} counted", seen.len() + 1),
                end,
                SAMPLE_DEADLINE,
                || async {
                    let now = probes.counter().await?.unwrap_or(base);
                    anyhow::ensure!(now >= expected, "count {now}, expected {expected}");
                    Ok(now)
                },
            )
            .await?;
            // One scrape can count several requests: each counted one is visible from then on.
            // A scrape can also fall between the count and the client's receipt of the
            // response; that request is taken at the next poll.
            let at = end + counted.after;
            let ends = ends.lock().expect("no panic while holding it").clone();
            while seen.len() < samples && counted.value >= base + seen.len() as f64 + 1.0 {
                let Some(end) = ends.get(seen.len()) else {
                    break;
                };
                seen.push(at.saturating_duration_since(*end).as_secs_f64());
            }
        }
        anyhow::Ok(seen)
    };
    let (found, metric) = tokio::join!(requests, counter);
    let [trace, log] = found?;
    let metric = metric?;
    app.stop(Duration::from_secs(15)).await?;

    let scrape_s = scrape_interval.as_secs_f64();
    let row = |signal, backend: String, samples_s: Vec<f64>, limit_s| Row {
        signal,
        backend,
        median_s: median_by(&samples_s, |sample| *sample),
        samples_s,
        limit_s,
    };
    let collector = collector::measure(ctx, stack).await?;
    Ok(Visible {
        rows: vec![
            row(
                "trace",
                "collector -> Jaeger /api/v3/traces/{id}".into(),
                trace,
                2.0,
            ),
            row(
                "log",
                "collector -> VictoriaLogs trace_id:=".into(),
                log,
                2.0,
            ),
            row(
                "metric",
                "Prometheus axum_http_requests_total".into(),
                metric,
                scrape_s + 1.0,
            ),
        ],
        settings,
        collector,
    })
}

/// Queries through the e2e stack's clients of its backends.
struct Probes<'a> {
    stack: &'a Stack,
    /// The route requested: its server span, its log record and its counter are looked for.
    route: Route,
}

impl Probes<'_> {
    /// One request; returns its trace id, from the `traceparent` response header.
    async fn request(&self, http: &reqwest::Client, base_url: &str) -> anyhow::Result<String> {
        let route = &self.route;
        let url = format!("{base_url}{}", route.path);
        let response = load::send(http, &url, route.method, route.body).await?;
        let traceparent = response
            .headers()
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .with_context(|| format!("{url}: no traceparent in the response"))?;
        traceparent
            .split('-')
            .nth(1)
            .filter(|id| id.len() == 32)
            .map(str::to_owned)
            .with_context(|| format!("{url}: traceparent {traceparent:?} has no trace id"))
    }

    /// Polls `probe` until it passes; returns the time since `end`.
    async fn until<F, Fut>(&self, end: Instant, what: &str, probe: F) -> anyhow::Result<Duration>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let what = format!("visible: the request's {what}");
        Ok(
            eventually_every(PROBE_INTERVAL, &what, end, SAMPLE_DEADLINE, probe)
                .await?
                .after,
        )
    }

    /// Jaeger holds the request's server span.
    async fn trace(&self, trace_id: &str) -> anyhow::Result<()> {
        let name = self.route.span_name();
        let trace = self.stack.traces.trace(trace_id).await?;
        anyhow::ensure!(
            trace
                .find(ampel_api::SERVICE_NAME, SpanKind::Server, &name)
                .is_some(),
            "no {} server span {name:?}; {trace}",
            ampel_api::SERVICE_NAME
        );
        Ok(())
    }

    /// VictoriaLogs holds a log record of the request.
    async fn log(&self, trace_id: &str) -> anyhow::Result<()> {
        let records = self.stack.logs.records(trace_id).await?;
        anyhow::ensure!(!records.is_empty(), "no record with trace_id {trace_id}");
        Ok(())
    }

    /// The route's request count as Prometheus has it, `None` before the first scrape.
    async fn counter(&self) -> anyhow::Result<Option<f64>> {
        let query = format!(
            "sum(axum_http_requests_total{{endpoint=\"{}\"}}) or (up{{job=\"api\"}} == 1) * 0",
            self.route.template
        );
        self.stack.prometheus.sum(&query).await
    }
}

/// `global.scrape_interval` of the stack's Prometheus configuration.
fn scrape_interval() -> anyhow::Result<Duration> {
    let path = xtask::util::project_root().join(PROMETHEUS_CONFIG);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {PROMETHEUS_CONFIG}"))?;
    let config: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parse {PROMETHEUS_CONFIG}"))?;
    // Prometheus' own default when the file sets none.
    let interval = config["global"]["scrape_interval"].as_str().unwrap_or("1m");
    promql_parser::util::parse_duration(interval)
        .map_err(|err| anyhow::anyhow!("{PROMETHEUS_CONFIG}: scrape_interval {interval:?}: {err}"))
}

fn value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(name, _)| name == key)
        .map_or_else(|| "default".to_owned(), |(_, value)| value.clone())
}

const COLUMNS: Columns = Columns(&[
    ("signal", -8),
    ("queried at", -36),
    ("median s", 9),
    ("target", 7),
    (" samples (s)", -1),
]);

impl Table for Visible {
    const TABLE: BenchTable = BenchTable::Visible;
    const TITLE: &'static str = "3. Through the collector: time from a request's end until the backend answers a query for it, and the collector's cost";

    async fn measure(ctx: &Ctx) -> anyhow::Result<Self> {
        eprintln!(
            "visible: starting the e2e's stack (the collector, Jaeger, VictoriaLogs, Prometheus)"
        );
        let mut stack = Stack::start(TraceBackend::Jaeger, LogBackend::Victorialogs).await?;
        let measured = measure(ctx, &mut stack).await;
        stack.stop(false).await;
        measured
    }

    fn settings(&self, _: &Ctx) -> String {
        format!("; {}", self.settings)
    }

    fn print(&self, _: &Ctx) {
        COLUMNS.print_heading();
        for row in &self.rows {
            let samples: Vec<String> = row.samples_s.iter().map(|s| format!("{s:.2}")).collect();
            let cells = [
                row.signal.to_owned(),
                row.backend.clone(),
                format!("{:.2}", row.median_s),
                format!("<= {}", row.limit_s),
                // The samples follow after two spaces, under no width.
                format!(" {}", samples.join(" ")),
            ];
            println!("{}", COLUMNS.row(&cells));
        }
        self.collector.print();
    }

    fn targets(&self) -> Vec<Target> {
        let visible = self.rows.iter().map(|row| {
            let what = format!("time to visible: {} (s, median)", row.signal);
            Target::at_most(what, row.median_s, row.limit_s)
        });
        visible.chain(self.collector.targets()).collect()
    }
}
