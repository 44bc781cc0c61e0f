//! `cargo xtask e2e --no-loss`: nothing the api answered is lost while a part of the pipeline
//! restarts. The api runs under steady load, each request with its own W3C `traceparent`, so
//! every trace id is known; meanwhile a part is stopped for a measured outage and started again.
//! Then every request's server span and access log record is looked up by its trace id in the
//! trace and log stores, through the kit's `TraceStore` / `LogStore` clients.
//!
//! - collector: the collector is stopped; the apps' exporters must hold and retry.
//! - stores: the trace and log stores are stopped behind a running collector; its queue and
//!   retries must hold.
//! - collector-kill: with the stores stopped, the collector is SIGKILLed and started again; what
//!   it had accepted must still arrive from its queue on disk.
//!
//! A store that keeps its data in memory (no volume in compose/) forgets what it had when it
//! stops; for it only the requests sent after it stopped are counted.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use otel_testkit::{SpanKind, eventually};
use tokio::sync::watch;

use super::apps::{self, App, Binaries, Service};
use xtask::compose::COLLECTOR;

use super::stack::Stack;

/// The load: requests per second, and how many in all.
pub(crate) const RATE: u32 = 80;
const REQUESTS: usize = 1600;
/// The outage starts once this many requests were answered...
const OUTAGE_AFTER: usize = 400;
/// ...and ends when this many more were answered or [`OUTAGE`] passed, whichever is first.
const OUTAGE_REQUESTS: usize = 800;
const OUTAGE: Duration = Duration::from_secs(10);
/// How much of the collector's log a failed case keeps: all of a run's, short of a flood of
/// retry lines.
const COLLECTOR_LOG_LINES: usize = 20_000;
/// How long a stopped container may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the api may take to drain and flush on SIGTERM.
const EXIT_DEADLINE: Duration = Duration::from_secs(40);
/// How long the signals may take to arrive after the api exited: the collector's retries back
/// off up to 5 s, the apps' exporters retry for up to their export timeout.
const ARRIVAL_DEADLINE: Duration = Duration::from_secs(30);
/// Trace ids looked up at once.
const LOOKUPS: usize = 16;

/// One no-loss test: which parts go down during the outage.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// The collector is stopped (SIGTERM) and started again.
    Collector,
    /// The trace and log stores are stopped and started again.
    Stores,
    /// The stores are stopped; meanwhile the collector is SIGKILLed and started again.
    CollectorKill,
}

impl Case {
    const ALL: [Case; 3] = [Case::Collector, Case::Stores, Case::CollectorKill];

    fn name(self) -> &'static str {
        match self {
            Case::Collector => "collector",
            Case::Stores => "stores",
            Case::CollectorKill => "collector-kill",
        }
    }

    /// The compose services stopped for the whole outage.
    fn stopped(self, stack: &Stack) -> Vec<&'static str> {
        match self {
            Case::Collector => vec![COLLECTOR],
            Case::Stores | Case::CollectorKill => vec![stack.trace_service, stack.log_service],
        }
    }
}

/// What one signal of one test saw.
struct Count {
    signal: &'static str,
    store: &'static str,
    sent: usize,
    /// Sent but not found by the deadline (a few of them are shown).
    missing: Vec<String>,
    /// Why only part of the requests is counted, when it is.
    window: Option<String>,
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let received = self.sent - self.missing.len();
        write!(
            f,
            "{:<13} {:<12} sent {:>5}  received {:>5}",
            self.signal, self.store, self.sent, received
        )?;
        if let Some(window) = &self.window {
            write!(f, "  ({window})")?;
        }
        if !self.missing.is_empty() {
            let some: Vec<&str> = self.missing.iter().take(3).map(String::as_str).collect();
            write!(f, "  LOST, e.g. {}", some.join(" "))?;
        }
        Ok(())
    }
}

/// One test's outcome.
struct Outcome {
    case: Case,
    outage: Duration,
    counts: Vec<Count>,
    /// When something was lost: where the api's log and the collector's are, to find out why.
    logs: Option<String>,
}

impl Outcome {
    fn lost(&self) -> bool {
        self.counts.iter().any(|count| !count.missing.is_empty())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "no-loss {}: outage {:.1}s",
            self.case.name(),
            self.outage.as_secs_f64()
        )?;
        for count in &self.counts {
            writeln!(f, "  {count}")?;
        }
        if let Some(logs) = &self.logs {
            writeln!(f, "  {logs}")?;
        }
        Ok(())
    }
}

/// Runs every no-loss test on one stack; fails when one lost anything.
pub async fn run(flags: &xtask::flags::E2e) -> anyhow::Result<()> {
    let outcomes = run_cases(flags, &Case::ALL, &[]).await?;
    let lost: Vec<&str> = outcomes
        .iter()
        .filter(|outcome| outcome.lost())
        .map(|outcome| outcome.case.name())
        .collect();
    anyhow::ensure!(
        lost.is_empty(),
        "telemetry lost in no-loss {}: the lines above say how much, which trace ids, and where \
         the api's and the collector's logs are",
        lost.join(", ")
    );
    Ok(())
}

/// Builds the api, starts the stack, runs each of `cases` on it in turn and prints each
/// outcome. `api_env` is laid over compose's environment of the api.
async fn run_cases(
    flags: &xtask::flags::E2e,
    cases: &[Case],
    api_env: &[(&str, &str)],
) -> anyhow::Result<Vec<Outcome>> {
    let started = Instant::now();
    let binaries = apps::build(apps::Profile::Debug)?;
    let mut stack = Stack::start(flags.traces, flags.logs).await?;
    let mut outcomes = Vec::new();
    let mut failure = None;
    for &case in cases {
        let since = Instant::now();
        match one(&mut stack, &binaries, case, api_env).await {
            Ok(outcome) => {
                println!("{outcome}");
                let took = since.elapsed().as_secs_f64();
                eprintln!("no-loss {}: {took:.1}s", case.name());
                outcomes.push(outcome);
            }
            Err(err) => {
                failure = Some(err.context(format!("no-loss {}", case.name())));
                break;
            }
        }
    }
    stack.stop(flags.keep).await;
    eprintln!("no-loss wall time {:.1}s", started.elapsed().as_secs_f64());
    match failure {
        Some(err) => Err(err),
        None => Ok(outcomes),
    }
}

/// One test: a fresh api under load, the outage, SIGTERM, then the count. When it fails or loses
/// anything, the collector's log is kept next to the api's, and both are named.
async fn one(
    stack: &mut Stack,
    binaries: &Binaries,
    case: Case,
    api_env: &[(&str, &str)],
) -> anyhow::Result<Outcome> {
    let run = format!("no-loss-{}", case.name());
    let address = apps::free_port(stack.host_ip)?;
    let own: Vec<(&str, String)> = api_env
        .iter()
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect();
    let mut api = apps::start_on(stack, binaries, Service::Api, address, &run, &own).await?;
    let outcome = measure(stack, &mut api, case, &run).await;
    if outcome.as_ref().is_ok_and(|outcome| !outcome.lost()) {
        return outcome;
    }
    let collector_log = match keep_collector_log(stack, &api.log).await {
        Ok(path) => path.display().to_string(),
        Err(err) => format!("not kept ({err:#})"),
    };
    let logs = format!(
        "the api's log: {}; the collector's: {collector_log}",
        api.log.display()
    );
    let mut outcome = outcome.with_context(|| format!("[{run}] {logs}"))?;
    outcome.logs = Some(logs);
    Ok(outcome)
}

/// The collector container's log, written next to `api_log` as `<collector>.log`. The
/// container serves every case of the run, so its log holds the earlier cases too.
async fn keep_collector_log(stack: &mut Stack, api_log: &Path) -> anyhow::Result<PathBuf> {
    let path = api_log.with_file_name(format!("{COLLECTOR}.log"));
    let text = stack
        .container(COLLECTOR)?
        .logs_tail(COLLECTOR_LOG_LINES)
        .await;
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// The load, the outage, SIGTERM to `api`, then the count.
async fn measure(
    stack: &mut Stack,
    api: &mut App,
    case: Case,
    run: &str,
) -> anyhow::Result<Outcome> {
    let (answered_tx, answered) = watch::channel(0usize);
    let url = format!("{}{}", api.base_url, ampel_api::routes::HEALTH);
    let load = tokio::spawn(load(url, answered_tx));
    let outage = outage(stack, case, answered).await;
    let sent = load.await.context("the load loop panicked")??;
    let (since, outage) = outage?;
    api.signal(otel_testkit::process::Signal::TERM)?;
    let exit = api.exited(EXIT_DEADLINE).await?;
    eprintln!(
        "[{run}] {} requests answered, outage {:.1}s; api stopped ({exit}); counting",
        sent.len(),
        outage.as_secs_f64()
    );

    // A stopped store that keeps nothing on disk had forgotten what it held; count from the stop.
    let stopped = case.stopped(stack);
    let window = |store: &str| -> anyhow::Result<(Vec<String>, Option<String>)> {
        if stopped.contains(&store) && !stack.keeps_data(store)? {
            let ids = sent
                .iter()
                .filter(|(_, at)| *at >= since)
                .map(|(id, _)| id.clone())
                .collect();
            let why = format!("{store} keeps traces in memory: requests sent after it stopped");
            return Ok((ids, Some(why)));
        }
        Ok((sent.iter().map(|(id, _)| id.clone()).collect(), None))
    };
    let (span_ids, span_window) = window(stack.trace_service)?;
    let (log_ids, log_window) = window(stack.log_service)?;
    let traces = &stack.traces;
    let logs = &stack.logs;
    // `cargo xtask check` holds compose's OTEL_SERVICE_NAME to it.
    let service = ampel_api::SERVICE_NAME;
    let (spans_label, logs_label) = (
        format!("[{run}] server spans"),
        format!("[{run}] access logs"),
    );
    let (spans, records) = tokio::join!(
        missing(&spans_label, &span_ids, |id| async move {
            let trace = traces.trace(&id).await?;
            Ok(trace
                .spans
                .iter()
                .any(|span| span.service == service && span.kind == SpanKind::Server))
        }),
        missing(&logs_label, &log_ids, |id| async move {
            let records = logs.records(&id).await?;
            // The access line is the only record a probe request writes in its trace.
            Ok(records
                .iter()
                .any(|record| record.service == service && record.trace_id == id))
        }),
    );
    Ok(Outcome {
        case,
        outage,
        counts: vec![
            Count {
                signal: "server spans",
                store: stack.trace_service,
                sent: span_ids.len(),
                missing: spans,
                window: span_window,
            },
            Count {
                signal: "access logs",
                store: stack.log_service,
                sent: log_ids.len(),
                missing: records,
                window: log_window,
            },
        ],
        logs: None,
    })
}

/// Sends [`REQUESTS`] requests at [`RATE`] per second, each with a fresh sampled
/// `traceparent`, counting the answered ones in `answered`; returns each answered request's
/// trace id and when it was sent. A request without an answer made no telemetry to count.
async fn load(
    url: String,
    answered: watch::Sender<usize>,
) -> anyhow::Result<Vec<(String, Instant)>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    let mut requests = tokio::task::JoinSet::new();
    // This load's own prefix (the clock) and the request's number: unique across runs and
    // stores that are not emptied between them.
    let prefix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("read the clock")?
        .as_nanos() as u64;
    for number in 1..=REQUESTS as u64 {
        tick.tick().await;
        let (trace_id, span_id) = (format!("{prefix:016x}{number:016x}"), number);
        let request = http
            .get(&url)
            .header("traceparent", format!("00-{trace_id}-{span_id:016x}-01"));
        let answered = answered.clone();
        requests.spawn(async move {
            let at = Instant::now();
            let response = request.send().await.ok()?;
            response.status().is_success().then_some(())?;
            answered.send_modify(|count| *count += 1);
            Some((trace_id, at))
        });
    }
    let mut sent = Vec::new();
    while let Some(done) = requests.join_next().await {
        sent.extend(done.context("a request task panicked")?);
    }
    Ok(sent)
}

/// The outage of `case`, once [`OUTAGE_AFTER`] requests were answered: stops its parts, waits
/// until [`OUTAGE_REQUESTS`] more were answered or [`OUTAGE`] passed, starts them again and
/// waits until they are ready. Returns when the parts were down (from then on nothing sent
/// could reach a store before its restart) and how long the outage lasted.
async fn outage(
    stack: &mut Stack,
    case: Case,
    mut answered: watch::Receiver<usize>,
) -> anyhow::Result<(Instant, Duration)> {
    let load_over = "the load ended before the outage: raise REQUESTS";
    answered
        .wait_for(|count| *count >= OUTAGE_AFTER)
        .await
        .context(load_over)?;
    let stopped = case.stopped(stack);
    for name in &stopped {
        stack.container(name)?.halt(STOP_GRACE).await?;
    }
    let since = Instant::now();
    let at_stop = *answered.borrow();
    eprintln!(
        "[{}] {} stopped after {at_stop} requests",
        case.name(),
        stopped.join(", ")
    );
    if matches!(case, Case::CollectorKill) {
        // Halfway through, while the collector holds what the stores did not take yet.
        wait_for_load(
            &mut answered,
            at_stop + OUTAGE_REQUESTS / 2,
            since + OUTAGE / 2,
        )
        .await;
        let collector = stack.container(COLLECTOR)?;
        collector.kill().await?;
        eprintln!("[{}] {COLLECTOR} killed; starting it again", case.name());
        collector.resume().await?;
    }
    wait_for_load(&mut answered, at_stop + OUTAGE_REQUESTS, since + OUTAGE).await;
    let outage = since.elapsed();
    for name in &stopped {
        stack.container(name)?.resume().await?;
    }
    eprintln!(
        "[{}] {} ready again after a {:.1}s outage",
        case.name(),
        stopped.join(", "),
        outage.as_secs_f64()
    );
    Ok((since, outage))
}

/// Until `count` requests were answered, the load ended, or `deadline` passed.
async fn wait_for_load(answered: &mut watch::Receiver<usize>, count: usize, deadline: Instant) {
    let enough = answered.wait_for(|answered| *answered >= count);
    let _ = tokio::time::timeout_at(deadline.into(), enough).await;
}

/// The trace ids of `ids` that `found` does not find by [`ARRIVAL_DEADLINE`]; each round asks
/// again only for those not found yet, [`LOOKUPS`] at a time.
async fn missing<F, Fut>(what: &str, ids: &[String], found: F) -> Vec<String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let missing = std::sync::Mutex::new(ids.iter().cloned().collect::<BTreeSet<String>>());
    let _ = eventually(what, Instant::now(), ARRIVAL_DEADLINE, || async {
        let ask: Vec<String> = missing
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        let results: Vec<(String, anyhow::Result<bool>)> = futures::stream::iter(ask)
            .map(|id| async { (id.clone(), found(id).await) })
            .buffer_unordered(LOOKUPS)
            .collect()
            .await;
        let mut errors = Vec::new();
        let mut left = missing.lock().expect("not poisoned");
        for (id, result) in results {
            match result {
                Ok(true) => {
                    left.remove(&id);
                }
                Ok(false) => {}
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        anyhow::ensure!(
            left.is_empty(),
            "{} of {} not found yet{}",
            left.len(),
            ids.len(),
            errors
                .first()
                .map_or(String::new(), |err| format!("; e.g. {err}"))
        );
        Ok(())
    })
    .await;
    missing
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use otel_testkit::container;
    use xtask::flags;

    use super::*;

    /// The apps' exporters as the SDK has them without this project's settings: each batch
    /// given up after about a second, the SDK's queue sizes.
    const RETRIES_OFF: [(&str, &str); 3] = [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2048"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "2048"),
    ];

    /// The collector test can fail: with the apps' export retries cut short, a collector outage
    /// loses both server spans and access log records, and the count says so. Without an
    /// engine or an image it is skipped, and under `CI=true` it fails.
    #[test]
    fn a_collector_outage_loses_without_retries() {
        let flags::Command::E2e(flags) =
            flags::Xtask::parse_from(["xtask", "e2e", "--no-loss"]).command
        else {
            unreachable!("parsed the e2e command");
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let outcomes = runtime.block_on(async {
            let images = Stack::images(flags.traces, flags.logs).unwrap();
            let images: Vec<&str> = images.iter().map(String::as_str).collect();
            let test = "a_collector_outage_loses_without_retries (local images: \
                        `source .ci/images.env`; AMPEL_E2E_TRACES / AMPEL_E2E_LOGS pick the backends)";
            container::require_engine(test, &images).await?;
            Some(run_cases(&flags, &[Case::Collector], &RETRIES_OFF).await.unwrap())
        });
        let Some(outcomes) = outcomes else { return };
        for count in &outcomes[0].counts {
            assert!(
                !count.missing.is_empty(),
                "nothing lost without retries: {count}"
            );
            assert!(count.to_string().contains("LOST, e.g."), "{count}");
        }
    }
}
