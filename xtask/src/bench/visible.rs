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

use super::app::{App, free_addr};
use super::containers::{Container, engine};
use super::{Ctx, Telemetry, median};
use crate::compose::{self, ComposeFile};

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

/// How long a container may take to answer.
const READY_DEADLINE: Duration = Duration::from_secs(90);
/// How long one sample may take to become visible before the table fails.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(30);
const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// The Prometheus configuration the stack uses; its scrape interval is the one measured.
const PROMETHEUS_CONFIG: &str = "observability/prometheus/prometheus.yml";
const ROUTE: &str = "/api/vitals";
const BEACON: &str = r#"{"name":"LCP","value":1234.5,"rating":"good"}"#;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Visible> {
    let load_before = super::report::loadavg();
    let cli = engine()?;
    let main = ComposeFile::read(compose::MAIN)?;
    let peers = ComposeFile::read(compose::PEERS)?;
    let image = |file: &ComposeFile, service: &str| {
        file.services
            .get(service)
            .and_then(compose::Service::resolved_image)
            .with_context(|| format!("no image for {service} in compose/"))
    };
    let scrape_interval = scrape_interval()?;

    eprintln!("visible: starting Jaeger, VictoriaLogs and Prometheus ({cli})");
    let jaeger = Container::run(
        cli,
        "jaeger",
        &[
            "-p".into(),
            "127.0.0.1::4318".into(),
            "-p".into(),
            "127.0.0.1::16686".into(),
            image(&peers, "jaeger")?,
        ],
    )?;
    let mut victorialogs_args = vec![
        "-p".to_owned(),
        "127.0.0.1::9428".to_owned(),
        image(&peers, "victorialogs")?,
    ];
    victorialogs_args.extend(command(&peers, "victorialogs"));
    let victorialogs = Container::run(cli, "victorialogs", &victorialogs_args)?;

    // Prometheus shares the host's network so it can scrape the api on 127.0.0.1 (a container
    // cannot reach the host's loopback otherwise); it listens on a free loopback port.
    let api_listen = free_addr()?;
    let prometheus_listen = free_addr()?;
    let config_dir = ctx.dir.join("prometheus");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(
        config_dir.join("prometheus.yml"),
        format!(
            "# Written by `cargo xtask bench` (table 3); the interval is {PROMETHEUS_CONFIG}'s.\n\
global:\n  scrape_interval: {}ms\nscrape_configs:\n  - job_name: api\n    static_configs:\n      - targets: [\"{api_listen}\"]\n",
            scrape_interval.as_millis()
        ),
    )?;
    let prometheus = Container::run(
        cli,
        "prometheus",
        &[
            "--network".into(),
            "host".into(),
            "-v".into(),
            format!("{}:/etc/bench:ro", config_dir.display()),
            image(&main, "prometheus")?,
            "--config.file=/etc/bench/prometheus.yml".into(),
            "--storage.tsdb.path=/tmp/prometheus".into(),
            format!("--web.listen-address={prometheus_listen}"),
        ],
    )?;
    let jaeger_query = format!("http://{}", jaeger.published(16686)?);
    let jaeger_otlp = format!("http://{}", jaeger.published(4318)?);
    let logs_url = format!("http://{}", victorialogs.published(9428)?);
    let prometheus_url = format!("http://{prometheus_listen}");
    jaeger
        .ready(
            &ctx.http,
            &format!("{jaeger_query}/api/v3/services"),
            READY_DEADLINE,
        )
        .await?;
    victorialogs
        .ready(&ctx.http, &format!("{logs_url}/health"), READY_DEADLINE)
        .await?;
    prometheus
        .ready(
            &ctx.http,
            &format!("{prometheus_url}/-/ready"),
            READY_DEADLINE,
        )
        .await?;

    let telemetry = Telemetry::On {
        traces: format!("{jaeger_otlp}/v1/traces"),
        logs: format!("{logs_url}/insert/opentelemetry/v1/logs"),
    };
    let mut env = ctx.env("api", &telemetry);
    env.push(("API_LISTEN_ADDR".into(), api_listen.to_string()));
    let settings = format!(
        "OTEL_BSP_SCHEDULE_DELAY={} ms, OTEL_BLRP_SCHEDULE_DELAY={} ms (compose), scrape_interval {} s ({PROMETHEUS_CONFIG})",
        value(&env, "OTEL_BSP_SCHEDULE_DELAY"),
        value(&env, "OTEL_BLRP_SCHEDULE_DELAY"),
        scrape_interval.as_secs_f64()
    );
    let mut app = App::start(
        "ampel-api",
        &ctx.binaries.api,
        &[],
        &env,
        api_listen,
        ctx.dir.join("visible-api.log"),
    )?;
    app.ready(&ctx.http).await?;
    let probes = Probes {
        http: ctx.http.clone(),
        jaeger: jaeger_query,
        logs: logs_url,
        prometheus: prometheus_url,
    };
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
    drop((jaeger, victorialogs, prometheus));

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

struct Probes {
    http: reqwest::Client,
    jaeger: String,
    logs: String,
    prometheus: String,
}

impl Probes {
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

    /// Jaeger answers 404 until it holds the trace.
    async fn trace(&self, trace_id: &str) -> anyhow::Result<bool> {
        let url = format!("{}/api/v3/traces/{trace_id}", self.jaeger);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(response.status().is_success()
            && response.text().await?.contains(&format!("POST {ROUTE}")))
    }

    async fn log(&self, trace_id: &str) -> anyhow::Result<bool> {
        let url = format!("{}/select/logsql/query", self.logs);
        let body = self
            .http
            .get(&url)
            .query(&[("query", format!("trace_id:=\"{trace_id}\""))])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?
            .text()
            .await?;
        Ok(body.lines().any(|line| !line.trim().is_empty()))
    }

    /// The route's request count as Prometheus has it, `None` before the first scrape.
    async fn counter(&self) -> anyhow::Result<Option<f64>> {
        let url = format!("{}/api/v1/query", self.prometheus);
        let query = format!(
            "sum(axum_http_requests_total{{endpoint=\"{ROUTE}\"}}) or (up{{job=\"api\"}} == 1) * 0"
        );
        let body: serde_json::Value = self
            .http
            .get(&url)
            .query(&[("query", query.as_str())])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}?query={query}"))?
            .json()
            .await?;
        Ok(body["data"]["result"]
            .as_array()
            .and_then(|result| result.first())
            .and_then(|sample| sample["value"][1].as_str()?.parse::<f64>().ok()))
    }
}

/// `global.scrape_interval` of the stack's Prometheus configuration.
fn scrape_interval() -> anyhow::Result<Duration> {
    let path = crate::util::project_root().join(PROMETHEUS_CONFIG);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {PROMETHEUS_CONFIG}"))?;
    let config: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parse {PROMETHEUS_CONFIG}"))?;
    let interval = config["global"]["scrape_interval"]
        .as_str()
        .unwrap_or("1m")
        .to_owned();
    let (number, unit) = interval.split_at(
        interval
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(interval.len()),
    );
    let number: u64 = number
        .parse()
        .with_context(|| format!("{PROMETHEUS_CONFIG}: scrape_interval {interval:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        _ => anyhow::bail!("{PROMETHEUS_CONFIG}: scrape_interval {interval:?}: use ms, s or m"),
    })
}

/// A compose service's `command:` as arguments.
fn command(file: &ComposeFile, service: &str) -> Vec<String> {
    match file
        .services
        .get(service)
        .and_then(|service| service.command.as_ref())
    {
        Some(serde_yaml::Value::Sequence(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        Some(serde_yaml::Value::String(text)) => {
            text.split_whitespace().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

fn value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(name, _)| name == key)
        .map_or_else(|| "default".to_owned(), |(_, value)| value.clone())
}
