//! Table 3: how long after a request's end its trace, its log record and its counter can be
//! queried, with the stack's settings (compose's export delays, observability/'s scrape
//! interval) against the CI stand-ins for the stack: Jaeger for traces, VictoriaLogs for logs,
//! Prometheus for metrics.
//!
//! Each sample is one `POST /api/vitals`; its trace id comes back in `traceparent`. From the
//! moment the response has arrived, probes poll (every 25 ms) until Jaeger returns the trace by
//! id (`/api/v3/traces/{id}`), VictoriaLogs returns the request's log record by trace id
//! (LogsQL), and Prometheus' `axum_http_requests_total` for the route includes it.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::app;
use super::{Ctx, median};
use crate::e2e::apps;
use crate::e2e::stack::Stack;
use crate::flags::{LogBackend, TraceBackend};

/// Table 3.
#[derive(Debug, serde::Serialize)]
pub struct Visible {
    pub rows: Vec<Row>,
    /// The delays and interval that govern the figures.
    pub settings: String,
    pub load_before: String,
    pub load_after: String,
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
const ROUTE: &str = "/api/vitals";
const BEACON: &str = r#"{"name":"LCP","value":1234.5,"rating":"good"}"#;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Visible> {
    let load_before = super::report::loadavg();
    eprintln!("visible: starting the e2e's stack (Jaeger, VictoriaLogs, Prometheus)");
    let stack = Stack::start(TraceBackend::Jaeger, LogBackend::Victorialogs).await?;
    let measured = measure(ctx, &stack, load_before).await;
    stack.stop(false).await;
    measured
}

async fn measure(ctx: &Ctx, stack: &Stack, load_before: String) -> anyhow::Result<Visible> {
    // The e2e's Prometheus takes its global settings from the stack's configuration.
    let scrape_interval = scrape_interval()?;
    let api_listen = apps::free_port(stack.host_ip)?;
    stack
        .scrape(&[("api", api_listen)], "bench")
        .await
        .context("point Prometheus at the api")?;
    let mut env = stack.app_env("api")?;
    env.push(("API_LISTEN_ADDR".into(), api_listen.to_string()));
    let settings = format!(
        "OTEL_BSP_SCHEDULE_DELAY={} ms, OTEL_BLRP_SCHEDULE_DELAY={} ms (compose), scrape_interval {} s ({PROMETHEUS_CONFIG})",
        value(&env, "OTEL_BSP_SCHEDULE_DELAY"),
        value(&env, "OTEL_BLRP_SCHEDULE_DELAY"),
        scrape_interval.as_secs_f64()
    );
    let mut app = app::start(
        "ampel-api",
        &ctx.binaries.api,
        &[],
        &env,
        api_listen,
        ctx.dir.join("visible-api.log"),
    )?;
    app.ready("/health").await?;
    let probes = Probes { stack };
    let since = Instant::now();
    while probes.counter().await?.is_none() {
        anyhow::ensure!(
            since.elapsed() < SAMPLE_DEADLINE + scrape_interval,
            "Prometheus has not scraped the api (up{{job=\"api\"}}) within {}s",
            (SAMPLE_DEADLINE + scrape_interval).as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
            let trace_id = request(&ctx.http, &app.base_url).await?;
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
        let mut last = base;
        while seen.len() < samples {
            let now = probes.counter().await?.unwrap_or(base);
            let at = Instant::now();
            while now >= base + seen.len() as f64 + 1.0 && seen.len() < samples {
                // A scrape can fall between the count and the client's receipt of the response;
                // that request is taken at the next poll.
                let Some(end) = ends
                    .lock()
                    .expect("no panic while holding it")
                    .get(seen.len())
                    .copied()
                else {
                    break;
                };
                seen.push(at.saturating_duration_since(end).as_secs_f64());
            }
            last = last.max(now);
            let oldest = ends
                .lock()
                .expect("no panic while holding it")
                .get(seen.len())
                .copied();
            anyhow::ensure!(
                oldest.is_none_or(|end| end.elapsed() < SAMPLE_DEADLINE),
                "request {} was not counted by Prometheus within {}s (count {last}, expected {})",
                seen.len() + 1,
                SAMPLE_DEADLINE.as_secs(),
                base + seen.len() as f64 + 1.0
            );
            tokio::time::sleep(PROBE_INTERVAL).await;
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
        median_s: median(&samples_s),
        samples_s,
        limit_s,
    };
    Ok(Visible {
        rows: vec![
            row("trace", "Jaeger /api/v3/traces/{id}".into(), trace, 2.0),
            row("log", "VictoriaLogs LogsQL trace_id:=".into(), log, 2.0),
            row(
                "metric",
                "Prometheus axum_http_requests_total".into(),
                metric,
                scrape_s + 1.0,
            ),
        ],
        settings,
        load_before,
        load_after: super::report::loadavg(),
    })
}

/// One beacon; returns its trace id, from the `traceparent` response header.
async fn request(http: &reqwest::Client, base_url: &str) -> anyhow::Result<String> {
    let url = format!("{base_url}{ROUTE}");
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body(BEACON)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?
        .error_for_status()
        .with_context(|| format!("POST {url}"))?;
    let traceparent = response
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .with_context(|| format!("POST {url}: no traceparent in the response"))?;
    traceparent
        .split('-')
        .nth(1)
        .filter(|id| id.len() == 32)
        .map(str::to_owned)
        .with_context(|| format!("POST {url}: traceparent {traceparent:?} has no trace id"))
}

/// Queries through the e2e stack's clients of its backends.
struct Probes<'a> {
    stack: &'a Stack,
}

impl Probes<'_> {
    /// Polls `probe` until it says yes; returns the time since `end`.
    async fn until<F, Fut>(&self, end: Instant, what: &str, probe: F) -> anyhow::Result<Duration>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = anyhow::Result<bool>>,
    {
        loop {
            if probe().await? {
                return Ok(end.elapsed());
            }
            anyhow::ensure!(
                end.elapsed() < SAMPLE_DEADLINE,
                "the request's {what} was not queryable within {}s",
                SAMPLE_DEADLINE.as_secs()
            );
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Jaeger holds the request's server span.
    async fn trace(&self, trace_id: &str) -> anyhow::Result<bool> {
        let name = format!("POST {ROUTE}");
        let spans = self.stack.traces.spans(trace_id).await?;
        Ok(spans.iter().any(|span| span.name == name))
    }

    /// VictoriaLogs holds a log record of the request.
    async fn log(&self, trace_id: &str) -> anyhow::Result<bool> {
        Ok(!self.stack.logs.records(trace_id).await?.is_empty())
    }

    /// The route's request count as Prometheus has it, `None` before the first scrape.
    async fn counter(&self) -> anyhow::Result<Option<f64>> {
        let query = format!(
            "sum(axum_http_requests_total{{endpoint=\"{ROUTE}\"}}) or (up{{job=\"api\"}} == 1) * 0"
        );
        self.stack.prometheus.value(&query).await
    }
}

/// `global.scrape_interval` of the stack's Prometheus configuration.
fn scrape_interval() -> anyhow::Result<Duration> {
    let path = crate::util::project_root().join(PROMETHEUS_CONFIG);
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
