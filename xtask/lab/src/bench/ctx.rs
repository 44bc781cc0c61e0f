//! What every table is given: the plan, the release binaries, the datastores and this run's
//! queue, and how to start the api with telemetry off, or on against a counting sink.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::app::{self, Binaries};
use super::sink::Sink;
use xtask::compose::{self, ComposeFile};

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
    pub fn new(quick: bool) -> Self {
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
    pub binaries: Binaries,
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

    /// A live counting sink and the telemetry pointed at it when `on`, else no sink and
    /// [`Telemetry::Off`].
    pub async fn with_sink(on: bool) -> anyhow::Result<(Option<Sink>, Self)> {
        if !on {
            return Ok((None, Self::Off));
        }
        let sink = Sink::start().await?;
        let telemetry = Self::to(&sink.base_url());
        Ok((Some(sink), telemetry))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On { .. } => "on",
        }
    }
}

impl Ctx {
    /// The datastores from `DATABASE_URL` and `REDIS_URL`, `target/bench/` and a log folder.
    pub fn new(binaries: Binaries, plan: Plan) -> anyhow::Result<Self> {
        let dir = xtask::util::project_root().join("target/bench");
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
        Ok(Self {
            binaries,
            logs,
            plan,
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
        })
    }

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
    pub fn rust_log(&self) -> String {
        self.env("api", &Telemetry::to(""))
            .into_iter()
            .find(|(key, _)| key == "RUST_LOG")
            .map_or_else(
                || "unset (the default filter)".to_owned(),
                |(_, value)| value,
            )
    }

    /// The ids of repositories `ampel-bench/{name}`, created through the api (telemetry off)
    /// if new.
    pub async fn repositories(&self, names: &[&str]) -> anyhow::Result<Vec<i64>> {
        let listen = app::free_addr()?;
        let mut env = self.env("api", &Telemetry::Off);
        env.push(("API_LISTEN_ADDR".into(), listen.to_string()));
        let log = self.dir.join("setup-api.log");
        let mut app = app::start(
            "ampel-api (setup)",
            &self.binaries.api,
            &[],
            &env,
            listen,
            log,
        )?;
        app.ready("/health").await?;
        let mut ids = Vec::new();
        for name in names {
            let url = format!("{}/api/repositories", app.base_url);
            let created = self
                .http
                .post(&url)
                .json(&serde_json::json!({ "owner": "ampel-bench", "name": name }))
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            let id = if created.status() == reqwest::StatusCode::CONFLICT {
                let all: Vec<serde_json::Value> = self
                    .http
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await
                    .with_context(|| format!("GET {url}"))?;
                all.iter()
                    .find(|repository| {
                        repository["owner"] == "ampel-bench" && repository["name"] == *name
                    })
                    .and_then(|repository| repository["id"].as_i64())
                    .with_context(|| format!("ampel-bench/{name} is followed but not listed"))?
            } else {
                let body: serde_json::Value = created
                    .error_for_status()
                    .with_context(|| format!("POST {url}"))?
                    .json()
                    .await?;
                body["id"]
                    .as_i64()
                    .with_context(|| format!("POST {url}: no id in {body}"))?
            };
            ids.push(id);
        }
        app.stop(Duration::from_secs(15)).await?;
        Ok(ids)
    }
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
