//! Load: wrk for throughput and latency, requests one by one from this process for an exact
//! number (callgrind, enqueueing jobs), and the one measured api run tables 1 and 2 are made of.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::app::{self, LOAD_CPU, LogFile};
use super::ctx::{Ctx, Export, Service};

/// One route under load.
#[derive(Debug, Clone)]
pub struct Route {
    /// Short name for tables and file names (`trivial`, `postgres`).
    pub name: &'static str,
    pub method: &'static str,
    /// The path requested, e.g. `/api/repositories/42`.
    pub path: String,
    /// The route's template as the api names its span and metric label.
    pub template: &'static str,
    /// A JSON body, for POST.
    pub body: Option<&'static str>,
}

impl Route {
    /// `POST /api/vitals` (a web-vitals beacon): metered, no database or queue, a handler of a
    /// few thousand instructions, so telemetry's own cost stands out.
    pub fn trivial() -> Self {
        Self {
            name: "trivial",
            method: "POST",
            path: "/api/vitals".into(),
            template: "/api/vitals",
            body: Some(r#"{"name":"LCP","value":1234.5,"rating":"good"}"#),
        }
    }

    /// The server span's name: method and route template.
    pub fn span_name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Wrk {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// What a paced run measured: requests started at a fixed rate whatever the answers' pace
/// (so a slow answer delays none of the next), latency from each one's start to its body's end.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Paced {
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// One measured run on a fresh api process.
#[derive(Debug, serde::Serialize)]
pub struct ApiRun {
    pub wrk: Wrk,
    /// The server's user + system CPU time over the measured wrk run, per request.
    pub cpu_us_per_request: f64,
    /// How busy the load core was (wrk, the sink): near 1.0 it, not the server, set req/s.
    pub load_cpu_share: f64,
    pub rss_start: u64,
    pub rss_end: u64,
    /// Requests between the two RSS readings.
    pub requests: u64,
    /// What the api wrote: its access lines are the server spans it made (`written.requests`).
    pub written: LogFile,
    /// Server spans of the route that the sink got, and other spans (the database's client
    /// spans on the PostgreSQL route).
    pub spans_received: u64,
    pub other_spans_received: u64,
    pub logs_received: u64,
    pub shutdown_s: f64,
}

/// A fresh api exporting to `export`: `warmup` of wrk, RSS, a measured wrk run with the
/// server's CPU time read from /proc around it, more wrk runs until `rss_requests` have passed
/// since the first RSS reading, RSS again, SIGTERM, and the counts of what was written and
/// received. The log is only counted: at tens of MB it is not kept.
pub async fn api_run(
    ctx: &Ctx,
    route: &Route,
    export: &Export,
    warmup: Duration,
    rss_requests: u64,
    log: &str,
) -> anyhow::Result<ApiRun> {
    let env = ctx.env(Service::Api, export);
    let log = ctx
        .logs
        .path()
        .join(format!("{log}-{}.log", export.label()));
    let app = ctx.start(Service::Api, env, log.clone()).await?;
    let (url, c, dir) = (app.base_url.clone(), ctx.plan.connections, &ctx.dir);
    wrk(&url, route, c, warmup, dir).await?;
    let rss_start = app::rss(&app)?;
    let (cpu_before, load_before) = (app::cpu(&app)?, app::load_cpu()?);
    let measured = wrk(&url, route, c, ctx.plan.duration, dir).await?;
    let (cpu, load) = (app::cpu(&app)? - cpu_before, app::load_cpu()? - load_before);
    let mut requests = measured.requests;
    while requests < rss_requests {
        requests += wrk(&url, route, c, ctx.plan.duration, dir).await?.requests;
    }
    let rss_end = app::rss(&app)?;
    let shutdown = app.stop(Duration::from_secs(15)).await?;
    let written = LogFile::read(&log, route.template)?;
    std::fs::remove_file(&log).with_context(|| format!("remove {}", log.display()))?;
    let received = export.received()?;
    let spans_received = received.spans_named(&route.span_name());
    Ok(ApiRun {
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / measured.requests as f64,
        load_cpu_share: load.as_secs_f64() / measured.seconds,
        wrk: measured,
        rss_start,
        rss_end,
        requests,
        written,
        spans_received,
        other_spans_received: received.total_spans() - spans_received,
        logs_received: received.total_logs(),
        shutdown_s: shutdown.as_secs_f64(),
    })
}

/// Runs wrk (one thread, `connections` keep-alive connections) against `route` for `duration`,
/// pinned to [`LOAD_CPU`]. Fails on any non-2xx answer or socket error: a benchmark of error
/// pages would measure the wrong thing.
pub async fn wrk(
    base_url: &str,
    route: &Route,
    connections: u32,
    duration: Duration,
    dir: &Path,
) -> anyhow::Result<Wrk> {
    let url = format!("{base_url}{}", route.path);
    let output = tokio::process::Command::new("taskset")
        .args(["-c", &LOAD_CPU.to_string(), "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("-s")
        .arg(script(route, dir)?)
        .arg(&url)
        .kill_on_drop(true)
        .output()
        .await
        .context("run wrk: is it installed (`apt-get install -y wrk`)?")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "wrk {url} failed ({}): {}{}",
        output.status,
        text.trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    summary(&text).with_context(|| format!("wrk {url}: unexpected output:\n{text}"))
}

/// What [`script`]'s `done` prints: wrk's own totals, latencies in microseconds, its error
/// counts.
#[derive(serde::Deserialize)]
struct Summary {
    requests: u64,
    duration_us: f64,
    p50_us: f64,
    p99_us: f64,
    errors: std::collections::BTreeMap<String, u64>,
}

/// The summary line among wrk's output.
fn summary(text: &str) -> anyhow::Result<Wrk> {
    let line = text
        .lines()
        .find(|line| line.starts_with('{'))
        .context("no summary line from the script's done()")?;
    let summary: Summary = serde_json::from_str(line)?;
    let errors: Vec<_> = summary.errors.iter().filter(|(_, n)| **n > 0).collect();
    anyhow::ensure!(
        errors.is_empty(),
        "errors {errors:?}: the route answered errors (status) or failed (connect, read, write, timeout); see the app's log"
    );
    let seconds = summary.duration_us / 1e6;
    Ok(Wrk {
        requests: summary.requests,
        seconds,
        rps: summary.requests as f64 / seconds,
        p50_us: summary.p50_us,
        p99_us: summary.p99_us,
    })
}

/// The wrk Lua script for `route`: its method and body, and a `done` that prints the summary
/// as one JSON line (`errors.status` counts answers over 399).
fn script(route: &Route, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut text = format!("wrk.method = {:?}\n", route.method);
    if let Some(body) = route.body {
        text.push_str(&format!(
            "wrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ));
    }
    text.push_str(
        r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#,
    );
    let path = dir.join(format!("{}.lua", route.name));
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Sends one `method` request per path, in order, from this process (on the load core) over one
/// keep-alive connection; fails at the first answer that is not 2xx.
pub async fn each<'a>(
    http: &reqwest::Client,
    base_url: &str,
    method: &str,
    body: Option<&'static str>,
    paths: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    for path in paths {
        send(http, &format!("{base_url}{path}"), method, body).await?;
    }
    Ok(())
}

/// One request, with a JSON `body` if given; fails unless the answer is 2xx.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    body: Option<&'static str>,
) -> anyhow::Result<reqwest::Response> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    request
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("{method} {url}"))
}

/// Starts `rate` requests a second to `route` for `duration`, each on its own task; fails if
/// any answer is not 2xx.
pub async fn paced(
    http: &reqwest::Client,
    base_url: &str,
    route: &Route,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Paced> {
    let url = format!("{base_url}{}", route.path);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut requests = tokio::task::JoinSet::new();
    let started = std::time::Instant::now();
    while started.elapsed() < duration {
        tick.tick().await;
        let (http, url, method, body) = (http.clone(), url.clone(), route.method, route.body);
        requests.spawn(async move {
            let at = std::time::Instant::now();
            send(&http, &url, method, body).await?.bytes().await?;
            anyhow::Ok(at.elapsed())
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = requests.join_next().await {
        latencies.push(done.context("a request task panicked")??.as_secs_f64() * 1e6);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let at = |share: f64| latencies[((latencies.len() - 1) as f64 * share).round() as usize];
    anyhow::ensure!(!latencies.is_empty(), "paced load {url}: no request sent");
    Ok(Paced {
        requests: latencies.len() as u64,
        rps: latencies.len() as f64 / seconds,
        p50_us: at(0.5),
        p99_us: at(0.99),
    })
}

/// Sends exactly `count` requests to `route`, as [`each`] does.
pub async fn exactly(ctx: &Ctx, base_url: &str, route: &Route, count: u64) -> anyhow::Result<()> {
    let paths = std::iter::repeat_n(route.path.as_str(), count as usize);
    each(&ctx.http, base_url, route.method, route.body, paths).await
}

#[cfg(test)]
mod tests {
    /// The script's summary line, among wrk's report, reads into totals and percentiles; any
    /// error count fails it.
    #[test]
    fn wrk_summary_parses() {
        let text = r#"Running 3s test @ http://127.0.0.1:8080/version
  1 threads and 16 connections
  150360 requests in 3.00s, 29.07MB read
Requests/sec:  50120.00
{"requests":150360,"duration_us":3000000,"p50_us":301,"p99_us":1030,"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0}}
"#;
        let wrk = super::summary(text).unwrap();
        assert_eq!(wrk.requests, 150_360);
        assert!((wrk.seconds - 3.0).abs() < 1e-9);
        assert!((wrk.rps - 50_120.0).abs() < 1e-9);
        assert!((wrk.p50_us - 301.0).abs() < 1e-9);
        assert!((wrk.p99_us - 1030.0).abs() < 1e-9);
        let failed = super::summary(&text.replace(r#""status":0"#, r#""status":3"#));
        assert!(failed.unwrap_err().to_string().contains(r#"("status", 3)"#));
        assert!(super::summary("Requests/sec:  50120.00").is_err());
    }
}
