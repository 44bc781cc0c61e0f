//! One run: the app against a [`Stack`], one poll driven through it, and the four checks.
//!
//! The run's own names keep runs apart when several share one stack (the negative tests do):
//! its job queue, its repository, its Prometheus label `e2e_run`, and the trace ids it follows.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use fake_github::{FakeGithub, Mode};
use rustix::process::Signal as UnixSignal;
use serde_json::{Value, json};

use otel_testkit::{Span, SpanKind, TimedOut, Trace, Visible, eventually};

use super::apps::{self, App, Binaries};
use super::stack::Stack;
use xtask::flags::Signal;

/// How long each check may take to see its signal. Prometheus needs a reload and one scrape
/// interval (5 s); the OTLP batch delay is 500 ms; the rest is slack for a loaded CI machine.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long the poll job may take, from the request to its pull requests being served.
const JOB_DEADLINE: Duration = Duration::from_secs(30);
/// The drain and the bounded flush take a few seconds at most (`telemetry::FLUSH_TIMEOUT`).
const EXIT_DEADLINE: Duration = Duration::from_secs(20);
/// The route templates the checks look for: metric `endpoint` labels and span names use them.
const POLL_ROUTE: &str = "/api/repositories/{id}/poll";
const PULL_REQUESTS_ROUTE: &str = "/api/repositories/{id}/pull-requests";

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Check {
    pub signal: Signal,
    pub backend: String,
    /// From the moment the signal was produced until the check first passed; `None` if it never did.
    pub time_to_visible: Option<Duration>,
    /// What was found (on success) or what was seen instead (on failure).
    pub detail: String,
}

/// All checks of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub run: String,
    pub checks: Vec<Check>,
}

impl Report {
    /// The signals whose check failed.
    pub fn failed(&self) -> Vec<Signal> {
        self.checks
            .iter()
            .filter(|check| check.time_to_visible.is_none())
            .map(|check| check.signal)
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "e2e run {}:", self.run)?;
        writeln!(f, "  signal   backend       found  time-to-visible")?;
        for check in &self.checks {
            let (found, time) = match check.time_to_visible {
                Some(time) => ("yes", format!("{:.1}s", time.as_secs_f64())),
                None => ("no", "-".to_owned()),
            };
            writeln!(
                f,
                "  {:<8} {:<13} {:<6} {}",
                signal_name(check.signal),
                check.backend,
                found,
                time
            )?;
        }
        for check in &self.checks {
            let verdict = if check.time_to_visible.is_some() {
                "found"
            } else {
                "FAILED"
            };
            writeln!(
                f,
                "  {} {verdict}: {}",
                signal_name(check.signal),
                check.detail
            )?;
        }
        Ok(())
    }
}

pub fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Metrics => "metrics",
        Signal::Traces => "traces",
        Signal::Logs => "logs",
        Signal::Flush => "flush",
    }
}

/// Runs the scenario once. `broken` switches one signal off (tests only): its check must fail.
/// An `Err` means the scenario itself could not run (an app did not start, the job never ran).
pub async fn run(
    stack: &Stack,
    binaries: &Binaries,
    run: &str,
    broken: Option<Signal>,
) -> anyhow::Result<Report> {
    let github = FakeGithub::start(Mode::Ok).await?;
    let api_address = apps::free_port(stack.host_ip)?;
    let worker_address = apps::free_port(stack.host_ip)?;
    let logs_dir = xtask::util::project_root().join("target/e2e").join(run);

    // The "api not scraped" break: Prometheus is never told about this run's api.
    let mut targets = vec![("worker", worker_address)];
    if broken != Some(Signal::Metrics) {
        targets.push(("api", api_address));
    }
    stack
        .scrape(&targets, run)
        .await
        .context("point Prometheus at the apps")?;

    let mut off = Vec::new();
    match broken {
        Some(Signal::Traces) => off.push(("OTEL_TRACES_EXPORTER".to_owned(), "none".to_owned())),
        Some(Signal::Logs) => off.push(("OTEL_LOGS_EXPORTER".to_owned(), "none".to_owned())),
        _ => {}
    }
    let queue = (
        "JOB_QUEUE".to_owned(),
        format!("ampel:e2e:{run}:{}", unique()),
    );
    let mut api_env = stack.app_env("api")?;
    api_env.extend([
        ("API_LISTEN_ADDR".to_owned(), api_address.to_string()),
        queue.clone(),
    ]);
    api_env.extend(off.iter().cloned());
    let mut worker_env = stack.app_env("worker")?;
    worker_env.extend([
        ("WORKER_LISTEN_ADDR".to_owned(), worker_address.to_string()),
        ("PROVIDER_BASE_URL".to_owned(), github.base_url()),
        ("PROVIDER_TOKEN".to_owned(), String::new()),
        queue,
    ]);
    worker_env.extend(off);

    let mut api = App::start(
        "api",
        &binaries.api,
        api_address,
        &api_env,
        logs_dir.join("api.log"),
    )?;
    let mut worker = App::start(
        "worker",
        &binaries.worker,
        worker_address,
        &worker_env,
        logs_dir.join("worker.log"),
    )?;
    api.ready("/ready").await?;
    worker.ready("/health").await?;
    eprintln!(
        "[{run}] api on {api_address}, worker on {worker_address}; logs in {}",
        logs_dir.display()
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let owner = format!("e2e-{run}-{}", unique());
    let repository: Value = send(
        http.post(format!("{}/api/repositories", api.base_url))
            .json(&json!({"owner": owner, "name": "ampel"})),
        201,
    )
    .await?;
    let id = repository["id"]
        .as_i64()
        .with_context(|| format!("no id in {repository}"))?;
    let produced = Instant::now();
    let poll: Value = send(
        http.post(format!("{}/api/repositories/{id}/poll", api.base_url)),
        202,
    )
    .await?;
    let trace_id = poll["trace_id"]
        .as_str()
        .with_context(|| format!("no trace_id in {poll}"))?
        .to_owned();
    eprintln!(
        "[{run}] poll job {} enqueued, trace {trace_id}",
        poll["job_id"]
    );

    let pulls_url = format!("{}/api/repositories/{id}/pull-requests", api.base_url);
    let job = eventually(
        &format!("[{run}] job done"),
        produced,
        JOB_DEADLINE,
        || async {
            let pulls: Value = send(http.get(&pulls_url), 200).await?;
            let titles: Vec<&str> = pulls
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|pull| pull["title"].as_str())
                .collect();
            anyhow::ensure!(
                titles.len() == 2
                    && titles
                        .iter()
                        .all(|title| title.starts_with(&format!("{owner}/ampel"))),
                "pull requests served: {titles:?}"
            );
            Ok(())
        },
    )
    .await
    .map_err(|timed_out| {
        anyhow::anyhow!(
            "the poll job did not finish: {}\n  worker log ({}) ends with:\n{}",
            timed_out.last_seen,
            worker.log.display(),
            apps::tail(&worker.log)
        )
    })?;
    eprintln!(
        "[{run}] job done {:.1}s after the request: pull requests served; checking the signals",
        job.after.as_secs_f64()
    );

    // Time-to-visible counts from here: every signal of the poll exists once the job is done.
    let done = Instant::now();
    // The flush check stops the api, so it waits for the metrics check (Prometheus must have
    // scraped the api first) but runs alongside the trace and log checks: a run then takes about
    // one deadline even when a check fails.
    let metrics_then_flush = async {
        let metrics = check_metrics(stack, run, done).await;
        let flush = check_flush(
            stack,
            run,
            &mut api,
            &http,
            &pulls_url,
            broken == Some(Signal::Flush),
        )
        .await;
        (metrics, flush)
    };
    let ((metrics, flush), traces, logs) = tokio::join!(
        metrics_then_flush,
        check_traces(stack, run, &trace_id, done),
        check_logs(stack, run, &trace_id, done),
    );
    let flush = flush?;

    worker.signal(UnixSignal::TERM)?;
    let worker_exit = worker.exited(EXIT_DEADLINE).await?;
    anyhow::ensure!(
        worker_exit.success(),
        "the worker exited with {worker_exit} after SIGTERM; see {}",
        worker.log.display()
    );
    Ok(Report {
        run: run.to_owned(),
        checks: vec![metrics, traces, logs, flush],
    })
}

/// (a) Prometheus scraped both apps, and the poll request and the finished job were counted.
async fn check_metrics(stack: &Stack, run: &str, produced: Instant) -> Check {
    let selector = |job: &str| format!(r#"job="{job}",e2e_run="{run}""#);
    let queries = [
        (
            format!("up{{{}}}", selector("api")),
            "api is up",
            Some("api"),
        ),
        (
            format!("up{{{}}}", selector("worker")),
            "worker is up",
            Some("worker"),
        ),
        (
            format!(
                r#"axum_http_requests_total{{{},method="POST",endpoint="{POLL_ROUTE}",status="202"}}"#,
                selector("api")
            ),
            "poll request counted",
            None,
        ),
        (
            format!(
                r#"worker_jobs_total{{{},job_type="poll_repository",status="success"}}"#,
                selector("worker")
            ),
            "job counted as success",
            None,
        ),
    ];
    let result = eventually(&format!("[{run}] metrics"), produced, DEADLINE, || async {
        let mut missing = Vec::new();
        let mut found = Vec::new();
        for (query, what, job) in &queries {
            match stack.prometheus.sum(query).await? {
                // Fresh processes and a per-run label: every counter started at 0 in this run.
                Some(value) if value >= 1.0 => found.push(format!("{what} ({query} = {value})")),
                value => {
                    let mut seen = format!(
                        "{what}: {query} = {}",
                        value.map_or("no series".to_owned(), |v| v.to_string())
                    );
                    if let Some(job) = job {
                        let targets = stack
                            .prometheus
                            .targets(&[("job", job), ("e2e_run", run)])
                            .await?;
                        let targets: Vec<String> =
                            targets.iter().map(ToString::to_string).collect();
                        let targets = if targets.is_empty() {
                            format!("no target of job {job:?} for this run is configured")
                        } else {
                            targets.join("; ")
                        };
                        seen.push_str(&format!(" [target: {targets}]"));
                    }
                    missing.push(seen);
                }
            }
        }
        anyhow::ensure!(missing.is_empty(), "{}", missing.join("; "));
        Ok(found.join("; "))
    })
    .await;
    check(Signal::Metrics, "prometheus", result)
}

/// (b) The trace holds the api's server span of the poll request, the worker's job span below
/// it, and the worker's outbound HTTP client span below that, from both services.
async fn check_traces(stack: &Stack, run: &str, trace_id: &str, produced: Instant) -> Check {
    let result = eventually(&format!("[{run}] traces"), produced, DEADLINE, || async {
        let trace = stack.traces.trace(trace_id).await?;
        anyhow::ensure!(!trace.is_empty(), "trace {trace_id} not found");
        poll_chain(&trace)
            .map(|chain| format!("trace {trace_id}: {chain}"))
            .with_context(|| format!("trace {trace_id}"))
    })
    .await;
    check(Signal::Traces, stack.trace_service, result)
}

/// The api span -> job span -> HTTP client span chain of a poll's trace, or what is missing.
fn poll_chain(trace: &Trace) -> anyhow::Result<String> {
    let poll_span = format!("POST {POLL_ROUTE}");
    let server = trace
        .find("ampel-api", SpanKind::Server, &poll_span)
        .with_context(|| format!("no ampel-api server span {poll_span:?}; {trace}"))?;
    let job = trace
        .spans
        .iter()
        .find(|span| {
            span.service == "ampel-worker" && span.name == "task" && trace.descends_from(span, server)
        })
        .with_context(|| {
            format!(
                "no ampel-worker job span \"task\" whose parent chain leads to the api span; {trace}"
            )
        })?;
    let client = trace
        .spans
        .iter()
        .find(|span| {
            span.service == "ampel-worker" && is_http_client(span) && trace.descends_from(span, job)
        })
        .with_context(|| format!("no ampel-worker HTTP client span below the job span; {trace}"))?;
    Ok(format!(
        "ampel-api {:?} <- ampel-worker {:?} <- ampel-worker client {:?} ({} spans)",
        server.name,
        job.name,
        client.name,
        trace.spans.len()
    ))
}

/// (c) A worker log record carries the poll's trace id and the worker's service name.
async fn check_logs(stack: &Stack, run: &str, trace_id: &str, produced: Instant) -> Check {
    let result = eventually(&format!("[{run}] logs"), produced, DEADLINE, || async {
        let records = stack.logs.records(trace_id).await?;
        let worker = records
            .iter()
            .find(|record| record.service == "ampel-worker" && record.trace_id == trace_id)
            .with_context(|| {
                let services: Vec<&str> = records.iter().map(|record| record.service.as_str()).collect();
                format!("no ampel-worker record with trace_id {trace_id}; {} records with it, from {services:?}", records.len())
            })?;
        Ok(format!("{} records with trace_id {trace_id}, e.g. ampel-worker: {:?}", records.len(), worker.body))
    })
    .await;
    check(Signal::Logs, stack.log_service, result)
}

/// (d) One more request, then the api is stopped at once; that request's trace still arrives.
/// The signal follows the response within a millisecond or two, well inside the exporter's
/// 500 ms batch delay, so it is the flush on shutdown that delivers the span. With
/// `pull_the_plug` the api gets SIGKILL instead, which loses it.
async fn check_flush(
    stack: &Stack,
    run: &str,
    api: &mut App,
    http: &reqwest::Client,
    pulls_url: &str,
    pull_the_plug: bool,
) -> anyhow::Result<Check> {
    let response = http
        .get(pulls_url)
        .send()
        .await
        .with_context(|| format!("GET {pulls_url}"))?;
    let (signal, name) = if pull_the_plug {
        (UnixSignal::KILL, "SIGKILL")
    } else {
        (UnixSignal::TERM, "SIGTERM")
    };
    api.signal(signal)?;
    let produced = Instant::now();
    // `traceparent: 00-<trace id>-<span id>-<flags>`, set by the api on every response.
    let trace_id = response
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split('-').nth(1))
        .map(str::to_owned)
        .with_context(|| format!("GET {pulls_url}: no traceparent header in the response"))?;
    let exit = api.exited(EXIT_DEADLINE).await?;
    eprintln!("[{run}] api stopped with {name} ({exit}); waiting for trace {trace_id}");
    let span_name = format!("GET {PULL_REQUESTS_ROUTE}");
    let result = eventually(&format!("[{run}] flush"), produced, DEADLINE, || async {
        let trace = stack.traces.trace(&trace_id).await?;
        let server = trace
            .find("ampel-api", SpanKind::Server, &span_name)
            .with_context(|| format!("no ampel-api server span {span_name:?} in trace {trace_id} after {name} ({exit}); {trace}"))?;
        Ok(format!("trace {trace_id} ({:?}) arrived after {name} ({exit})", server.name))
    })
    .await;
    Ok(check(Signal::Flush, stack.trace_service, result))
}

fn check(signal: Signal, backend: &str, result: Result<Visible<String>, TimedOut>) -> Check {
    let (time_to_visible, detail) = match result {
        Ok(found) => (Some(found.after), found.value),
        Err(timed_out) => (
            None,
            format!(
                "not seen within {}s; last seen: {}",
                DEADLINE.as_secs(),
                timed_out.last_seen
            ),
        ),
    };
    Check {
        signal,
        backend: backend.to_owned(),
        time_to_visible,
        detail,
    }
}

/// An outbound HTTP call's span: kind client, named by its method (reqwest-tracing's default).
/// The kind alone is not enough: database calls are client spans too.
fn is_http_client(span: &Span) -> bool {
    const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    span.kind == SpanKind::Client
        && span
            .name
            .split_whitespace()
            .next()
            .is_some_and(|method| METHODS.contains(&method))
}

/// Sends `request`, expects `status`, returns the JSON body.
async fn send(request: reqwest::RequestBuilder, status: u16) -> anyhow::Result<Value> {
    let response = request.send().await.context("send the request")?;
    let url = response.url().clone();
    let got = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        got.as_u16() == status,
        "{url}: expected {status}, got {got}: {body}"
    );
    serde_json::from_str(&body).with_context(|| format!("{url}: the body is not JSON: {body}"))
}

/// Milliseconds since the epoch: unique enough per run on one machine.
fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|time| time.as_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, service: &str, kind: SpanKind, name: &str) -> Span {
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.map(str::to_owned),
            name: name.to_owned(),
            kind,
            service: service.to_owned(),
            attributes: Default::default(),
        }
    }

    /// A poll's trace as the app writes it: server span, enqueue, job, poll_repository, HTTP
    /// call and a database call.
    fn trace() -> Trace {
        let spans = vec![
            span(
                "a1",
                None,
                "ampel-api",
                SpanKind::Server,
                "POST /api/repositories/{id}/poll",
            ),
            span("a2", Some("a1"), "ampel-api", SpanKind::Internal, "enqueue"),
            span("w1", Some("a2"), "ampel-worker", SpanKind::Internal, "task"),
            span(
                "w2",
                Some("w1"),
                "ampel-worker",
                SpanKind::Internal,
                "poll_repository",
            ),
            span("w3", Some("w2"), "ampel-worker", SpanKind::Client, "GET"),
            span(
                "w4",
                Some("w2"),
                "ampel-worker",
                SpanKind::Client,
                "upsert_pull_request",
            ),
        ];
        Trace { spans }
    }

    /// The whole chain passes.
    #[test]
    fn a_complete_chain_passes() {
        assert!(poll_chain(&trace()).is_ok());
    }

    /// Each link of the chain is needed: without it the check fails and says which is missing.
    #[test]
    fn each_missing_link_fails() {
        let without = |id: &str| Trace {
            spans: trace()
                .spans
                .into_iter()
                .filter(|span| span.span_id != id)
                .collect(),
        };
        let error = |trace: Trace| format!("{:#}", poll_chain(&trace).unwrap_err());
        assert!(error(without("a1")).contains("no ampel-api server span"));
        // The job span is there but its parent is lost: the context did not travel with the job.
        assert!(error(without("a2")).contains("no ampel-worker job span"));
        // A database call is a client span too, but not the HTTP call the check asks for.
        assert!(error(without("w3")).contains("no ampel-worker HTTP client span"));
    }
}
