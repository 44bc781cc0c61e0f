//! `cargo xtask e2e --browser`: the dashboard's page in a real browser, observed. The page
//! (`frontend/`, built here) is served by the api on the host; Debian's headless Chromium,
//! driven by `frontend/e2e/drive.mjs` (playwright-core), follows a repository, polls it, polls
//! one the provider does not have, leaves the page, and makes a component throw. Then the stores
//! must hold:
//!
//! - traces: one trace from the browser's `fetch` span through the api's server span (its child)
//!   to the worker's job and its provider call;
//! - vitals: the beacons of LCP, FCP and TTFB counted in `web_vitals_value`;
//! - errors: the page's error as a log record of `ampel-web` with `exception.type`, under its
//!   trace id, and the fallback on screen (screenshots under `target/e2e/<run>/`); the worker's
//!   error for the missing repository, with `exception.type`, in the trace of its poll;
//! - panels: every dashboard query that needs a browser (web vitals; the errors dashboard's
//!   LogQL when the logs are in Loki) finds data (`panels.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fake_github::{FakeGithub, Mode};
use otel_testkit::checks::{Check, Checks};
use otel_testkit::{SpanKind, Trace, eventually};
use serde::Deserialize;
use telemetry::EXCEPTION_TYPE;

use super::apps::{self, Binaries, Service};
use super::scenario::poll_chain;
use super::stack::Stack;

/// How long each store may take to show a signal after the browser is done.
const DEADLINE: Duration = Duration::from_secs(30);
/// The page's `service.name` (frontend/src/telemetry).
const WEB_SERVICE: &str = "ampel-web";
/// The vitals every page load reports (CLS and INP need a shift and an interaction).
const VITALS: [&str; 3] = ["LCP", "FCP", "TTFB"];
/// The error the page throws with `?e2e-crash=1` (frontend/src/App.tsx).
const CRASH_TYPE: &str = "E2eCrash";
/// The browser driver, relative to the workspace root.
const DRIVER: &str = "frontend/e2e/drive.mjs";
/// The repository the page follows that the provider does not have: its job fails.
const MISSING: &str = "gone";
/// The service whose jobs fail for [`MISSING`].
const WORKER_SERVICE: &str = ampel_worker::SERVICE_NAME;

/// A browser signal the run checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Vitals,
    Errors,
    Panels,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Traces => "traces",
            Signal::Vitals => "vitals",
            Signal::Errors => "errors",
            Signal::Panels => "panels",
        })
    }
}

/// What the driver can switch off, to show a check fails without its signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "only the negative test breaks a run")
)]
pub enum Break {
    /// The page's API calls lose their `traceparent`, as behind a server that does not allow it.
    Traceparent,
    /// The vitals beacons fail, as with a wrong beacon URL.
    Beacons,
    /// The provider has the repository that should be missing: no job fails.
    ServerError,
}

/// What the driver printed.
#[derive(Debug, Default, Deserialize)]
struct Seen {
    trace_id: Option<String>,
    /// The trace of the poll of [`MISSING`].
    missing_trace_id: Option<String>,
    error_trace_id: Option<String>,
    #[serde(default)]
    vitals: Vec<String>,
    #[serde(default)]
    screenshots: Vec<PathBuf>,
    #[serde(default)]
    fallback: bool,
    /// Whether the polled repository's pull requests were on screen for the screenshot.
    #[serde(default)]
    pull_requests_shown: bool,
    error: Option<String>,
    /// The api relay's answers to the page's OTLP exports.
    #[serde(default)]
    otlp: Vec<String>,
    /// Milliseconds from the driver's start to each step.
    #[serde(default)]
    steps: std::collections::BTreeMap<String, u64>,
    /// What the page showed when the driver gave up.
    page_text: Option<String>,
}

/// Runs the browser e2e on its own stack; fails when a check fails.
pub async fn run(flags: &xtask::flags::E2e) -> anyhow::Result<()> {
    let started = Instant::now();
    let binaries = apps::build(apps::Profile::Debug)?;
    let web = xtask::web::build()?;
    let stack = Stack::start(flags.traces, flags.logs).await?;
    let report = one(&stack, &binaries, &web, "browser", None).await;
    stack.stop(flags.keep).await;
    eprintln!("browser wall time {:.1}s", started.elapsed().as_secs_f64());
    let report = report?;
    println!("{report}");
    let failed: Vec<String> = report.failed().iter().map(ToString::to_string).collect();
    anyhow::ensure!(
        failed.is_empty(),
        "browser e2e failed: {} not seen; the table above says what was found instead",
        failed.join(", ")
    );
    Ok(())
}

/// One run: fresh apps on `stack`, the driver, the checks.
pub(super) async fn one(
    stack: &Stack,
    binaries: &Binaries,
    web: &Path,
    run: &str,
    broken: Option<Break>,
) -> anyhow::Result<Checks<Signal>> {
    let github = FakeGithub::start(Mode::Ok).await?;
    let owner = format!("e2e-{run}-{}", std::process::id());
    if broken != Some(Break::ServerError) {
        github.remove(&owner, MISSING);
    }
    let api_address = apps::free_port(stack.host_ip)?;
    let worker_address = apps::free_port(stack.host_ip)?;
    let dir = xtask::util::project_root().join("target/e2e").join(run);
    stack
        .scrape(&[("api", api_address), ("worker", worker_address)], run)
        .await?;
    let queue = (
        jobs::QUEUE_VAR,
        format!("ampel:e2e:{run}:{}", std::process::id()),
    );
    let api_env = [
        queue.clone(),
        (ampel_api::config::WEB_DIR_VAR, web.display().to_string()),
    ];
    let api = apps::start_on(stack, binaries, Service::Api, api_address, run, &api_env).await?;
    let worker_env = [
        queue,
        (ampel_worker::PROVIDER_BASE_URL_VAR, github.base_url()),
        (ampel_worker::PROVIDER_TOKEN_VAR, String::new()),
        // The missing repository's job fails at its first attempt, not after retries.
        (ampel_worker::MAX_ATTEMPTS_VAR, "1".to_owned()),
    ];
    let worker = apps::start_on(
        stack,
        binaries,
        Service::Worker,
        worker_address,
        run,
        &worker_env,
    )
    .await?;

    let driven = Instant::now();
    let seen = drive(&api.base_url, &dir, &owner, broken).await?;
    eprintln!(
        "[{run}] the browser is done in {:.1}s (ms to each step: {:?}); pull requests on screen: {}; the relay answered {:?}{}",
        driven.elapsed().as_secs_f64(),
        seen.steps,
        seen.pull_requests_shown,
        seen.otlp,
        seen.page_text
            .as_deref()
            .map_or(String::new(), |text| format!("; the page showed: {text:?}")),
    );
    let done = Instant::now();
    let checker = Checker { stack, run };
    // The dashboards' queries in unbroken runs only: a broken one has nothing to show them.
    let panels = async {
        match broken {
            None => Some(
                super::panels::check(Signal::Panels, stack, super::panels::Run::Browser, done)
                    .await,
            ),
            Some(_) => None,
        }
    };
    let (traces, vitals, errors, panels) = tokio::join!(
        checker.traces(seen.trace_id.as_deref(), done),
        checker.vitals(&seen, done),
        checker.errors(&seen, done),
        panels,
    );
    worker.stop(Duration::from_secs(20)).await?;
    api.stop(Duration::from_secs(20)).await?;
    Ok(Checks {
        title: format!("browser run {run}"),
        checks: [traces, vitals, errors].into_iter().chain(panels).collect(),
    })
}

/// Runs the driver against the page at `url` for repositories of `owner`; its screenshots go to
/// `dir`.
async fn drive(url: &str, dir: &Path, owner: &str, broken: Option<Break>) -> anyhow::Result<Seen> {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(xtask::util::project_root().join(DRIVER))
        .args(["--url", url, "--owner", owner, "--missing", MISSING])
        .arg("--out")
        .arg(dir)
        .kill_on_drop(true);
    command.args(match broken {
        Some(Break::Traceparent) => &["--strip-traceparent"][..],
        Some(Break::Beacons) => &["--block-beacons"][..],
        Some(Break::ServerError) | None => &[][..],
    });
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .context("the browser driver did not finish within 3 minutes")?
        .with_context(|| format!("run `node {DRIVER}`: is Node.js installed?"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "`node {DRIVER}` failed ({}): {}{}\n(chromium: install Debian's `chromium`, or set AMPEL_CHROMIUM; modules: `npm ci` in frontend/)",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .with_context(|| format!("the driver's last line is not its report: {last}"))
}

#[derive(Clone, Copy)]
struct Checker<'a> {
    stack: &'a Stack,
    run: &'a str,
}

impl Checker<'_> {
    /// The poll's trace: the browser's fetch span is the parent of the api's server span, and the
    /// job and its provider call are below.
    async fn traces(self, trace_id: Option<&str>, since: Instant) -> Check<Signal> {
        let Self { stack, run } = self;
        let outcome = eventually(
            &format!("[{run}] browser trace"),
            since,
            DEADLINE,
            || async {
                let trace_id = trace_id.context("the page showed no poll trace id")?;
                let trace = stack.traces.trace(trace_id).await?;
                anyhow::ensure!(!trace.is_empty(), "trace {trace_id} not found");
                let chain = poll_chain(&trace)?;
                let parent = browser_parent(&trace)?;
                Ok(format!(
                    "trace {trace_id}: {WEB_SERVICE} {parent:?} <- {chain}"
                ))
            },
        )
        .await;
        Check {
            label: Signal::Traces,
            backend: stack.trace_service.to_owned(),
            outcome,
        }
    }

    /// The beacons of [`VITALS`], counted for this run's api.
    async fn vitals(self, seen: &Seen, since: Instant) -> Check<Signal> {
        let Self { stack, run } = self;
        let outcome = eventually(&format!("[{run}] vitals"), since, DEADLINE, || async {
            let mut missing = Vec::new();
            let mut found = Vec::new();
            for name in VITALS {
                let query =
                    format!(r#"web_vitals_value_count{{job="api",e2e_run="{run}",name="{name}"}}"#);
                match stack.prometheus.sum(&query).await? {
                    Some(count) if count >= 1.0 => found.push(format!("{name} {count}")),
                    other => missing.push(format!("{query} = {other:?}")),
                }
            }
            anyhow::ensure!(
                missing.is_empty(),
                "{}; the page sent beacons for {:?}",
                missing.join("; "),
                seen.vitals
            );
            Ok(format!("counted: {}", found.join(", ")))
        })
        .await;
        Check {
            label: Signal::Vitals,
            backend: "prometheus".to_owned(),
            outcome,
        }
    }

    /// The page's error as a log record with `exception.type`, the fallback on screen, and the
    /// worker's error for [`MISSING`] with `exception.type` in the trace of its poll.
    async fn errors(self, seen: &Seen, since: Instant) -> Check<Signal> {
        let Self { stack, run } = self;
        let outcome = eventually(
            &format!("[{run}] browser error"),
            since,
            DEADLINE,
            || async {
                anyhow::ensure!(
                    seen.fallback,
                    "the fallback never showed: {}",
                    seen.error.as_deref().unwrap_or("no error from the driver")
                );
                let trace_id = seen
                    .error_trace_id
                    .as_deref()
                    .context("the page sent no log record with a trace id")?;
                let records = stack.logs.records(trace_id).await?;
                let record = records
                    .iter()
                    .find(|record| record.service == WEB_SERVICE)
                    .with_context(|| format!("no {WEB_SERVICE} record with trace_id {trace_id}"))?;
                let exception = record.attribute(EXCEPTION_TYPE);
                anyhow::ensure!(
                    exception == Some(CRASH_TYPE),
                    "the record has {EXCEPTION_TYPE} {exception:?}, not {CRASH_TYPE}: {record:?}"
                );
                let missing = seen
                    .missing_trace_id
                    .as_deref()
                    .with_context(|| format!("the page showed no trace id of the poll of {MISSING}"))?;
                let server = stack.logs.records(missing).await?;
                let failed = server
                    .iter()
                    .find(|record| record.service == WORKER_SERVICE && record.attribute(EXCEPTION_TYPE).is_some())
                    .with_context(|| {
                        format!(
                            "no {WORKER_SERVICE} record with {EXCEPTION_TYPE} in the trace of the poll of {MISSING} ({missing}); its records: {:?}",
                            server.iter().map(|record| (&record.service, &record.body)).collect::<Vec<_>>()
                        )
                    })?;
                let shots: Vec<String> = seen
                    .screenshots
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                Ok(format!(
                    "{CRASH_TYPE} {:?} in trace {trace_id}; {WORKER_SERVICE} {:?} {:?} in trace {missing}; screenshots {shots:?}",
                    record.body,
                    failed.attribute(EXCEPTION_TYPE).unwrap_or_default(),
                    failed.body,
                ))
            },
        )
        .await;
        Check {
            label: Signal::Errors,
            backend: stack.log_service.to_owned(),
            outcome,
        }
    }
}

/// The browser's span that the api's server span of the poll hangs from.
fn browser_parent(trace: &Trace) -> anyhow::Result<String> {
    let server = trace
        .spans
        .iter()
        .find(|span| {
            span.service == ampel_api::SERVICE_NAME
                && span.kind == SpanKind::Server
                && span.name.starts_with("POST ")
        })
        .with_context(|| format!("no {} server span; {trace}", ampel_api::SERVICE_NAME))?;
    let parent = trace
        .spans
        .iter()
        .find(|span| Some(&span.span_id) == server.parent_span_id.as_ref())
        .with_context(|| {
            format!(
                "the api's server span has no parent in the trace (parent id {:?}): the browser's \
                 traceparent did not arrive; {trace}",
                server.parent_span_id
            )
        })?;
    anyhow::ensure!(
        parent.service == WEB_SERVICE,
        "the api's server span hangs from {} {:?}, not from {WEB_SERVICE}",
        parent.service,
        parent.name
    );
    Ok(parent.name.clone())
}

#[cfg(test)]
mod tests {
    use otel_testkit::container;

    use super::*;

    /// The browser checks pass, and each fails without its signal: with the page's API calls
    /// stripped of `traceparent` the trace check fails (the api's span is a root), with the
    /// beacons failing the vitals check does, with no job failing the errors check does. One
    /// stack for the four runs. Needs containers (skipped without them, failing under `CI=true`),
    /// node with frontend/'s modules and Chromium (failing without them).
    #[test]
    fn each_browser_check_fails_without_its_signal() {
        let flags::Command::E2e(flags) = flags::Xtask::parse_from(["xtask", "e2e"]).command else {
            unreachable!("parsed the e2e command");
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let reports = runtime.block_on(async {
            let images = Stack::images(flags.traces, flags.logs).unwrap();
            let images: Vec<&str> = images.iter().map(String::as_str).collect();
            container::require_engine("each_browser_check_fails_without_its_signal", &images)
                .await?;
            let binaries = apps::build(apps::Profile::Debug).unwrap();
            let web = xtask::web::build().unwrap();
            let stack = Stack::start(flags.traces, flags.logs).await.unwrap();
            let mut reports = Vec::new();
            for (run, broken) in [
                ("browser-control", None),
                ("browser-no-traceparent", Some(Break::Traceparent)),
                ("browser-no-beacons", Some(Break::Beacons)),
                ("browser-no-server-error", Some(Break::ServerError)),
            ] {
                reports.push((run, one(&stack, &binaries, &web, run, broken).await));
            }
            stack.stop(false).await;
            Some(reports)
        });
        let Some(reports) = reports else { return };
        let expected = [
            vec![],
            vec![Signal::Traces],
            vec![Signal::Vitals],
            vec![Signal::Errors],
        ];
        let mut wrong = Vec::new();
        for ((run, report), expected) in reports.into_iter().zip(expected) {
            let report = report.unwrap_or_else(|err| panic!("run {run} could not run: {err:#}"));
            eprintln!("{report}");
            if report.failed() != expected {
                wrong.push(format!(
                    "run {run}: expected failures {expected:?}, got {:?}",
                    report.failed()
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    use clap::Parser as _;
    use xtask::flags;
}
