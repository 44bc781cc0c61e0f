//! One run: the app against a [`Stack`], one poll driven through it, and the five checks.
//!
//! The run's own names keep runs apart when several share one stack (the negative tests do):
//! its job queue, its repository, its Prometheus label `e2e_run`, and the trace ids it follows.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use fake_github::{FakeGithub, Mode};
use serde_json::{Value, json};

use otel_testkit::checks::{Check, Checks};
use otel_testkit::process::Signal as UnixSignal;
use otel_testkit::{Span, SpanKind, Trace, eventually};

use super::apps::{self, App, Binaries, Service};
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
/// The collector's span-metrics histogram (connector `span_metrics`, unit s, default namespace)
/// as Prometheus names it; its buckets carry the exemplars.
const SPAN_DURATION_BUCKETS: &str = "traces_span_metrics_duration_seconds_bucket";
/// Grafana's Prometheus datasource: its exemplar link to the trace store names the exemplar
/// label that holds the trace id. The check reads the trace id by that name, so a link that
/// names the wrong label fails the e2e.
const DATASOURCES: &str = "observability/grafana/provisioning/datasources/datasources.yaml";

/// The apps' `service.name`s: the stores, and so the checks, tell their spans and logs apart by it.
const API_SERVICE: &str = ampel_api::SERVICE_NAME;
const WORKER_SERVICE: &str = ampel_worker::SERVICE_NAME;

/// The five checks of one run.
pub type Report = Checks<Signal>;

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

    // The "api not scraped" break: Prometheus is never told about this run's api.
    let mut targets = vec![("worker", worker_address)];
    if broken != Some(Signal::Metrics) {
        targets.push(("api", api_address));
    }
    stack
        .scrape(&targets, run)
        .await
        .context("point Prometheus at the apps")?;

    // The "not exported" breaks: both apps run with that signal's exporter switched off.
    let exporter_off = match broken {
        Some(Signal::Traces) => Some("OTEL_TRACES_EXPORTER"),
        Some(Signal::Logs) => Some("OTEL_LOGS_EXPORTER"),
        _ => None,
    };
    let queue = format!("ampel:e2e:{run}:{}", unique());
    let mut api_env = vec![(jobs::QUEUE_VAR, queue.clone())];
    api_env.extend(exporter_off.map(|key| (key, "none".to_owned())));
    let mut worker_env = api_env.clone();
    worker_env.extend([
        (ampel_worker::PROVIDER_BASE_URL_VAR, github.base_url()),
        (ampel_worker::PROVIDER_TOKEN_VAR, String::new()),
    ]);
    let mut api = apps::start_on(stack, binaries, Service::Api, api_address, run, &api_env).await?;
    let worker = apps::start_on(
        stack,
        binaries,
        Service::Worker,
        worker_address,
        run,
        &worker_env,
    )
    .await?;
    eprintln!(
        "[{run}] api on {api_address}, worker on {worker_address}; logs {} and {}",
        api.log.display(),
        worker.log.display()
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
    let requested = SystemTime::now();
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
            "the poll job did not finish: {}\n  the worker's {}",
            timed_out.last_seen,
            worker.log_tail()
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
    let checker = Checker { stack, run };
    // The dashboards' and rules' queries run before the flush stops the api, in unbroken runs.
    let metrics_then_flush = async {
        let metrics = checker.metrics(done).await;
        let panels = match broken {
            None => Some(
                super::panels::check(Signal::Panels, stack, super::panels::Run::Scenario, done)
                    .await,
            ),
            Some(_) => None,
        };
        let pull_the_plug = broken == Some(Signal::Flush);
        let flush = checker.flush(&mut api, &http, &pulls_url, pull_the_plug);
        (metrics, panels, flush.await)
    };
    let poll_trace = format!("trace {trace_id}");
    let ((metrics, panels, flush), traces, logs, exemplars) = tokio::join!(
        metrics_then_flush,
        checker.trace(Signal::Traces, &poll_trace, &trace_id, done, poll_chain),
        checker.logs(&trace_id, done),
        checker.exemplars(&trace_id, requested, done),
    );
    let flush = flush?;
    worker.stop(EXIT_DEADLINE).await?;
    Ok(Report {
        title: format!("e2e run {run}"),
        checks: [metrics, traces, logs, flush, exemplars]
            .into_iter()
            .chain(panels)
            .collect(),
    })
}

/// What every check of one run needs: the stack it asks, and the run's name for its messages.
#[derive(Clone, Copy)]
struct Checker<'a> {
    stack: &'a Stack,
    run: &'a str,
}

impl Checker<'_> {
    /// (a) Prometheus scraped both apps, and the poll request and the finished job were counted.
    async fn metrics(self, produced: Instant) -> Check<Signal> {
        let Self { stack, run } = self;
        // (what, job, metric, more label matchers)
        #[rustfmt::skip]
        let queries = [
            ("api is up", "api", "up", String::new()),
            ("worker is up", "worker", "up", String::new()),
            ("poll request counted", "api", "axum_http_requests_total",
                format!(r#",method="POST",endpoint="{POLL_ROUTE}",status="202""#)),
            ("job counted as success", "worker", "worker_jobs_total",
                r#",job_type="poll_repository",status="success""#.to_owned()),
        ];
        let outcome = eventually(&format!("[{run}] metrics"), produced, DEADLINE, || async {
            let mut missing = Vec::new();
            let mut found = Vec::new();
            for (what, job, metric, more) in &queries {
                let query = format!(r#"{metric}{{job="{job}",e2e_run="{run}"{more}}}"#);
                match stack.prometheus.sum(&query).await? {
                    // Fresh processes and a per-run label: every counter started at 0 in this run.
                    Some(value) if value >= 1.0 => {
                        found.push(format!("{what} ({query} = {value})"))
                    }
                    value => {
                        let value = value.map_or("no series".to_owned(), |v| v.to_string());
                        let mut seen = format!("{what}: {query} = {value}");
                        // A missing `up` is explained by the job's scrape target.
                        if *metric == "up" {
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
        Check {
            label: Signal::Metrics,
            backend: "prometheus".to_owned(),
            outcome,
        }
    }

    /// (b) and (d): the trace store holds `trace_id` and `inspect` accepts the trace (its `Ok`
    /// says what was found); `what` names the trace in what the check reports.
    async fn trace(
        self,
        signal: Signal,
        what: &str,
        trace_id: &str,
        produced: Instant,
        inspect: impl Fn(&Trace) -> anyhow::Result<String>,
    ) -> Check<Signal> {
        let Self { stack, run } = self;
        let label = format!("[{run}] {signal}");
        let outcome = eventually(&label, produced, DEADLINE, || async {
            let trace = stack.traces.trace(trace_id).await?;
            anyhow::ensure!(!trace.is_empty(), "{what} not found");
            let found = inspect(&trace).with_context(|| what.to_owned())?;
            Ok(format!("{what}: {found}"))
        })
        .await;
        Check {
            label: signal,
            backend: stack.trace_service.to_owned(),
            outcome,
        }
    }

    /// (c) A worker log record carries the poll's trace id and the worker's service name.
    async fn logs(self, trace_id: &str, produced: Instant) -> Check<Signal> {
        let Self { stack, run } = self;
        let outcome = eventually(&format!("[{run}] logs"), produced, DEADLINE, || async {
            let records = stack.logs.records(trace_id).await?;
            let worker = records
                .iter()
                .find(|record| record.service == WORKER_SERVICE && record.trace_id == trace_id)
                .with_context(|| {
                    let services: Vec<&str> = records.iter().map(|record| record.service.as_str()).collect();
                    format!("no {WORKER_SERVICE} record with trace_id {trace_id}; {} records with it, from {services:?}", records.len())
                })?;
            Ok(format!("{} records with trace_id {trace_id}, e.g. {WORKER_SERVICE}: {:?}", records.len(), worker.body))
        })
        .await;
        Check {
            label: Signal::Logs,
            backend: stack.log_service.to_owned(),
            outcome,
        }
    }

    /// (e) From the latency histogram to the trace, as Grafana's exemplar link goes: an exemplar
    /// of the api's poll-request spans (since `requested`) carries a trace id under the label
    /// the datasource names, and the trace store holds that trace. The poll's own trace is
    /// tried first; runs side by side share the series, whose exemplars are a sample of them.
    async fn exemplars(
        self,
        trace_id: &str,
        requested: SystemTime,
        produced: Instant,
    ) -> Check<Signal> {
        let Self { stack, run } = self;
        let query = format!(
            r#"{SPAN_DURATION_BUCKETS}{{service_name="{API_SERVICE}",span_name="POST {POLL_ROUTE}"}}"#
        );
        let start = seconds(requested) - 1.0;
        let outcome = eventually(&format!("[{run}] exemplars"), produced, DEADLINE, || async {
            let label = exemplar_trace_id_label()?;
            let series = stack
                .prometheus
                .query_exemplars(&query, start, seconds(SystemTime::now()))
                .await?;
            let mut ids: Vec<&str> = series
                .iter()
                .flat_map(|series| &series.exemplars)
                .filter_map(|exemplar| exemplar.labels.get(&label).map(String::as_str))
                .collect();
            ids.sort_by_key(|id| *id != trace_id);
            ids.dedup();
            anyhow::ensure!(
                !ids.is_empty(),
                "no exemplar of {query} has a {label}; {} series",
                series.len()
            );
            for id in &ids {
                let trace = stack.traces.trace(id).await?;
                if !trace.is_empty() {
                    let whose = if *id == trace_id { "the poll's" } else { "another run's" };
                    return Ok(format!(
                        "exemplar {label}={id} ({whose}) of {SPAN_DURATION_BUCKETS}: its trace has {} spans",
                        trace.spans.len()
                    ));
                }
            }
            anyhow::bail!(
                "the exemplars of {query} carry {label} {ids:?}, but the trace store has none of those traces"
            )
        })
        .await;
        Check {
            label: Signal::Exemplars,
            backend: format!("prometheus, {}", stack.trace_service),
            outcome,
        }
    }

    /// (d) One more request, then the api is stopped at once; that request's trace still arrives.
    /// The signal follows the response within a millisecond or two, well inside the exporter's
    /// 500 ms batch delay, so it is the flush on shutdown that delivers the span. With
    /// `pull_the_plug` the api gets SIGKILL instead, which loses it.
    async fn flush(
        self,
        api: &mut App,
        http: &reqwest::Client,
        pulls_url: &str,
        pull_the_plug: bool,
    ) -> anyhow::Result<Check<Signal>> {
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
        let run = self.run;
        eprintln!("[{run}] api stopped with {name} ({exit}); waiting for trace {trace_id}");
        let span_name = format!("GET {PULL_REQUESTS_ROUTE}");
        let what = format!("trace {trace_id} after {name} ({exit})");
        let server_span = |trace: &Trace| {
            let server = trace
                .find(API_SERVICE, SpanKind::Server, &span_name)
                .with_context(|| format!("no {API_SERVICE} server span {span_name:?}; {trace}"))?;
            Ok(format!("{:?} arrived", server.name))
        };
        let flushed = self.trace(Signal::Flush, &what, &trace_id, produced, server_span);
        Ok(flushed.await)
    }
}

/// (b) The trace holds the api's server span of the poll request, the worker's job span below
/// it, and the worker's outbound HTTP client span below that, from both services: that chain,
/// or what is missing.
pub(super) fn poll_chain(trace: &Trace) -> anyhow::Result<String> {
    let poll_span = format!("POST {POLL_ROUTE}");
    let server = trace
        .find(API_SERVICE, SpanKind::Server, &poll_span)
        .with_context(|| format!("no {API_SERVICE} server span {poll_span:?}; {trace}"))?;
    let job = trace
        .spans
        .iter()
        .find(|span| {
            span.service == WORKER_SERVICE && span.name == "task" && trace.descends_from(span, server)
        })
        .with_context(|| {
            format!(
                "no {WORKER_SERVICE} job span \"task\" whose parent chain leads to the api span; {trace}"
            )
        })?;
    let client = trace
        .spans
        .iter()
        .find(|span| {
            span.service == WORKER_SERVICE && is_http_client(span) && trace.descends_from(span, job)
        })
        .with_context(|| {
            format!("no {WORKER_SERVICE} HTTP client span below the job span; {trace}")
        })?;
    Ok(format!(
        "{API_SERVICE} {:?} <- {WORKER_SERVICE} {:?} <- {WORKER_SERVICE} client {:?} ({} spans)",
        server.name,
        job.name,
        client.name,
        trace.spans.len()
    ))
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

/// The exemplar label Grafana's Prometheus datasource reads the trace id from (its
/// `exemplarTraceIdDestinations`).
fn exemplar_trace_id_label() -> anyhow::Result<String> {
    let path = xtask::util::project_root().join(DATASOURCES);
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {DATASOURCES}"))?;
    trace_id_label(&text).with_context(|| format!("read {DATASOURCES}"))
}

/// The name of the first exemplar destination of the Prometheus datasource in `datasources`.
fn trace_id_label(datasources: &str) -> anyhow::Result<String> {
    let file: serde_yaml::Value = serde_yaml::from_str(datasources)?;
    file["datasources"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|source| source["type"].as_str() == Some("prometheus"))
        .find_map(|source| {
            source["jsonData"]["exemplarTraceIdDestinations"][0]["name"]
                .as_str()
                .map(str::to_owned)
        })
        .context("no prometheus datasource with jsonData.exemplarTraceIdDestinations[0].name: add one naming the exemplars' trace id label")
}

/// Seconds since the epoch, as Prometheus' API takes them.
fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or_default()
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

    /// A poll's trace as the app writes it: server span, enqueue, job, poll_repository, HTTP
    /// call and a database call.
    fn trace() -> Trace {
        #[rustfmt::skip]
        let spans = [
            ("a1", None, API_SERVICE, SpanKind::Server, "POST /api/repositories/{id}/poll"),
            ("a2", Some("a1"), API_SERVICE, SpanKind::Internal, "enqueue"),
            ("w1", Some("a2"), WORKER_SERVICE, SpanKind::Internal, "task"),
            ("w2", Some("w1"), WORKER_SERVICE, SpanKind::Internal, "poll_repository"),
            ("w3", Some("w2"), WORKER_SERVICE, SpanKind::Client, "GET"),
            ("w4", Some("w2"), WORKER_SERVICE, SpanKind::Client, "upsert_pull_request"),
        ];
        let spans = spans.map(|(id, parent, service, kind, name)| Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.map(str::to_owned),
            name: name.to_owned(),
            kind,
            service: service.to_owned(),
            attributes: Default::default(),
        });
        Trace {
            spans: spans.into(),
        }
    }

    /// The exemplar label comes from Grafana's datasource file; a file without the link fails
    /// and says what to add.
    #[test]
    fn the_exemplar_label_is_the_datasources() {
        assert_eq!(exemplar_trace_id_label().unwrap(), "trace_id");
        let unlinked =
            "datasources:\n  - name: Prometheus\n    type: prometheus\n    jsonData: {}\n";
        let error = format!("{:#}", trace_id_label(unlinked).unwrap_err());
        assert!(error.contains("exemplarTraceIdDestinations"), "{error}");
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
        assert!(error(without("a1")).contains(&format!("no {API_SERVICE} server span")));
        // The job span is there but its parent is lost: the context did not travel with the job.
        assert!(error(without("a2")).contains(&format!("no {WORKER_SERVICE} job span")));
        // A database call is a client span too, but not the HTTP call the check asks for.
        assert!(error(without("w3")).contains(&format!("no {WORKER_SERVICE} HTTP client span")));
    }
}
