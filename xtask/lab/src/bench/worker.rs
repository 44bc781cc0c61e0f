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

use super::app;
use super::ctx::{Ctx, Export, Service, median_by};
use super::load;
use super::report::{Columns, Table, Target};
use xtask::flags::BenchTable;

/// Table 4.
#[derive(Debug, serde::Serialize)]
pub struct Worker {
    pub off: Mode,
    pub on: Mode,
    pub jobs_ratio: f64,
    pub added_cpu_ms: f64,
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

fn mode(runs: Vec<Run>) -> Mode {
    let of = |field: fn(&Run) -> f64| median_by(&runs, field);
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
    export: &Export,
    round: usize,
) -> anyhow::Result<Run> {
    let jobs = ctx.plan.worker_jobs;
    let mut env = ctx.env(Service::Worker, export);
    env.push((
        ampel_worker::PROVIDER_BASE_URL_VAR.into(),
        github.base_url(),
    ));
    let earlier = github.call_count();
    let log = ctx
        .dir
        .join(format!("worker-{}-{round}.log", export.label()));
    let worker = ctx.start(Service::Worker, env, log.clone()).await?;
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
    let received = export.received()?;
    let seconds = (last.0 - first.0).as_secs_f64();
    // From the first call to the last are jobs - 1 intervals.
    let intervals = (jobs - 1).max(1) as f64;
    Ok(Run {
        jobs,
        seconds,
        jobs_per_s: intervals / seconds,
        cpu_ms_per_job: (last.1 - first.1).as_secs_f64() * 1e3 / intervals,
        spans_received: received.total_spans(),
        logs_received: received.total_logs(),
    })
}

const COLUMNS: Columns = Columns(&[
    ("mode", -6),
    ("jobs/s", 8),
    ("CPU ms/job", 12),
    ("spans/job", 10),
    ("logs/job", 9),
]);

impl Table for Worker {
    const TABLE: BenchTable = BenchTable::Worker;
    const TITLE: &'static str =
        "4. Worker: jobs per second against a local fake provider, telemetry on vs off";

    async fn measure(ctx: &Ctx) -> anyhow::Result<Self> {
        let github = FakeGithub::start(fake_github::Mode::Ok).await?;
        let names: Vec<String> = (0..REPOSITORIES).map(|n| format!("worker-{n}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let ids = ctx.repositories(&names).await?;
        // Enqueues the jobs.
        let env = ctx.env(Service::Api, &Export::Off);
        let api = ctx
            .start(Service::Api, env, ctx.logs.path().join("worker-api.log"))
            .await?;
        let paths: Vec<String> = (0..ctx.plan.worker_jobs as usize)
            .map(|n| format!("/api/repositories/{}/poll", ids[n % ids.len()]))
            .collect();
        let runs = ctx
            .rounds("worker:", ["off", "on"], async |on, round| {
                let paths = paths.iter().map(String::as_str);
                load::each(&ctx.http, &api.base_url, "POST", None, paths)
                    .await
                    .context("enqueue the poll jobs")?;
                measure(ctx, &github, &Export::live_if(on == 1).await?, round).await
            })
            .await?;
        api.stop(Duration::from_secs(15)).await?;
        let [off, on] = runs.map(mode);
        Ok(Worker {
            jobs_ratio: on.jobs_per_s / off.jobs_per_s,
            added_cpu_ms: on.cpu_ms_per_job - off.cpu_ms_per_job,
            off,
            on,
        })
    }

    fn settings(&self, ctx: &Ctx) -> String {
        format!(
            "; {} jobs per run, WORKER_CONCURRENCY default, worker on cpu {}",
            ctx.plan.worker_jobs,
            app::SERVER_CPU
        )
    }

    fn print(&self, _: &Ctx) {
        COLUMNS.print_heading();
        for (label, mode) in [("off", &self.off), ("on", &self.on)] {
            let cells = [
                label.to_owned(),
                format!("{:.1}", mode.jobs_per_s),
                format!("{:.3}", mode.cpu_ms_per_job),
                format!("{:.1}", mode.spans_per_job),
                format!("{:.1}", mode.logs_per_job),
            ];
            println!("{}", COLUMNS.row(&cells));
        }
        let ratios = [
            "on/off".to_owned(),
            format!("{:.3}", self.jobs_ratio),
            format!("{:+.3}", self.added_cpu_ms),
        ];
        println!("{}", COLUMNS.row(&ratios));
    }

    /// The issue sets no target for the worker; the table is for comparing commits.
    fn targets(&self) -> Vec<Target> {
        Vec::new()
    }
}
