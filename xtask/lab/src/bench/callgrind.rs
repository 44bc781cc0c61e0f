//! Instructions per request: the api under `valgrind --tool=callgrind`, a fixed number of
//! requests, one dump. Unlike wall-clock figures, these counts do not care what else the machine
//! is doing, so they are the ones to compare across commits.
//!
//! The process starts with instrumentation off (start-up, migrations and connection set-up are
//! not per-request costs); a warm-up fills the pools; then instrumentation goes on, exactly `N`
//! requests are sent one after the other, and with telemetry on the bench waits until the sink holds every
//! span and log record of those requests, so their export is inside the measurement; then one
//! dump. Instructions per request = the dump's total / N. `callgrind_annotate` of each dump is kept
//! beside it, for finding where the cost went.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use otel_testkit::sink::Sink;

use super::app::{self, App, LogFile};
use super::ctx::{Ctx, Export, Service};
use super::load::{Route, exactly};

/// Requests before instrumentation goes on: fills the database pool and every lazy static.
const WARMUP_REQUESTS: u64 = 200;
/// The export delay of spans and logs under callgrind (see `measure`).
const EXPORT_DELAY_MS: &str = "1000";
/// How long the export of the measured requests may take under valgrind.
const EXPORT_DEADLINE: Duration = Duration::from_secs(60);

/// One callgrind measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    pub requests: u64,
    pub instructions: u64,
    pub per_request: f64,
    /// `callgrind_annotate` of the dump (self cost per function), and the inclusive view.
    pub annotate: PathBuf,
    pub annotate_inclusive: PathBuf,
}

/// Runs the api exporting to `export` under callgrind and counts instructions per request on
/// `route`. With a live sink, waits for the requests' spans and logs to arrive there before the
/// dump.
pub async fn measure(
    ctx: &Ctx,
    label: &str,
    export: &Export,
    route: &Route,
) -> anyhow::Result<Profile> {
    let (dir, requests) = (ctx.dir.as_path(), ctx.plan.callgrind_requests);
    let out = dir.join(format!("callgrind-{label}"));
    for stale in [out.clone(), dump_path(&out)] {
        let _ = std::fs::remove_file(stale);
    }
    let mut env = ctx.env(Service::Api, export);
    // Under valgrind requests run ~50 times slower. With the stack's 500 ms export delay a
    // batch would hold a few dozen items, and the per-batch cost (one HTTP request) would be
    // spread over far fewer requests than at real load, where batches fill to 512 long before
    // the delay. At 1 s they hold hundreds, and that cost is well under 1% of the figure.
    env.retain(|(key, _)| !key.ends_with("_SCHEDULE_DELAY"));
    env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), EXPORT_DELAY_MS.into()));
    env.push(("OTEL_BLRP_SCHEDULE_DELAY".into(), EXPORT_DELAY_MS.into()));
    let wrapper = [
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        "--instr-atstart=no".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let log = dir.join(format!("callgrind-{label}.log"));
    let app = ctx
        .start_on(Service::Api, app::free_addr()?, &wrapper, env, log)
        .await?;
    exactly(ctx, &app.base_url, route, WARMUP_REQUESTS).await?;
    if let Some(sink) = export.sink() {
        // The warm-up's export must not land inside the measurement.
        exported(sink, &app, route, WARMUP_REQUESTS).await?;
    }
    control(&app, &["--instr=on"]).await?;
    exactly(ctx, &app.base_url, route, requests).await?;
    if let Some(sink) = export.sink() {
        exported(sink, &app, route, WARMUP_REQUESTS + requests).await?;
    }
    control(&app, &["--dump"]).await?;
    app.stop(Duration::from_secs(30)).await?;

    let dump = dump_path(&out);
    let text = std::fs::read_to_string(&dump)
        .with_context(|| format!("read the callgrind dump {}", dump.display()))?;
    let instructions = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .with_context(|| format!("{} has no totals line", dump.display()))?;
    let annotate = dir.join(format!("callgrind-{label}.self.txt"));
    let annotate_inclusive = dir.join(format!("callgrind-{label}.inclusive.txt"));
    annotate_to(&dump, &[], &annotate).await?;
    annotate_to(&dump, &["--inclusive=yes"], &annotate_inclusive).await?;
    Ok(Profile {
        requests,
        instructions,
        per_request: instructions as f64 / requests as f64,
        annotate,
        annotate_inclusive,
    })
}

/// The first dump requested with `callgrind_control --dump` gets the `.1` suffix.
fn dump_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Waits until the sink holds `spans` server spans of `route` and at least as many log records
/// as the api has written JSON lines so far: every item of the requests so far was exported.
async fn exported(sink: &Sink, app: &App, route: &Route, spans: u64) -> anyhow::Result<()> {
    let name = route.span_name();
    let log = app.log.display();
    let what = format!("{spans} {name:?} spans at the sink under valgrind (see {log})");
    sink.until(&what, EXPORT_DEADLINE, |received| {
        received.spans_named(&name) >= spans
    })
    .await?;
    let written = LogFile::read(&app.log, route.template)?.lines;
    let what = format!("{written} log records at the sink under valgrind (see {log})");
    sink.until(&what, EXPORT_DEADLINE, |received| {
        received.total_logs() >= written
    })
    .await?;
    Ok(())
}

async fn control(app: &App, args: &[&str]) -> anyhow::Result<()> {
    let pid = app.pid().to_string();
    valgrind_tool("callgrind_control", &[args, &[pid.as_str()]].concat()).await?;
    Ok(())
}

async fn annotate_to(dump: &Path, args: &[&str], out: &Path) -> anyhow::Result<()> {
    let dump = dump.to_string_lossy();
    let stdout = valgrind_tool("callgrind_annotate", &[args, &[dump.as_ref()]].concat()).await?;
    std::fs::write(out, stdout).with_context(|| format!("write {}", out.display()))
}

/// Runs one of valgrind's callgrind tools; its stdout, or an error with what it printed.
async fn valgrind_tool(program: &str, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| {
            format!("run {program} (part of valgrind: `apt-get install -y valgrind`)")
        })?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(output.stdout)
}
