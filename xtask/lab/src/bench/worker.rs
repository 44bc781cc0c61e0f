//! Table 4: the worker's throughput with telemetry on and off, against a local fake provider.
//!
//! Each run enqueues `worker_jobs` poll jobs through the api (spread over a few repositories, so
//! concurrent jobs do not all upsert the same rows), then starts a fresh worker pinned to the
//! server core. The fake GitHub counts the calls: jobs/s is measured from the first call to
//! the last, and the worker's CPU time over the same span.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use fake_github::FakeGithub;
use otel_testkit::eventually_every;

use super::app::{self, free_addr};
use super::ctx::{Ctx, Telemetry, alternating, median};
use super::load::curl_paths;
use super::report::{self, Table, Target};
use super::sink::Sink;
use xtask::flags::BenchTable;

/// Table 4.
#[derive(Debug, serde::Serialize)]
pub struct Worker {
    pub off: Mode,
    pub on: Mode,
    pub jobs_ratio: f64,
    pub added_cpu_ms: f64,
    pub load_before: String,
    pub load_after: String,
}

#[derive(Debug, serde::Serialize)]
pub struct Mode {
    pub jobs_per_s: f64,
    pub cpu_ms_per_job: f64,
    pub spans_per_job: f64,
    pub logs_per_job: f64,
    pub runs: Vec<Run>,
}

#[derive(Debug, serde::Serialize)]
pub struct Run {
    pub jobs: u64,
    pub seconds: f64,
    pub jobs_per_s: f64,
    pub cpu_ms_per_job: f64,
    pub spans_received: u64,
    pub logs_received: u64,
}

/// Repositories the jobs are spread over.
const REPOSITORIES: usize = 8;

async fn run(ctx: &Ctx) -> anyhow::Result<Worker> {
    let load_before = report::loadavg();
    let github = FakeGithub::start(fake_github::Mode::Ok).await?;
    let names: Vec<String> = (0..REPOSITORIES).map(|n| format!("worker-{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ids = ctx.repositories(&names).await?;
    // Enqueues the jobs.
    let api = ctx.start_api(&Telemetry::Off, "worker-api.log").await?;

    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..ctx.plan.rounds {
        for telemetry_on in alternating(round) {
            eprintln!(
                "worker: {} round {}/{}",
                if telemetry_on { "on" } else { "off" },
                round + 1,
                ctx.plan.rounds
            );
            let paths: Vec<String> = (0..ctx.plan.worker_jobs as usize)
                .map(|n| format!("/api/repositories/{}/poll", ids[n % ids.len()]))
                .collect();
            curl_paths(
                &api.base_url,
                "enqueue",
                "POST",
                None,
                paths.iter().map(String::as_str),
                &ctx.dir,
            )
            .await
            .context("enqueue the poll jobs")?;
            let run = measure(ctx, &github, telemetry_on, round).await?;
            if telemetry_on { &mut on } else { &mut off }.push(run);
        }
    }
    api.stop(Duration::from_secs(15)).await?;
    let (off, on) = (mode(off), mode(on));
    Ok(Worker {
        jobs_ratio: on.jobs_per_s / off.jobs_per_s,
        added_cpu_ms: on.cpu_ms_per_job - off.cpu_ms_per_job,
        off,
        on,
        load_before,
        load_after: report::loadavg(),
    })
}

fn mode(runs: Vec<Run>) -> Mode {
    let of = |field: fn(&Run) -> f64| median(&runs.iter().map(field).collect::<Vec<_>>());
    Mode {
        jobs_per_s: of(|run| run.jobs_per_s),
        cpu_ms_per_job: of(|run| run.cpu_ms_per_job),
        spans_per_job: of(|run| run.spans_received as f64 / run.jobs as f64),
        logs_per_job: of(|run| run.logs_received as f64 / run.jobs as f64),
        runs,
    }
}

/// One fresh worker drains the queue; timed by the provider's call count.
async fn measure(
    ctx: &Ctx,
    github: &FakeGithub,
    telemetry_on: bool,
    round: usize,
) -> anyhow::Result<Run> {
    let jobs = ctx.plan.worker_jobs;
    let (sink, telemetry) = Telemetry::with_sink(telemetry_on).await?;
    let listen = free_addr()?;
    let mut env = ctx.env("worker", &telemetry);
    env.push(("WORKER_LISTEN_ADDR".into(), listen.to_string()));
    env.push(("PROVIDER_BASE_URL".into(), github.base_url()));
    let earlier = github.call_count();
    let log = ctx
        .dir
        .join(format!("worker-{}-{round}.log", telemetry.label()));
    let worker = app::start(
        "ampel-worker",
        &ctx.binaries.worker,
        &[],
        &env,
        listen,
        log.clone(),
    )?;
    // Generous: a job is a few milliseconds; this only stops a stuck run.
    let deadline = Duration::from_secs(30 + jobs / 20);
    // Polled often: the first and the last call's times are the measurement.
    let mut first = None;
    let mut sample = || -> anyhow::Result<(Instant, Duration)> {
        let calls = (github.call_count() - earlier) as u64;
        if first.is_none() && calls >= 1 {
            first = Some((Instant::now(), app::cpu(&worker)?));
        }
        anyhow::ensure!(calls >= jobs, "{calls} of {jobs} provider calls");
        Ok((Instant::now(), app::cpu(&worker)?))
    };
    let every = Duration::from_millis(5);
    let last = eventually_every(every, "worker: jobs", Instant::now(), deadline, || {
        std::future::ready(sample())
    })
    .await
    .map_err(|timed_out| anyhow::anyhow!("{timed_out}; see {}", log.display()))?
    .value;
    let first = first.expect("set before the last call");
    worker.stop(Duration::from_secs(15)).await?;
    let tally = sink
        .as_ref()
        .map(Sink::received)
        .transpose()?
        .unwrap_or_default();
    let seconds = (last.0 - first.0).as_secs_f64();
    // From the first call to the last are jobs - 1 intervals.
    let intervals = (jobs - 1).max(1) as f64;
    Ok(Run {
        jobs,
        seconds,
        jobs_per_s: intervals / seconds,
        cpu_ms_per_job: (last.1 - first.1).as_secs_f64() * 1e3 / intervals,
        spans_received: tally.total_spans(),
        logs_received: tally.total_logs(),
    })
}

impl Table for Worker {
    const TABLE: BenchTable = BenchTable::Worker;
    const TITLE: &'static str =
        "4. Worker: jobs per second against a local fake provider, telemetry on vs off";

    async fn measure(ctx: &Ctx) -> anyhow::Result<Self> {
        run(ctx).await
    }

    fn print(&self, ctx: &Ctx) {
        println!(
            "   load average {} -> {}; {} jobs per run, WORKER_CONCURRENCY default, worker on cpu {}",
            self.load_before,
            self.load_after,
            ctx.plan.worker_jobs,
            app::SERVER_CPU
        );
        println!(
            "   {:<6} {:>8} {:>12} {:>10} {:>9}",
            "mode", "jobs/s", "CPU ms/job", "spans/job", "logs/job"
        );
        for (label, mode) in [("off", &self.off), ("on", &self.on)] {
            println!(
                "   {:<6} {:>8.1} {:>12.3} {:>10.1} {:>9.1}",
                label, mode.jobs_per_s, mode.cpu_ms_per_job, mode.spans_per_job, mode.logs_per_job
            );
        }
        println!(
            "   {:<6} {:>8.3} {:>+12.3}",
            "on/off", self.jobs_ratio, self.added_cpu_ms
        );
    }

    /// The issue sets no target for the worker; the table is for comparing commits.
    fn targets(&self) -> Vec<Target> {
        Vec::new()
    }
}
