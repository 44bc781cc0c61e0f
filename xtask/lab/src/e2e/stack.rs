//! The containers: PostgreSQL, Redis, Prometheus, the chosen trace and log backends and the
//! collector in front of them, started through otel-testkit exactly as compose/ describes them
//! (image, published ports, command, environment, config files, readiness), on a network of
//! their own where each answers to its service name, as under compose. Nothing here restates an image, a port or a ready
//! check: the kit (`otel_testkit::compose`) translates a compose service into a `ContainerSpec`;
//! this file picks the services and their readiness, and derives Prometheus' config for the host
//! processes it scrapes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use otel_testkit::compose::interpolate;
use otel_testkit::container::{ContainerSpec, Group, Readiness, Running};
use otel_testkit::prometheus::{self, Prometheus, ScrapeConfig};
use otel_testkit::{LogStore, TraceStore, jaeger, loki, tempo, victorialogs};
use reqwest::Client;
use xtask::compose::{self, AmpelService as _, COLLECTOR, ComposeFile, Service};
use xtask::engine::Variant;
use xtask::flags::{LogBackend, TraceBackend};

/// Cold starts include PostgreSQL's initdb; a missing image fails long before this.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// The Prometheus configuration the e2e derives from, and where its rule files live.
const PROMETHEUS_CONFIG: &str = "observability/prometheus/prometheus.yml";
const PROMETHEUS_RULES: &str = "observability/prometheus/rules";
/// The compose service names of the parts the e2e queries.
const PROMETHEUS: &str = "prometheus";
pub(super) const ALERTMANAGER: &str = "alertmanager";
const DATASTORES: [&str; 2] = ["postgres", "redis"];
/// The collector's settings that name a store, and which store each names.
const COLLECTOR_TRACES: &str = "OTELCOL_TRACES_ENDPOINT";
const COLLECTOR_LOGS: &str = "OTELCOL_LOGS_ENDPOINT";

/// A trace backend: its compose service, its query API's port, and its client.
type TraceBackendParts = (&'static str, u16, fn(Client, String) -> Box<dyn TraceStore>);

pub(super) fn trace_backend(choice: TraceBackend) -> TraceBackendParts {
    match choice {
        TraceBackend::Tempo => ("tempo", tempo::API_PORT, |http, url| {
            Box::new(tempo::Tempo::new(http, url))
        }),
        TraceBackend::Jaeger => ("jaeger", jaeger::API_PORT, |http, url| {
            Box::new(jaeger::Jaeger::new(http, url))
        }),
    }
}

/// A log backend: its compose service, its query API's port, and its client, as a [`LogStore`]
/// and, when it is Loki, as itself (for LogQL).
type LogBackendParts = (
    &'static str,
    u16,
    fn(Client, String) -> (Box<dyn LogStore>, Option<loki::Loki>),
);

fn log_backend(choice: LogBackend) -> LogBackendParts {
    match choice {
        LogBackend::Loki => ("loki", loki::API_PORT, |http, url| {
            let loki = loki::Loki::new(http, url);
            (Box::new(loki.clone()), Some(loki))
        }),
        LogBackend::Victorialogs => ("victorialogs", victorialogs::API_PORT, |http, url| {
            (Box::new(victorialogs::VictoriaLogs::new(http, url)), None)
        }),
    }
}

/// The compose services a [`Stack`] starts.
fn services(traces: TraceBackend, logs: LogBackend) -> [&'static str; 6] {
    let [postgres, redis] = DATASTORES;
    let (traces, logs) = (trace_backend(traces).0, log_backend(logs).0);
    [postgres, redis, PROMETHEUS, traces, logs, COLLECTOR]
}

/// How fast the stack's Prometheus runs.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// As observability/ configures it.
    Shipped,
    /// Scraping and evaluating every second, the rules' windows and `for:` divided by the scale
    /// (`otel_testkit::prometheus::rules::compress`): for the live alert test.
    Compressed(u32),
}

/// The running backends and how to reach them.
pub struct Stack {
    containers: Group,
    /// The host's address on the containers' bridge network (see `Running::gateway`). The apps
    /// listen on it for the test's duration so that Prometheus, in a container, can scrape them,
    /// while staying off the machine's external interfaces.
    pub host_ip: IpAddr,
    /// compose.yaml with compose.peers.yaml laid over it: every service either variant has.
    model: ComposeFile,
    pub prometheus: Prometheus,
    /// Prometheus' configuration: observability/'s, with the `api` and `worker` jobs pointed at
    /// each run's host processes and the exporters' jobs left out (the e2e starts no exporter).
    scrape: ScrapeConfig,
    pub traces: Box<dyn TraceStore>,
    pub trace_service: &'static str,
    pub logs: Box<dyn LogStore>,
    pub log_service: &'static str,
    /// `logs`' client again when the store is Loki: for LogQL (the dashboards' log panels).
    pub loki: Option<loki::Loki>,
}

impl Stack {
    /// The images `start` runs, for a test to check they are there before it starts.
    #[cfg(test)]
    pub fn images(traces: TraceBackend, logs: LogBackend) -> anyhow::Result<Vec<String>> {
        let model = Variant::Peers.model()?;
        let services = services(traces, logs);
        services
            .iter()
            .map(|name| Ok(spec(&model, name, true)?.image()))
            .collect()
    }

    /// Starts every container at once and waits until each is ready.
    pub async fn start(traces: TraceBackend, logs: LogBackend) -> anyhow::Result<Self> {
        Self::start_with(traces, logs, Clock::Shipped).await
    }

    /// [`Stack::start`] with Prometheus on the given clock.
    pub async fn start_with(
        traces: TraceBackend,
        logs: LogBackend,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let model = Variant::Peers.model()?;
        let root = xtask::util::project_root();
        let mut template = std::fs::read_to_string(root.join(PROMETHEUS_CONFIG))
            .with_context(|| format!("read {PROMETHEUS_CONFIG}"))?;
        if let Clock::Compressed(_) = clock {
            template = every_second(&template)
                .with_context(|| format!("set the intervals of {PROMETHEUS_CONFIG}"))?;
        }
        let scrape =
            ScrapeConfig::new(&template, &[PROMETHEUS], &["api", "worker"]).with_context(|| {
                format!("derive Prometheus' configuration from {PROMETHEUS_CONFIG}")
            })?;
        copy_rules(&scrape, &root.join(PROMETHEUS_RULES), clock)
            .with_context(|| format!("copy {PROMETHEUS_RULES}"))?;
        let mut specs = Vec::new();
        for name in services(traces, logs) {
            // Prometheus' folder is mounted, not copied: the scrape targets change while it runs.
            let spec = spec(&model, name, name != PROMETHEUS)?;
            specs.push(match name {
                PROMETHEUS => (
                    name,
                    spec.mount_ro(scrape.dir().path(), prometheus::CONFIG_DIR),
                ),
                COLLECTOR => (name, collector_env(spec, traces, logs)?),
                _ => (name, spec),
            });
        }
        let containers = start_containers(specs).await?;
        let http = Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("build the HTTP client")?;
        let url = |(service, port): (&str, u16)| {
            containers
                .url(service, port)
                .context("compose/ must publish it: the e2e reaches it there")
        };
        let prometheus = Prometheus::new(http.clone(), url((PROMETHEUS, prometheus::API_PORT))?)?;
        let (trace_service, trace_port, trace_store) = trace_backend(traces);
        let (log_service, log_port, log_clients) = log_backend(logs);
        let (log_store, loki) = log_clients(http.clone(), url((log_service, log_port))?);
        Ok(Self {
            host_ip: containers.gateway(),
            traces: trace_store(http, url((trace_service, trace_port))?),
            trace_service,
            logs: log_store,
            log_service,
            loki,
            containers,
            model,
            prometheus,
            scrape,
        })
    }

    /// Starts Alertmanager as compose runs it, with `env` laid over compose's environment (its
    /// receivers and timings), and returns the URL of its API.
    pub async fn add_alertmanager(&mut self, env: &[(&str, String)]) -> anyhow::Result<String> {
        let service = find(&self.model, ALERTMANAGER)?;
        let mut spec = spec(&self.model, ALERTMANAGER, true)?;
        for (key, value) in env {
            // A variable compose does not set would be ignored: it was renamed, say.
            anyhow::ensure!(
                service.environment.contains_key(*key),
                "compose's {ALERTMANAGER} service sets no {key}"
            );
            spec = spec.env(*key, value);
        }
        let port = service
            .published_ports()?
            .first()
            .map(|port| port.container)
            .with_context(|| format!("compose/ publishes no port of {ALERTMANAGER}"))?;
        self.containers.add(ALERTMANAGER, spec).await.context(
            "start Alertmanager: without a registry, build its local image (`bash .ci/images.sh`, \
             then `source .ci/images.env`)",
        )?;
        self.containers.url(ALERTMANAGER, port)
    }

    /// The environment compose gives `service` (`api` or `worker`), pointed at this stack: every
    /// `//name:port` and `@name:port` of a started service (the collector's included) becomes
    /// its published address.
    pub fn app_env(&self, service: &str) -> anyhow::Result<Vec<(String, String)>> {
        let app = find(&self.model, service)?;
        let lookup = |key: &str| std::env::var(key).ok();
        Ok(app
            .environment
            .keys()
            // Listen addresses are container addresses (0.0.0.0:PORT); the caller picks free
            // ones on the host.
            .filter(|key| !key.ends_with("_LISTEN_ADDR"))
            .filter_map(|key| {
                let value = interpolate(&app.env(key)?, lookup);
                let value = self.containers.rewrite(&value);
                Some((key.clone(), value))
            })
            .collect())
    }

    /// Adds scrape targets (job `api` or `worker`, labelled `e2e_run`) and reloads Prometheus.
    pub async fn scrape(&self, targets: &[(&str, SocketAddr)], run: &str) -> anyhow::Result<()> {
        self.scrape.add(targets, &[("e2e_run", run)])?;
        self.prometheus.reload().await
    }

    /// Removes the containers, or with `keep` leaves them (and Prometheus' config folder) and
    /// says how to remove them.
    pub async fn stop(self, keep: bool) {
        if keep {
            eprintln!(
                "--keep: prometheus config in {}",
                self.scrape.keep().display()
            );
            self.containers.keep();
        } else {
            self.containers.stop().await;
        }
    }

    /// The container of compose service `name`, to halt, kill or resume it: the others reach
    /// it by name throughout, the host at the same port.
    pub fn container(&mut self, name: &str) -> anyhow::Result<&mut Running> {
        self.containers
            .get_mut(name)
            .with_context(|| format!("the stack runs no {name}"))
    }

    /// Whether compose gives `service` a named volume: its data is on disk and outlives a
    /// restart of its process (a store without one keeps it in memory).
    pub fn keeps_data(&self, service: &str) -> anyhow::Result<bool> {
        let service = find(&self.model, service)?;
        Ok(service.volumes.len() > service.bind_mounts(&compose::dir()).len())
    }
}

/// PostgreSQL and Redis alone, started from compose/ like the e2e's, for `cargo xtask test` when
/// no `DATABASE_URL`/`REDIS_URL` is given.
pub struct Datastores {
    containers: Group,
    /// compose's api `DATABASE_URL`, pointed at the published port.
    pub database_url: String,
    /// compose's api `REDIS_URL`, pointed at the published port.
    pub redis_url: String,
}

impl Datastores {
    pub async fn start() -> anyhow::Result<Self> {
        let model = Variant::Peers.model()?;
        let api = find(&model, "api")?;
        let url = |key: &str| {
            api.env(key)
                .with_context(|| format!("the api service of {} sets no {key}", compose::MAIN))
        };
        let (database_url, redis_url) = (url("DATABASE_URL")?, url("REDIS_URL")?);
        let mut specs = Vec::new();
        for name in DATASTORES {
            specs.push((name, spec(&model, name, true)?));
        }
        let containers = start_containers(specs).await?;
        Ok(Self {
            database_url: containers.rewrite(&database_url),
            redis_url: containers.rewrite(&redis_url),
            containers,
        })
    }

    pub async fn stop(self) {
        self.containers.stop().await;
    }
}

/// The collector as compose runs it, its exporters pointed at the chosen stores: each setting
/// takes its value from whichever compose variant names that store (compose.yaml names Tempo and
/// Loki, the peers Jaeger and VictoriaLogs); the stores answer to those names on the stack's
/// network.
pub(super) fn collector_env(
    mut spec: ContainerSpec,
    traces: TraceBackend,
    logs: LogBackend,
) -> anyhow::Result<ContainerSpec> {
    let variants = [Variant::Grafana.model()?, Variant::Peers.model()?];
    for (key, store) in [
        (COLLECTOR_TRACES, trace_backend(traces).0),
        (COLLECTOR_LOGS, log_backend(logs).0),
    ] {
        let endpoint = variants
            .iter()
            .filter_map(|variant| variant.services.get(COLLECTOR)?.env(key))
            .find(|value| value.contains(&format!("//{store}:")))
            .with_context(|| {
                format!("no {key} of the {COLLECTOR} service in compose/ names {store}")
            })?;
        spec = spec.env(key, endpoint);
    }
    Ok(spec)
}

/// Prometheus' configuration `template` scraping and evaluating every second.
fn every_second(template: &str) -> anyhow::Result<String> {
    let mut config: serde_yaml::Value = serde_yaml::from_str(template)?;
    let global = config
        .get_mut("global")
        .and_then(serde_yaml::Value::as_mapping_mut)
        .context("no `global:` section")?;
    for key in ["scrape_interval", "scrape_timeout", "evaluation_interval"] {
        global.insert(key.into(), "1s".into());
    }
    Ok(serde_yaml::to_string(&config)?)
}

/// The rule files into Prometheus' folder, as they are or on a compressed clock.
fn copy_rules(scrape: &ScrapeConfig, rules: &std::path::Path, clock: Clock) -> anyhow::Result<()> {
    let Clock::Compressed(scale) = clock else {
        return scrape.dir().copy_files(rules, "rules");
    };
    for entry in std::fs::read_dir(rules)? {
        let path = entry?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        let compressed = otel_testkit::prometheus::rules::compress(&text, scale)
            .with_context(|| format!("compress the clock of {}", path.display()))?;
        scrape.dir().write(
            std::path::Path::new("rules").join(name),
            compressed.as_bytes(),
        )?;
    }
    Ok(())
}

/// The collector's config, as compose mounts it.
pub(crate) const COLLECTOR_CONFIG: &str = "observability/otel-collector/config.yaml";

/// The port of the collector's own metrics, as its config (`config`, the text) sets it.
pub(crate) fn collector_metrics_port(config: &str) -> anyhow::Result<u16> {
    let config: serde_yaml::Value = serde_yaml::from_str(config)?;
    let reader = &config["service"]["telemetry"]["metrics"]["readers"][0];
    reader["pull"]["exporter"]["prometheus"]["port"]
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .with_context(|| {
            format!("{COLLECTOR_CONFIG}: no service.telemetry.metrics pull reader port")
        })
}

/// Starts the services' containers; an error says how to get images where no registry is.
pub(super) async fn start_containers(specs: Vec<(&str, ContainerSpec)>) -> anyhow::Result<Group> {
    Group::start_on_network(specs).await.context(
        "start the containers: without a registry, build local images (`bash .ci/images.sh`, \
         then `source .ci/images.env`) and pick backends that have one \
         (--traces jaeger --logs victorialogs, or AMPEL_E2E_TRACES / AMPEL_E2E_LOGS)",
    )
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

/// Compose service → container, as the kit translates it (with `copy_mounts`, its bind-mounted
/// files copied in), named for Ampel's e2e, with compose's readiness (its healthcheck, or
/// `x-ampel: ready-from-host:`).
pub(super) fn spec(
    model: &ComposeFile,
    name: &str,
    copy_mounts: bool,
) -> anyhow::Result<ContainerSpec> {
    let service = find(model, name)?;
    let spec = service
        .container_spec(name, copy_mounts.then(compose::dir).as_deref())?
        .name_prefix(format!("ampel-e2e-{name}"))
        .ready_within(READY_DEADLINE);
    Ok(spec.readiness(match service.readiness(name)? {
        compose::Readiness::Exec(argv) => Readiness::Exec(argv),
        compose::Readiness::HostHttp { port, path } => Readiness::Http { port, path },
    }))
}
