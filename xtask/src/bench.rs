//! `cargo xtask bench`: what telemetry costs the api and the worker, measured, as four tables.
//!
//! ```text
//! bash .ci/services.sh   # PostgreSQL and Redis; export the URLs it prints
//! export DOCKER_HOST=unix:///run/podman/podman.sock; source .ci/images.env   # table 3, Podman
//! cargo xtask bench --quick
//! ```
//!
//! Layout: `overhead.rs`, `backend.rs`, `visible.rs` and `worker.rs` each measure one table;
//! `app.rs` runs the release binaries pinned to the server core (through the e2e's process
//! helper) and reads their CPU time and memory from /proc; `load.rs` drives them with wrk
//! (throughput, latency) or curl (an exact request count); `callgrind.rs` counts instructions per
//! request; `sink.rs` is the counting OTLP receiver and the refusing and hung endpoints; table 3
//! runs on the e2e's stack and backend clients; `report.rs` prints the tables and writes the JSON.
//! docs/performance.md explains the method and holds the reference figures.

mod app;
mod backend;
mod callgrind;
mod load;
mod overhead;
mod report;
mod sink;
mod visible;
mod worker;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::compose::{self, ComposeFile};
use crate::flags::{self, BenchTable};

/// How long each part runs; `--quick` trades precision for a run of under 3 minutes.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Plan {
    /// Off/on pairs per route (overhead) and per mode (worker).
    pub rounds: usize,
    /// Load before each measured wrk run, so connections and pools are warm.
    pub warmup: Duration,
    /// Each measured wrk run.
    pub duration: Duration,
    /// wrk's keep-alive connections.
    pub connections: u32,
    /// Requests counted under callgrind.
    pub callgrind_requests: u64,
    /// Requests over which RSS must stay flat (backend table).
    pub rss_requests: u64,
    /// Time-to-visible samples per signal.
    pub visible_samples: usize,
    /// Jobs per worker run.
    pub worker_jobs: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                rounds: 1,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(3),
                connections: 16,
                callgrind_requests: 1_000,
                rss_requests: 30_000,
                visible_samples: 3,
                worker_jobs: 300,
            }
        } else {
            Self {
                rounds: 3,
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(10),
                connections: 16,
                callgrind_requests: 5_000,
                rss_requests: 100_000,
                visible_samples: 9,
                worker_jobs: 2_000,
            }
        }
    }
}

/// What every part needs.
pub struct Ctx {
    pub binaries: app::Binaries,
    pub plan: Plan,
    /// Where logs, scripts, callgrind dumps and the JSON go (`target/bench/`).
    pub dir: PathBuf,
    /// Where the api's stdout goes under load: tmpfs when there is one. At tens of thousands of
    /// lines a second, a file on disk makes the writer block on dirty-page write-back now and
    /// then, which would show up as telemetry's latency; a log shipper reading a pipe does not
    /// do that. Removed at the end.
    pub logs: tempfile::TempDir,
    pub http: reqwest::Client,
    database_url: String,
    redis_url: String,
    /// A queue of this run's own, so a worker elsewhere on the same Redis takes none of its jobs.
    queue: String,
    compose: ComposeFile,
}

/// Telemetry as a run configures it.
pub enum Telemetry {
    /// `AMPEL_TELEMETRY=off`: the baseline.
    Off,
    /// Everything on, exporting traces and logs to these OTLP/HTTP endpoints.
    On { traces: String, logs: String },
}

impl Telemetry {
    /// Both signals to one OTLP/HTTP base URL (`/v1/traces`, `/v1/logs`).
    pub fn to(base_url: &str) -> Self {
        Self::On {
            traces: format!("{base_url}/v1/traces"),
            logs: format!("{base_url}/v1/logs"),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On { .. } => "on",
        }
    }
}

/// A live counting sink and the telemetry pointed at it when `on`, else no sink and
/// [`Telemetry::Off`].
pub async fn telemetry(on: bool) -> anyhow::Result<(Option<sink::Sink>, Telemetry)> {
    if !on {
        return Ok((None, Telemetry::Off));
    }
    let sink = sink::Sink::start().await?;
    let telemetry = Telemetry::to(&sink.base_url());
    Ok((Some(sink), telemetry))
}

impl Ctx {
    /// Starts the api binary with `telemetry` on a free port, its output in `logs/{log}`, and
    /// waits until it answers.
    pub async fn start_api(&self, telemetry: &Telemetry, log: &str) -> anyhow::Result<app::App> {
        let listen = app::free_addr()?;
        let mut env = self.env("api", telemetry);
        env.push(("API_LISTEN_ADDR".into(), listen.to_string()));
        let log = self.logs.path().join(log);
        let mut api = app::start("ampel-api", &self.binaries.api, &[], &env, listen, log)?;
        api.ready("/health").await?;
        Ok(api)
    }

    /// The environment of `service` (`api` or `worker`): the datastores, this run's queue, and
    /// telemetry as compose configures it for the stack (`RUST_LOG`, protocol, export delays),
    /// pointed at the given endpoints.
    pub fn env(&self, service: &str, telemetry: &Telemetry) -> Vec<(String, String)> {
        let mut env = vec![
            ("DATABASE_URL".to_owned(), self.database_url.clone()),
            ("REDIS_URL".to_owned(), self.redis_url.clone()),
            ("JOB_QUEUE".to_owned(), self.queue.clone()),
        ];
        match telemetry {
            Telemetry::Off => env.push(("AMPEL_TELEMETRY".into(), "off".into())),
            Telemetry::On { traces, logs } => {
                let from_compose = [
                    "RUST_LOG",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    "OTEL_BSP_SCHEDULE_DELAY",
                    "OTEL_BLRP_SCHEDULE_DELAY",
                ];
                if let Some(service) = self.compose.services.get(service) {
                    for key in from_compose {
                        if let Some(value) = service.env(key) {
                            let value = compose::interpolate(&value, |key| std::env::var(key).ok());
                            env.push((key.to_owned(), value));
                        }
                    }
                }
                env.push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), traces.clone()));
                env.push(("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT".into(), logs.clone()));
            }
        }
        env
    }

    /// `RUST_LOG` of the runs with telemetry on, for the report.
    fn rust_log(&self) -> String {
        self.env("api", &Telemetry::to(""))
            .into_iter()
            .find(|(key, _)| key == "RUST_LOG")
            .map_or_else(
                || "unset (the default filter)".to_owned(),
                |(_, value)| value,
            )
    }
}

impl flags::Bench {
    pub fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        preflight()?;
        // This process (wrk's and curl's parent, the sink, the fake provider) stays off the
        // server's core. Done before the runtime's threads exist, so they inherit it.
        crate::util::run(
            "pin xtask to the load core",
            "taskset",
            &[
                "-cp".to_owned(),
                app::LOAD_CPU.to_string(),
                std::process::id().to_string(),
            ],
            &[],
        )?;
        let binaries = match &self.binaries {
            Some(dir) => app::binaries_in(dir)?,
            None => app::build()?,
        };
        let dir = crate::util::project_root().join("target/bench");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let logs = tempfile::Builder::new()
            .prefix("ampel-bench-")
            .tempdir_in("/dev/shm")
            .or_else(|_| {
                tempfile::Builder::new()
                    .prefix("ampel-bench-")
                    .tempdir_in(&dir)
            })
            .context("create a folder for the api's logs")?;
        let ctx = Ctx {
            binaries,
            logs,
            plan: Plan::new(self.quick),
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .context("build the HTTP client")?,
            database_url: required(
                "DATABASE_URL",
                "postgres://ampel:ampel@127.0.0.1:15432/ampel",
            )?,
            redis_url: required("REDIS_URL", "redis://127.0.0.1:16379")?,
            queue: format!("ampel-bench:{}", std::process::id()),
            compose: ComposeFile::read(compose::MAIN)?,
        };
        let runtime = tokio::runtime::Runtime::new().context("start the Tokio runtime")?;
        let mut report = report::Report::new(self.quick, &ctx.plan, ctx.rust_log());
        let wanted = |table| self.only.is_empty() || self.only.contains(&table);
        runtime.block_on(async {
            if wanted(BenchTable::Overhead) {
                report.overhead = Some(report::part(overhead::run(&ctx).await));
                report.print_overhead();
            }
            if wanted(BenchTable::Backend) {
                report.backend = Some(report::part(backend::run(&ctx).await));
                report.print_backend();
            }
            if wanted(BenchTable::Visible) {
                report.visible = Some(report::part(visible::run(&ctx).await));
                report.print_visible();
            }
            if wanted(BenchTable::Worker) {
                report.worker = Some(report::part(worker::run(&ctx).await));
                report.print_worker();
            }
        });
        report.wall_seconds = started.elapsed().as_secs_f64();
        let out = crate::util::project_root().join(&self.out);
        report.write(&out)?;
        println!(
            "\nwrote {} ({:.0}s in all)",
            out.display(),
            report.wall_seconds
        );
        let failed = report.failed();
        anyhow::ensure!(
            failed.is_empty(),
            "bench: {} could not be measured; the errors are above",
            failed.join(", ")
        );
        Ok(())
    }
}

/// The tools and the machine the figures depend on, checked before anything is built.
fn preflight() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    anyhow::ensure!(
        cores >= 2,
        "bench needs 2 cores (server on one, load on the other); this machine offers {cores}"
    );
    for (tool, package) in [
        ("wrk", "wrk"),
        ("curl", "curl"),
        ("taskset", "util-linux"),
        ("valgrind", "valgrind"),
    ] {
        duct::cmd(tool, ["--version"])
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run()
            .with_context(|| format!("{tool} not found: `apt-get install -y {package}`"))?;
    }
    Ok(())
}

fn required(name: &str, example: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .with_context(|| {
            format!("{name} is not set: start PostgreSQL and Redis (`bash .ci/services.sh`) and export {name}={example}")
        })
}

/// Telemetry off then on in even rounds, on then off in odd ones, so a drift in the machine's
/// state (another process waking up, caches, thermal) does not always favour the same one.
pub fn alternating(round: usize) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// The median of some samples (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    /// Medians of odd and even counts.
    #[test]
    fn median_of_samples() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
