//! A collector outage under steady load loses nothing, and does not lengthen shutdown.
//!
//! The test binary is both sides (`harness = false`): run plainly, it starts a counting OTLP
//! sink and runs itself again as the exporting process, with [`CHILD`] set and the sink as its
//! endpoint. The child sends a steady stream of request-like traces (a server span with two
//! query spans, one log line in each) through `telemetry::init` until SIGTERM. Its JSON log lines
//! on stdout name every span it made: those are the ids the sink must receive.
//!
//! 1. Outage: the sink refuses (503) for [`OUTAGE`] in the middle of the stream, then accepts;
//!    after SIGTERM every span id and log record sent must have arrived.
//! 2. Shutdown during an outage: SIGTERM while the sink refuses; the exit must come within
//!    `telemetry::FLUSH_TIMEOUT` and a margin, however long the exporter would keep retrying.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ampel_telemetry as telemetry;
use anyhow::Context as _;
use otel_testkit::process::{self, Process};
use otel_testkit::sink::Sink;

/// Set in the child's environment: run as the exporting process.
const CHILD: &str = "TELEMETRY_OUTAGE_TEST_CHILD";
/// The stack's load: requests per second, each a server span and two query spans.
const REQUESTS_PER_SECOND: u64 = 80;
/// How long the sink refuses: a collector restart and then some.
const OUTAGE: Duration = Duration::from_secs(10);
/// Steady load before the outage and after it, before SIGTERM.
const AROUND: Duration = Duration::from_secs(3);
/// How long a sent item may take to arrive once the sink accepts again.
const ARRIVAL: Duration = Duration::from_secs(10);
/// SIGTERM to exit: the flush bound plus the process's own start-up and exit.
const EXIT_MARGIN: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    if std::env::var_os(CHILD).is_some() {
        return runtime.block_on(child());
    }
    runtime.block_on(parent())
}

/// The exporting process: steady requests until SIGTERM, then the telemetry guard's flush.
async fn child() -> anyhow::Result<()> {
    let guard = telemetry::init("outage-test", &[telemetry::METRIC_FAMILIES])?;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / REQUESTS_PER_SECOND as u32);
    let load = async {
        loop {
            tick.tick().await;
            let request = tracing::info_span!(
                "request",
                otel.name = "GET /items/{id}",
                otel.kind = "server"
            );
            let _entered = request.enter();
            for query in ["select item", "select owner"] {
                let span = tracing::info_span!("db.query", otel.name = query, otel.kind = "client");
                let _entered = span.enter();
                tracing::info!("query done");
            }
            tracing::info!("request finished");
        }
    };
    tokio::select! {
        () = load => {}
        () = telemetry::shutdown_signal() => {}
    }
    guard.shutdown();
    Ok(())
}

async fn parent() -> anyhow::Result<()> {
    let outage = outage().await.context("outage under load")?;
    let shutdown = shutdown_while_refused()
        .await
        .context("shutdown while the collector refuses")?;
    println!("{outage}\n{shutdown}");
    Ok(())
}

/// Steady load, [`OUTAGE`] of refusals, steady load, SIGTERM; then every span and log record the
/// child logged must reach the sink.
async fn outage() -> anyhow::Result<String> {
    let (sink, child) = Child::exporting().await?;
    tokio::time::sleep(AROUND).await;
    sink.refuse(true);
    tokio::time::sleep(OUTAGE).await;
    sink.refuse(false);
    tokio::time::sleep(AROUND).await;
    let (_, log) = child.stop().await?;
    let Sent {
        span_ids: sent,
        dropped_spans,
        dropped_logs,
    } = sent(&log)?;
    anyhow::ensure!(!sent.is_empty(), "the child logged no spans");

    let received = sink
        .until("every span and log record sent", ARRIVAL, |received| {
            let spans = received.spans_by_id();
            let logs = log_ids(&received.log_ids);
            sent.iter()
                .all(|id| spans.contains_key(id) && logs.contains_key(id))
        })
        .await;
    let received = match received {
        Ok(received) => received,
        Err(_) => sink.received()?,
    };
    let spans = received.spans_by_id();
    let logs = log_ids(&received.log_ids);
    let lost_spans = sent.iter().filter(|id| !spans.contains_key(*id)).count();
    let lost_logs = sent.iter().filter(|id| !logs.contains_key(*id)).count();
    let report = format!(
        "outage of {}s at {REQUESTS_PER_SECOND} requests/s: sent {} spans and {} log records; received {} and {} of them ({} export requests refused; the SDK reported {dropped_spans} spans and {dropped_logs} log records dropped from full queues)",
        OUTAGE.as_secs(),
        sent.len(),
        sent.len(),
        sent.len() - lost_spans,
        sent.len() - lost_logs,
        received.refused,
    );
    anyhow::ensure!(
        lost_spans == 0 && lost_logs == 0,
        "{report}: {lost_spans} spans and {lost_logs} log records lost; see the export settings in crates/telemetry/src/otlp.rs"
    );
    anyhow::ensure!(
        received.refused > 0,
        "{report}: the sink refused nothing, so there was no outage to survive"
    );
    Ok(report)
}

/// SIGTERM while every export is refused: the retries must not hold the exit.
async fn shutdown_while_refused() -> anyhow::Result<String> {
    let (sink, child) = Child::exporting().await?;
    sink.refuse(true);
    // Long enough for an export to be refused and the exporter to be retrying it.
    sink.until("a refused export", ARRIVAL, |received| received.refused > 0)
        .await?;
    let (took, _) = child.stop().await?;
    let bound = telemetry::FLUSH_TIMEOUT + EXIT_MARGIN;
    anyhow::ensure!(
        took <= bound,
        "SIGTERM to exit took {took:?} while the collector refused, more than {bound:?}: the exporter's retries hold the shutdown"
    );
    Ok(format!(
        "SIGTERM to exit while the collector refuses: {:.1}s (bound {}s)",
        took.as_secs_f64(),
        bound.as_secs()
    ))
}

/// Occurrences of each span id (hex) among log records.
fn log_ids(ids: &[otel_testkit::sink::Ids]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id.span_id_hex()).or_default() += 1;
    }
    counts
}

/// This test binary, run as the exporting process, its output in a log file.
struct Child(Process);

impl Child {
    /// A fresh sink, and a child exporting to it whose first spans have arrived.
    async fn exporting() -> anyhow::Result<(Sink, Self)> {
        let sink = Sink::start().await?;
        let child = Self::spawn(&sink)?;
        sink.until("the first spans", ARRIVAL, |received| {
            received.total_spans() > 0
        })
        .await?;
        Ok((sink, child))
    }

    fn spawn(sink: &Sink) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        process::scrub(&mut command, &["OTEL_", "RUST_LOG", "AMPEL_"]);
        command
            .env(CHILD, "1")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", sink.base_url())
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "500")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "500");
        let log = tempfile::Builder::new()
            .prefix("outage-child-")
            .suffix(".log")
            .tempfile_in(env!("CARGO_TARGET_TMPDIR"))?
            .into_temp_path()
            .keep()?;
        // It serves nothing: the address only names it.
        let address = process::free_port([127, 0, 0, 1].into())?;
        let process = Process::spawn(
            "the exporting child",
            command,
            "run the test binary as the child",
            address,
            log,
        )?;
        Ok(Self(process))
    }

    /// SIGTERM, and the time to a successful exit.
    async fn stop(self) -> anyhow::Result<(Duration, PathBuf)> {
        let log = self.0.log.clone();
        let took = self.0.stop(Duration::from_secs(30)).await?;
        Ok((took, log))
    }
}

/// What the child's JSON log lines say it sent, and what the SDK reported it dropped.
struct Sent {
    /// The span id of every line logged inside a span: one per span, and one log record each.
    span_ids: Vec<String>,
    /// The SDK's counts of items dropped from full queues, logged at shutdown.
    dropped_spans: u64,
    dropped_logs: u64,
}

fn sent(log: &Path) -> anyhow::Result<Sent> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    let mut sent = Sent {
        span_ids: Vec::new(),
        dropped_spans: 0,
        dropped_logs: 0,
    };
    // Other lines are the flush report on stderr.
    for line in text.lines().filter(|line| line.starts_with('{')) {
        let line: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("a JSON log line: {line}"))?;
        if let Some(id) = line["span_id"].as_str() {
            sent.span_ids.push(id.to_owned());
        }
        sent.dropped_spans += line["dropped_span_count"].as_u64().unwrap_or(0);
        sent.dropped_logs += line["dropped_logs_count"].as_u64().unwrap_or(0);
    }
    Ok(sent)
}
