//! What every table is given: the plan, the release binaries, the datastores and this run's
//! queue; the one way to start a measured app (with its telemetry off, or exporting to a live,
//! refusing or hung endpoint), and the rounds every comparison runs in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use otel_testkit::otlp::{LOGS_PATH, TRACES_PATH};
use otel_testkit::sink::{Hung, Received, Sink};

use super::app::{self, App, Binaries};
use crate::e2e::apps;
pub use crate::e2e::apps::Service;
use otel_testkit::compose::interpolate;
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
    /// Each paced api run of the collector's rows.
    pub collector_load: Duration,
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
                collector_load: Duration::from_secs(10),
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
                collector_load: Duration::from_secs(30),
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

/// Where a run's telemetry goes. Each holds its endpoint open for as long as it lives.
pub enum Export {
    /// [`telemetry::SWITCH`] `off`: the baseline.
    Off,
    /// Everything on, exporting traces and logs to a live counting sink.
    Live(Sink),
    /// An address where nothing listens: every export attempt is refused at once. (Bound, read
    /// and released; another process could take it meanwhile, which would show as received
    /// items.)
    Refused(SocketAddr),
    /// A listener that accepts connections and never answers.
    Hung(Hung),
    /// The stack's collector, at this OTLP/HTTP base URL.
    Collector(String),
}

impl Export {
    /// `on`: a fresh live sink; else [`Export::Off`].
    pub async fn live_if(on: bool) -> anyhow::Result<Self> {
        Ok(if on {
            Self::Live(Sink::start().await?)
        } else {
            Self::Off
        })
    }

    /// The label of the run's log file.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Live(_) => "live",
            Self::Refused(_) => "refused",
            Self::Hung(_) => "hung",
            Self::Collector(_) => "collector",
        }
    }

    pub fn sink(&self) -> Option<&Sink> {
        match self {
            Self::Live(sink) => Some(sink),
            _ => None,
        }
    }

    /// What the sink got (nothing unless live); fails on requests that were not OTLP protobuf.
    pub fn received(&self) -> anyhow::Result<Received> {
        self.sink()
            .map_or_else(|| Ok(Received::default()), Sink::received)
    }

    fn base_url(&self) -> Option<String> {
        match self {
            Self::Off => None,
            Self::Live(sink) => Some(sink.base_url()),
            Self::Refused(addr) => Some(format!("http://{addr}")),
            Self::Hung(hung) => Some(hung.base_url()),
            Self::Collector(base_url) => Some(base_url.clone()),
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
            compose: compose::read(compose::MAIN)?,
        })
    }

    /// Starts `service` with `env` on a free 127.0.0.1 port, its output in `log`; see
    /// [`Ctx::start_on`].
    pub async fn start(
        &self,
        service: Service,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> anyhow::Result<App> {
        self.start_on(service, app::free_addr()?, &[], env, log)
            .await
    }

    /// Starts `wrapper… binary` of `service` on [`app::SERVER_CPU`], listening on `listen`,
    /// with `env` over a scrubbed environment, stdout and stderr going to `log` (the JSON logs
    /// land there, as they would in a file collected by a log shipper). The api is waited for
    /// until it answers; the worker is not (its run is timed by the calls it makes, which may
    /// begin at once).
    pub async fn start_on(
        &self,
        service: Service,
        listen: SocketAddr,
        wrapper: &[String],
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> anyhow::Result<App> {
        let (name, binary) = (service.binary_name(), service.binary(&self.binaries));
        let mut command = tokio::process::Command::new("taskset");
        let server_cpu = app::SERVER_CPU.to_string();
        command.args(["-c", &server_cpu]).args(wrapper).arg(binary);
        apps::scrub(&mut command, app::SCRUBBED_PREFIXES);
        command
            .envs(env)
            .env(service.listen_var(), listen.to_string());
        let hint = format!(
            "start {} under taskset: is util-linux installed (`apt-get install -y util-linux`)?",
            binary.display()
        );
        let mut app = App::spawn(name, command, &hint, listen, log)?;
        if service == Service::Api {
            app.ready(ampel_api::routes::HEALTH).await?;
        }
        Ok(app)
    }

    /// The environment of `service`: the datastores, this run's queue, and telemetry as
    /// compose configures it for the stack (`RUST_LOG`, protocol, export delays), exporting to
    /// `export`'s endpoint.
    pub fn env(&self, service: Service, export: &Export) -> Vec<(String, String)> {
        let mut env = vec![
            ("DATABASE_URL".to_owned(), self.database_url.clone()),
            ("REDIS_URL".to_owned(), self.redis_url.clone()),
            (jobs::QUEUE_VAR.to_owned(), self.queue.clone()),
        ];
        match export.base_url() {
            None => env.push((telemetry::SWITCH.into(), "off".into())),
            Some(base_url) => {
                env.extend(self.telemetry_from_compose(service));
                let traces = format!("{base_url}{TRACES_PATH}");
                env.push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), traces));
                let logs = format!("{base_url}{LOGS_PATH}");
                env.push(("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT".into(), logs));
            }
        }
        env
    }

    fn telemetry_from_compose(&self, service: Service) -> Vec<(String, String)> {
        let keys = [
            "RUST_LOG",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BLRP_SCHEDULE_DELAY",
        ];
        let Some(service) = self.compose.services.get(service.compose_name()) else {
            return Vec::new();
        };
        keys.into_iter()
            .filter_map(|key| {
                let value = service.env(key)?;
                let value = interpolate(&value, |key| std::env::var(key).ok());
                Some((key.to_owned(), value))
            })
            .collect()
    }

    /// `RUST_LOG` of the runs with telemetry on, for the report.
    pub fn rust_log(&self) -> String {
        self.telemetry_from_compose(Service::Api)
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
        let env = self.env(Service::Api, &Export::Off);
        let app = self
            .start(Service::Api, env, self.dir.join("setup-api.log"))
            .await?;
        let url = format!("{}/api/repositories", app.base_url);
        let mut ids = Vec::new();
        for name in names {
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

    /// Runs `measure(index, round)` once per label per round (`what` names them on stderr), the order rotated each round
    /// (off then on, then on then off), so a drift in the machine's state (another process
    /// waking up, caches, thermal) does not always favour the same one. Returns the runs by
    /// label.
    pub async fn rounds<R, const N: usize>(
        &self,
        what: &str,
        labels: [&str; N],
        mut measure: impl AsyncFnMut(usize, usize) -> anyhow::Result<R>,
    ) -> anyhow::Result<[Vec<R>; N]> {
        let mut runs = std::array::from_fn(|_| Vec::new());
        let rounds = self.plan.rounds;
        for round in 0..rounds {
            for index in rotated(round, N) {
                eprintln!("{what} {} round {}/{rounds}", labels[index], round + 1);
                runs[index].push(measure(index, round).await?);
            }
        }
        Ok(runs)
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

/// `0..count` starting at `round % count`.
fn rotated(round: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |offset| (round + offset) % count)
}

/// The median of `field` over `items` (the mean of the middle two for an even count).
pub fn median_by<T>(items: &[T], field: impl Fn(&T) -> f64) -> f64 {
    let mut sorted: Vec<f64> = items.iter().map(field).collect();
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
        assert_eq!(super::median_by(&[3.0, 1.0, 2.0], |x| *x), 2.0);
        assert_eq!(super::median_by(&[4.0, 1.0, 2.0, 3.0], |x| *x), 2.5);
    }

    /// Off then on in even rounds, on then off in odd ones; three kinds rotate.
    #[test]
    fn the_order_rotates() {
        let order = |round, count| super::rotated(round, count).collect::<Vec<_>>();
        assert_eq!([order(0, 2), order(1, 2)], [[0, 1], [1, 0]]);
        assert_eq!(order(1, 3), [1, 2, 0]);
    }
}
