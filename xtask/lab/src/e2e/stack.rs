//! The containers: PostgreSQL, Redis, Prometheus and the chosen trace and log backends, started
//! through otel-testkit exactly as compose/ describes them (image, published ports, command,
//! environment, config files, readiness). Nothing here restates an image, a port or a ready
//! check: this file only translates a compose service into a `ContainerSpec`, and derives
//! Prometheus' config for the host processes it scrapes.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::container::{self, ContainerSpec, Readiness, Running};
use otel_testkit::prometheus::{self, Prometheus};
use otel_testkit::{LogStore, TraceStore, jaeger, loki, tempo, victorialogs};
use xtask::compose::{self, ComposeFile, Service};
use xtask::engine::Variant;
use xtask::flags::{LogBackend, TraceBackend};

/// Cold starts include PostgreSQL's initdb; a missing image fails long before this.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// The Prometheus configuration the e2e derives from, and where its rule files live.
const PROMETHEUS_CONFIG: &str = "observability/prometheus/prometheus.yml";
const PROMETHEUS_RULES: &str = "observability/prometheus/rules";
/// The compose service names of the parts the e2e queries.
const PROMETHEUS: &str = "prometheus";
const DATASTORES: [&str; 2] = ["postgres", "redis"];

/// A trace or log backend as the e2e uses it: its compose service and its query API's port.
struct Backend {
    service: &'static str,
    api_port: u16,
}

fn trace_backend(choice: TraceBackend) -> Backend {
    match choice {
        TraceBackend::Tempo => Backend {
            service: "tempo",
            api_port: tempo::API_PORT,
        },
        TraceBackend::Jaeger => Backend {
            service: "jaeger",
            api_port: jaeger::API_PORT,
        },
    }
}

fn log_backend(choice: LogBackend) -> Backend {
    match choice {
        LogBackend::Loki => Backend {
            service: "loki",
            api_port: loki::API_PORT,
        },
        LogBackend::Victorialogs => Backend {
            service: "victorialogs",
            api_port: victorialogs::API_PORT,
        },
    }
}

/// The running backends and how to reach them.
pub struct Stack {
    containers: Containers,
    /// The host's address on the containers' bridge network (see `Running::gateway`). The apps
    /// listen on it for the test's duration so that Prometheus, in a container, can scrape them,
    /// while staying off the machine's external interfaces.
    pub host_ip: IpAddr,
    /// compose.yaml with compose.peers.yaml laid over it: every service either variant has.
    model: ComposeFile,
    /// compose.yaml alone: the app's endpoints for Tempo and Loki, which the peers override.
    grafana: ComposeFile,
    pub prometheus: Prometheus,
    scrape: Scrape,
    pub traces: Box<dyn TraceStore>,
    pub trace_service: &'static str,
    pub logs: Box<dyn LogStore>,
    pub log_service: &'static str,
}

impl Stack {
    /// The images `start` runs, for a test to check they are there before it starts.
    #[cfg(test)]
    pub fn images(traces: TraceBackend, logs: LogBackend) -> anyhow::Result<Vec<String>> {
        let model = Variant::Peers.model()?;
        let services = [
            DATASTORES[0],
            DATASTORES[1],
            PROMETHEUS,
            trace_backend(traces).service,
            log_backend(logs).service,
        ];
        services
            .iter()
            .map(|name| Ok(spec(name, find(&model, name)?, true)?.image()))
            .collect()
    }

    /// Starts every container at once and waits until each is ready.
    pub async fn start(traces: TraceBackend, logs: LogBackend) -> anyhow::Result<Self> {
        let model = Variant::Peers.model()?;
        let (trace_backend, log_backend) = (trace_backend(traces), log_backend(logs));
        let scrape = Scrape::new()?;
        let mut specs = Vec::new();
        for name in [
            DATASTORES[0],
            DATASTORES[1],
            PROMETHEUS,
            trace_backend.service,
            log_backend.service,
        ] {
            let spec = if name == PROMETHEUS {
                // A folder mount, not copies: the scrape targets change while Prometheus runs.
                spec(name, find(&model, name)?, false)?
                    .mount_ro(scrape.dir.path(), prometheus::CONFIG_DIR)
            } else {
                spec(name, find(&model, name)?, true)?
            };
            specs.push((name, spec));
        }
        let containers = Containers::start(specs).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("build the HTTP client")?;
        let url = |service: &str, port: u16| containers.url(service, port);
        let prometheus = Prometheus::new(http.clone(), url(PROMETHEUS, prometheus::API_PORT)?)?;
        let trace_url = url(trace_backend.service, trace_backend.api_port)?;
        let traces: Box<dyn TraceStore> = match traces {
            TraceBackend::Tempo => Box::new(tempo::Tempo::new(http.clone(), trace_url)),
            TraceBackend::Jaeger => Box::new(jaeger::Jaeger::new(http.clone(), trace_url)),
        };
        let log_url = url(log_backend.service, log_backend.api_port)?;
        let logs: Box<dyn LogStore> = match logs {
            LogBackend::Loki => Box::new(loki::Loki::new(http.clone(), log_url)),
            LogBackend::Victorialogs => {
                Box::new(victorialogs::VictoriaLogs::new(http.clone(), log_url))
            }
        };
        Ok(Self {
            host_ip: containers.gateway(),
            containers,
            model,
            grafana: Variant::Grafana.model()?,
            prometheus,
            scrape,
            traces,
            trace_service: trace_backend.service,
            logs,
            log_service: log_backend.service,
        })
    }

    /// The environment compose gives `service` (`api` or `worker`), pointed at this stack: every
    /// `//name:port` and `@name:port` of a started service becomes its published address, and
    /// the OTLP endpoints are the ones compose uses for the chosen backends.
    pub fn app_env(&self, service: &str) -> anyhow::Result<Vec<(String, String)>> {
        let app = find(&self.model, service)?;
        let lookup = |key: &str| std::env::var(key).ok();
        let mut env: Vec<(String, String)> = app
            .environment
            .keys()
            // Listen addresses are container addresses (0.0.0.0:PORT); the caller picks free
            // ones on the host.
            .filter(|key| !key.ends_with("_LISTEN_ADDR"))
            .filter_map(|key| Some((key.clone(), compose::interpolate(&app.env(key)?, lookup))))
            .collect();
        for (key, backend) in [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", self.trace_service),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", self.log_service),
        ] {
            // The variant whose app exports to this backend says where its receiver is.
            let endpoint = [&self.grafana, &self.model]
                .iter()
                .filter_map(|model| model.services.get(service)?.env(key))
                .find(|value| value.contains(&format!("//{backend}:")))
                .with_context(|| {
                    format!("no {key} pointing at {backend} in the {service} service of compose/")
                })?;
            env.retain(|(name, _)| name != key);
            env.push((key.to_owned(), endpoint));
        }
        for (_, value) in &mut env {
            *value = self.containers.rewrite(value);
        }
        Ok(env)
    }

    /// Adds scrape targets (job `api` or `worker`, labelled `e2e_run`) and reloads Prometheus.
    pub async fn scrape(&self, targets: &[(&str, SocketAddr)], run: &str) -> anyhow::Result<()> {
        let text = {
            let mut all = self
                .scrape
                .targets
                .lock()
                .expect("no thread panics holding it");
            all.extend(
                targets
                    .iter()
                    .map(|(job, address)| ((*job).to_owned(), *address, run.to_owned())),
            );
            self.scrape.render(&all)?
        };
        self.scrape.write(&text)?;
        self.prometheus.reload().await
    }

    /// Removes the containers, or with `keep` leaves them (and Prometheus' config folder) and
    /// says how to remove them.
    pub async fn stop(self, keep: bool) {
        if keep {
            eprintln!("  prometheus config: {}", self.scrape.dir.keep().display());
            self.containers.keep();
        } else {
            self.containers.stop().await;
        }
    }
}

/// PostgreSQL and Redis alone, started from compose/ like the e2e's, for `cargo xtask test` when
/// no `DATABASE_URL`/`REDIS_URL` is given.
pub struct Datastores {
    containers: Containers,
    /// compose's api `DATABASE_URL`, pointed at the published port.
    pub database_url: String,
    /// compose's api `REDIS_URL`, pointed at the published port.
    pub redis_url: String,
}

impl Datastores {
    pub async fn start() -> anyhow::Result<Self> {
        let model = Variant::Peers.model()?;
        let mut specs = Vec::new();
        for name in DATASTORES {
            specs.push((name, spec(name, find(&model, name)?, true)?));
        }
        let containers = Containers::start(specs).await?;
        let api = find(&model, "api")?;
        let url = |key: &str| -> anyhow::Result<String> {
            let value = api
                .env(key)
                .with_context(|| format!("the api service of {} sets no {key}", compose::MAIN))?;
            Ok(containers.rewrite(&value))
        };
        let (database_url, redis_url) = match (url("DATABASE_URL"), url("REDIS_URL")) {
            (Ok(database_url), Ok(redis_url)) => (database_url, redis_url),
            (Err(err), _) | (_, Err(err)) => {
                containers.stop().await;
                return Err(err);
            }
        };
        Ok(Self {
            containers,
            database_url,
            redis_url,
        })
    }

    pub async fn stop(self) {
        self.containers.stop().await;
    }
}

/// Started containers by compose service, with the ports each publishes.
struct Containers(Vec<(String, Vec<u16>, Running)>);

impl Containers {
    /// Starts every spec at once. When one fails the others are removed again, and the error
    /// names each that failed.
    async fn start(specs: Vec<(&str, ContainerSpec)>) -> anyhow::Result<Self> {
        let started = futures::future::join_all(specs.into_iter().map(|(name, spec)| async move {
            let since = Instant::now();
            eprintln!("starting {name} ({})", spec.image());
            let running = container::start(&spec).await.with_context(|| {
                format!(
                    "start {name}: without a registry, build local images (`bash .ci/images.sh`, \
                     then `source .ci/images.env`) and pick backends that have one \
                     (--traces jaeger --logs victorialogs, or AMPEL_E2E_TRACES / AMPEL_E2E_LOGS)"
                )
            })?;
            eprintln!("{name} ready in {:.1}s", since.elapsed().as_secs_f64());
            anyhow::Ok((name.to_owned(), spec.ports().to_vec(), running))
        }))
        .await;
        let mut containers = Containers(Vec::new());
        let mut errors = Vec::new();
        for result in started {
            match result {
                Ok(one) => containers.0.push(one),
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        if !errors.is_empty() {
            containers.stop().await;
            anyhow::bail!("{}", errors.join("\n"));
        }
        Ok(containers)
    }

    fn url(&self, service: &str, port: u16) -> anyhow::Result<String> {
        self.0
            .iter()
            .find(|(name, ports, _)| name == service && ports.contains(&port))
            .map(|(_, _, running)| running.url(port))
            .with_context(|| {
                format!(
                    "compose/ does not publish port {port} of {service}: the e2e reaches it there"
                )
            })
    }

    /// Every container reports the same bridge gateway; the first one's is taken.
    fn gateway(&self) -> IpAddr {
        self.0
            .first()
            .map(|(_, _, running)| running.gateway())
            .expect("a stack has containers")
    }

    /// `value` with every `//name:port` and `@name:port` of a started service replaced by its
    /// published address.
    fn rewrite(&self, value: &str) -> String {
        let mut value = value.to_owned();
        for (name, ports, running) in &self.0 {
            for port in ports {
                let address = running.address(*port);
                for prefix in ["//", "@"] {
                    value = value.replace(
                        &format!("{prefix}{name}:{port}"),
                        &format!("{prefix}{address}"),
                    );
                }
            }
        }
        value
    }

    async fn stop(self) {
        futures::future::join_all(self.0.into_iter().map(|(name, _, running)| async move {
            if let Err(err) = running.stop().await {
                eprintln!("warning: could not remove the {name} container: {err:#}");
            }
        }))
        .await;
    }

    fn keep(self) {
        eprintln!("kept (--keep); remove them with `docker rm -f <id>`:");
        for (name, ports, running) in self.0 {
            let ports: Vec<String> = ports
                .iter()
                .map(|port| format!("{port}->{}", running.address(*port)))
                .collect();
            eprintln!("  {name:<13} {} {}", running.keep(), ports.join(" "));
        }
    }
}

/// A service of the merged compose model.
fn find<'a>(model: &'a ComposeFile, name: &str) -> anyhow::Result<&'a Service> {
    model.services.get(name).with_context(|| {
        format!(
            "no service {name:?} in {} or {}",
            compose::MAIN,
            compose::PEERS
        )
    })
}

/// Compose service → container: image, published ports, environment, command, readiness, and
/// (with `copy_mounts`) its bind-mounted files copied in.
fn spec(name: &str, service: &Service, copy_mounts: bool) -> anyhow::Result<ContainerSpec> {
    let image = service
        .resolved_image()
        .with_context(|| format!("compose service {name} has no image"))?;
    let mut spec = ContainerSpec::new(&image)
        .name_prefix(format!("ampel-e2e-{name}"))
        .ready_within(READY_DEADLINE);
    for port in service.published_ports()? {
        spec = spec.port(port.container);
    }
    for key in service.environment.keys() {
        let value = service.env(key).unwrap_or_default();
        spec = spec.env(
            key,
            compose::interpolate(&value, |key| std::env::var(key).ok()),
        );
    }
    if let Some(command) = &service.command {
        spec = spec.cmd(command_argv(command));
    }
    if copy_mounts {
        for mount in service.bind_mounts() {
            spec = spec.copy_file(mount.source, mount.target);
        }
    }
    Ok(spec.readiness(match service.readiness(name)? {
        compose::Readiness::Exec(argv) => Readiness::Exec(argv),
        compose::Readiness::HostHttp { port, path } => Readiness::Http { port, path },
    }))
}

/// Compose's `command:` as an argv (a string is split on whitespace, as compose does).
fn command_argv(command: &serde_yaml::Value) -> Vec<String> {
    match command {
        serde_yaml::Value::Sequence(items) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        serde_yaml::Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Prometheus' configuration for the e2e, derived from observability/prometheus/prometheus.yml:
/// same global settings and rules, the `api` and `worker` jobs pointed at the host processes
/// of each run, Prometheus' own job kept, and the exporters' jobs left out (the e2e does not
/// start the exporters).
struct Scrape {
    dir: tempfile::TempDir,
    template: serde_yaml::Mapping,
    /// `(job, address, run)` of every target added so far.
    targets: Mutex<Vec<(String, SocketAddr, String)>>,
}

impl Scrape {
    fn new() -> anyhow::Result<Self> {
        let root = xtask::util::project_root();
        let text = std::fs::read_to_string(root.join(PROMETHEUS_CONFIG))
            .with_context(|| format!("read {PROMETHEUS_CONFIG}"))?;
        let template: serde_yaml::Mapping =
            serde_yaml::from_str(&text).with_context(|| format!("parse {PROMETHEUS_CONFIG}"))?;
        let dir = tempfile::Builder::new()
            .prefix("ampel-e2e-prometheus-")
            .tempdir()
            .context("create a folder for Prometheus' configuration")?;
        // Prometheus runs as `nobody` in the container: the folder must be readable by others.
        set_mode(dir.path(), 0o755)?;
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules)?;
        set_mode(&rules, 0o755)?;
        for entry in std::fs::read_dir(root.join(PROMETHEUS_RULES))
            .with_context(|| format!("read {PROMETHEUS_RULES}"))?
        {
            let path = entry?.path();
            if let Some(file) = path.file_name() {
                std::fs::copy(&path, rules.join(file))
                    .with_context(|| format!("copy {}", path.display()))?;
                set_mode(&rules.join(file), 0o644)?;
            }
        }
        let scrape = Self {
            dir,
            template,
            targets: Mutex::new(Vec::new()),
        };
        scrape.write(&scrape.render(&[])?)?;
        Ok(scrape)
    }

    fn render(&self, targets: &[(String, SocketAddr, String)]) -> anyhow::Result<String> {
        use serde_yaml::Value;
        let mut config = self.template.clone();
        let jobs = config
            .get_mut("scrape_configs")
            .and_then(Value::as_sequence_mut)
            .with_context(|| format!("{PROMETHEUS_CONFIG} has no scrape_configs list"))?;
        jobs.retain_mut(|job| {
            let name = job
                .get("job_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if name == "api" || name == "worker" {
                let static_configs: Vec<Value> = targets
                    .iter()
                    .filter(|(job, _, _)| *job == name)
                    .map(|(_, address, run)| {
                        serde_yaml::to_value(serde_json::json!({
                            "targets": [address.to_string()],
                            "labels": { "e2e_run": run },
                        }))
                        .expect("plain JSON converts to YAML")
                    })
                    .collect();
                job["static_configs"] = Value::Sequence(static_configs);
                true
            } else {
                name == PROMETHEUS
            }
        });
        let mut text = format!("# Written by `cargo xtask e2e` from {PROMETHEUS_CONFIG}.\n");
        text.push_str(&serde_yaml::to_string(&config)?);
        Ok(text)
    }

    /// Replaces the file in one rename, so Prometheus never reads half of it.
    fn write(&self, text: &str) -> anyhow::Result<()> {
        let path = self.dir.path().join("prometheus.yml");
        let partial = self.dir.path().join(".prometheus.yml.partial");
        std::fs::write(&partial, text).with_context(|| format!("write {}", partial.display()))?;
        set_mode(&partial, 0o644)?;
        std::fs::rename(&partial, &path).with_context(|| format!("write {}", path.display()))
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}
