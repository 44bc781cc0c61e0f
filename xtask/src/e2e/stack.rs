//! The containers: PostgreSQL, Redis, Prometheus and the chosen trace and log backends, started
//! with testcontainers exactly as compose/ describes them (image, published ports, command,
//! environment, config files). Nothing here restates an image or a port.
//!
//! Two Podman 4.3 quirks shape this file (see the shared containers notes): testcontainers cannot
//! read Podman's published ports (they come back with an empty host IP), so they are read with
//! bollard's inspect instead; and Podman runs no healthchecks, so readiness is polled here, over
//! HTTP for the backends and by running compose's own healthcheck command for the datastores.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backon::Retryable as _;
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::PortBinding;
use testcontainers::bollard::query_parameters::RemoveContainerOptions;
use testcontainers::core::{AccessMode, CmdWaitFor, ExecCommand, IntoContainerPort as _, Mount};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

use super::backends::{
    LogStore, TraceStore, jaeger, loki, prometheus::Prometheus, tempo, victorialogs,
};
use super::poll;
use crate::compose::{self, ComposeFile, Service};
use crate::flags::{LogBackend, TraceBackend};

/// Cold starts include PostgreSQL's initdb; a missing image fails long before this.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// The Prometheus configuration the e2e derives from, and where its rule files live.
const PROMETHEUS_CONFIG: &str = "observability/prometheus/prometheus.yml";
const PROMETHEUS_RULES: &str = "observability/prometheus/rules";
/// Where compose mounts the Prometheus configuration (its `--config.file` points inside).
const PROMETHEUS_CONFIG_DIR: &str = "/etc/prometheus";

/// The running backends and how to reach them.
pub struct Stack {
    containers: Vec<(String, ContainerAsync<GenericImage>)>,
    /// The host's address on the containers' bridge network (the bridge gateway). The apps
    /// listen on it for the test's duration so that Prometheus, in a container, can scrape
    /// them. Why this and not a host name: Podman 4.3 resolves `host.containers.internal` to this
    /// same address but does not support `host-gateway`, while Docker has no
    /// `host.containers.internal` and needs `host-gateway` for `host.docker.internal`. The gateway
    /// address works on both engines on Linux, needs no name resolution in the container, and,
    /// unlike 0.0.0.0, keeps the apps off the machine's external interfaces. A process bound to
    /// 127.0.0.1 is NOT reachable from a container (checked on Podman: connection refused).
    pub host_ip: IpAddr,
    /// `service -> container port -> 127.0.0.1:published`, for rewriting compose's URLs.
    published: HashMap<String, HashMap<u16, SocketAddr>>,
    main: ComposeFile,
    peers: ComposeFile,
    pub prometheus: Prometheus,
    scrape: Scrape,
    pub traces: Box<dyn TraceStore>,
    pub trace_service: &'static str,
    pub logs: Box<dyn LogStore>,
    pub log_service: &'static str,
}

/// How to tell that a service is ready.
enum Readiness {
    /// `GET path` on the given container port answers 2xx.
    Http { port: u16, path: &'static str },
    /// Compose's healthcheck command, run inside the container, exits 0.
    Healthcheck,
}

impl Stack {
    /// Starts every container at once and waits until each is ready.
    pub async fn start(traces: TraceBackend, logs: LogBackend) -> anyhow::Result<Self> {
        let main = ComposeFile::read(compose::MAIN)?;
        let peers = ComposeFile::read(compose::PEERS)?;
        let (trace_service, trace_port, trace_ready) = match traces {
            TraceBackend::Tempo => (tempo::SERVICE, tempo::API_PORT, tempo::READY_PATH),
            TraceBackend::Jaeger => (jaeger::SERVICE, jaeger::API_PORT, jaeger::READY_PATH),
        };
        let (log_service, log_port, log_ready) = match logs {
            LogBackend::Loki => (loki::SERVICE, loki::API_PORT, loki::READY_PATH),
            LogBackend::Victorialogs => (
                victorialogs::SERVICE,
                victorialogs::API_PORT,
                victorialogs::READY_PATH,
            ),
        };
        let scrape = Scrape::new()?;
        let services = [
            ("postgres", Readiness::Healthcheck),
            ("redis", Readiness::Healthcheck),
            (
                super::backends::prometheus::SERVICE,
                Readiness::Http {
                    port: super::backends::prometheus::API_PORT,
                    path: super::backends::prometheus::READY_PATH,
                },
            ),
            (
                trace_service,
                Readiness::Http {
                    port: trace_port,
                    path: trace_ready,
                },
            ),
            (
                log_service,
                Readiness::Http {
                    port: log_port,
                    path: log_ready,
                },
            ),
        ];
        let docker = Docker::connect_with_defaults().context(
            "connect to the container engine: set DOCKER_HOST (Podman: unix:///run/podman/podman.sock, started by .ci/podman.sh)",
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("build the HTTP client")?;

        let started = futures::future::join_all(services.iter().map(|(name, readiness)| {
            let service = find(&main, &peers, name);
            let docker = &docker;
            let http = &http;
            let scrape = &scrape;
            async move {
                let service = service?;
                start_one(name, service, readiness, scrape, docker, http)
                    .await
                    .with_context(|| format!("start {name}"))
            }
        }))
        .await;
        // Keep every container that did start, so they are removed on the way out even when
        // another one failed.
        let mut containers = Vec::new();
        let mut published = HashMap::new();
        let mut gateway = None;
        let mut errors = Vec::new();
        for result in started {
            match result {
                Ok(one) => {
                    gateway = gateway.or(one.gateway);
                    published.insert(one.name.clone(), one.ports);
                    containers.push((one.name, one.container));
                }
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        if !errors.is_empty() {
            remove(containers).await;
            anyhow::bail!("{}", errors.join("\n"));
        }
        let Some(host_ip) = gateway else {
            remove(containers).await;
            anyhow::bail!(
                "no container reported a bridge gateway address: is the engine's default network a bridge?"
            );
        };
        let url = |service: &str, port: u16| -> anyhow::Result<String> {
            let address = published
                .get(service)
                .and_then(|ports| ports.get(&port))
                .with_context(|| format!("compose/ does not publish port {port} of {service}: the e2e queries it there"))?;
            Ok(format!("http://{address}"))
        };
        let prometheus = Prometheus::new(
            http.clone(),
            url(
                super::backends::prometheus::SERVICE,
                super::backends::prometheus::API_PORT,
            )?,
        )?;
        let trace_url = url(trace_service, trace_port)?;
        let traces: Box<dyn TraceStore> = match traces {
            TraceBackend::Tempo => Box::new(tempo::Tempo::new(http.clone(), trace_url)),
            TraceBackend::Jaeger => Box::new(jaeger::Jaeger::new(http.clone(), trace_url)),
        };
        let log_url = url(log_service, log_port)?;
        let logs: Box<dyn LogStore> = match logs {
            LogBackend::Loki => Box::new(loki::Loki::new(http.clone(), log_url)),
            LogBackend::Victorialogs => {
                Box::new(victorialogs::VictoriaLogs::new(http.clone(), log_url))
            }
        };
        Ok(Self {
            containers,
            host_ip,
            published,
            main,
            peers,
            prometheus,
            scrape,
            traces,
            trace_service,
            logs,
            log_service,
        })
    }

    /// The environment compose gives `service` (`api` or `worker`), pointed at this stack:
    /// every `//name:port` and `@name:port` of a started service becomes its published address,
    /// and the OTLP endpoints are the ones compose uses for the chosen backends.
    pub fn app_env(&self, service: &str) -> anyhow::Result<Vec<(String, String)>> {
        let app = find(&self.main, &self.peers, service)?;
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
            let endpoint = [&self.main, &self.peers]
                .iter()
                .filter_map(|file| file.services.get(service)?.env(key))
                .find(|value| value.contains(&format!("//{backend}:")))
                .with_context(|| {
                    format!(
                        "no {key} pointing at {backend} in the {service} service of compose/*.yaml"
                    )
                })?;
            env.retain(|(name, _)| name != key);
            env.push((key.to_owned(), endpoint));
        }
        for (_, value) in &mut env {
            for (name, ports) in &self.published {
                for (port, address) in ports {
                    for prefix in ["//", "@"] {
                        *value = value.replace(
                            &format!("{prefix}{name}:{port}"),
                            &format!("{prefix}{address}"),
                        );
                    }
                }
            }
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
            eprintln!("kept (--keep); remove them with `docker rm -f <id>`:");
            for (name, container) in &self.containers {
                let ports: Vec<String> = self
                    .published
                    .get(name)
                    .into_iter()
                    .flatten()
                    .map(|(port, address)| format!("{port}->{address}"))
                    .collect();
                eprintln!("  {name:<13} {} {}", container.id(), ports.join(" "));
            }
            eprintln!("  prometheus config: {}", self.scrape.dir.keep().display());
            // Forgetting the handles skips their Drop, which would remove the containers.
            for (_, container) in self.containers {
                std::mem::forget(container);
            }
        } else {
            remove(self.containers).await;
        }
    }
}

/// PostgreSQL and Redis alone, started from compose/ like the e2e's, for `cargo xtask test` when
/// no `DATABASE_URL`/`REDIS_URL` is given.
pub struct Datastores {
    containers: Vec<(String, ContainerAsync<GenericImage>)>,
    /// compose's api `DATABASE_URL`, pointed at the published port.
    pub database_url: String,
    /// compose's api `REDIS_URL`, pointed at the published port.
    pub redis_url: String,
}

impl Datastores {
    pub async fn start() -> anyhow::Result<Self> {
        let main = ComposeFile::read(compose::MAIN)?;
        let peers = ComposeFile::read(compose::PEERS)?;
        let docker = Docker::connect_with_defaults().context(
            "connect to the container engine: set DOCKER_HOST (Podman: unix:///run/podman/podman.sock, started by .ci/podman.sh), or set DATABASE_URL and REDIS_URL to servers you run",
        )?;
        let http = reqwest::Client::new();
        // Only Prometheus reads it; the datastores ignore it.
        let scrape = Scrape::new()?;
        let started = futures::future::join_all(["postgres", "redis"].map(|name| {
            let (main, peers, docker, http, scrape) = (&main, &peers, &docker, &http, &scrape);
            async move {
                let service = find(main, peers, name)?;
                start_one(name, service, &Readiness::Healthcheck, scrape, docker, http)
                    .await
                    .with_context(|| format!("start {name}"))
            }
        }))
        .await;
        let mut containers = Vec::new();
        let mut published = Vec::new();
        let mut errors = Vec::new();
        for result in started {
            match result {
                Ok(one) => {
                    published.extend(
                        one.ports
                            .iter()
                            .map(|(port, address)| (one.name.clone(), *port, *address)),
                    );
                    containers.push((one.name, one.container));
                }
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        if !errors.is_empty() {
            remove(containers).await;
            anyhow::bail!("{}", errors.join("\n"));
        }
        let api = find(&main, &peers, "api")?;
        let url = |key: &str| -> anyhow::Result<String> {
            let mut value = api
                .env(key)
                .with_context(|| format!("the api service of {} sets no {key}", compose::MAIN))?;
            for (name, port, address) in &published {
                value = value.replace(&format!("@{name}:{port}"), &format!("@{address}"));
                value = value.replace(&format!("//{name}:{port}"), &format!("//{address}"));
            }
            Ok(value)
        };
        let (database_url, redis_url) = match (url("DATABASE_URL"), url("REDIS_URL")) {
            (Ok(database_url), Ok(redis_url)) => (database_url, redis_url),
            (Err(err), _) | (_, Err(err)) => {
                remove(containers).await;
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
        remove(self.containers).await;
    }
}

/// A compose service from the main file, or else from the peers override.
fn find<'a>(
    main: &'a ComposeFile,
    peers: &'a ComposeFile,
    name: &str,
) -> anyhow::Result<&'a Service> {
    main.services
        .get(name)
        .filter(|service| service.image.is_some())
        .or_else(|| peers.services.get(name))
        .with_context(|| {
            format!(
                "no service {name:?} in {} or {}",
                compose::MAIN,
                compose::PEERS
            )
        })
}

async fn remove(containers: Vec<(String, ContainerAsync<GenericImage>)>) {
    futures::future::join_all(containers.into_iter().map(|(name, container)| async move {
        if let Err(err) = container.rm().await {
            eprintln!("warning: could not remove the {name} container: {err}");
        }
    }))
    .await;
}

/// One started, ready container.
struct Started {
    name: String,
    container: ContainerAsync<GenericImage>,
    ports: HashMap<u16, SocketAddr>,
    gateway: Option<IpAddr>,
}

async fn start_one(
    name: &str,
    service: &Service,
    readiness: &Readiness,
    scrape: &Scrape,
    docker: &Docker,
    http: &reqwest::Client,
) -> anyhow::Result<Started> {
    let since = Instant::now();
    let image = service
        .resolved_image()
        .with_context(|| format!("compose service {name} has no image"))?;
    // The tag follows the last ':' after the last '/' (a registry may carry a port).
    let (repository, tag) = match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository.to_owned(), tag.to_owned()),
        _ => (image.clone(), "latest".to_owned()),
    };
    let container_ports: Vec<u16> = service
        .published_ports()?
        .iter()
        .map(|port| port.container)
        .collect();
    eprintln!("starting {name} ({image})");

    // Podman 4.3 picks a published port when it creates a container and binds it only when it
    // starts it: another process, or a container started beside this one, can take the port in
    // between, and the start fails with "address already in use". Only that is tried again, with
    // new ports; the created container of the failed try is removed first (same name).
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let container_name = format!(
        "ampel-e2e-{name}-{}-{}",
        std::process::id(),
        STARTED.fetch_add(1, Ordering::Relaxed)
    );
    let build = || {
        let mut generic = GenericImage::new(repository.clone(), tag.clone());
        for port in &container_ports {
            generic = generic.with_exposed_port(port.tcp());
        }
        let mut request = generic.with_startup_timeout(READY_DEADLINE);
        for key in service.environment.keys() {
            let value = service.env(key).unwrap_or_default();
            request = request.with_env_var(
                key,
                compose::interpolate(&value, |key| std::env::var(key).ok()),
            );
        }
        if let Some(command) = &service.command {
            request = request.with_cmd(command_argv(command));
        }
        if name == super::backends::prometheus::SERVICE {
            // A folder mount, not a copy: the scrape targets change while Prometheus runs.
            request = request.with_mount(
                Mount::bind_mount(scrape.dir.path().to_string_lossy(), PROMETHEUS_CONFIG_DIR)
                    .with_access_mode(AccessMode::ReadOnly),
            );
        } else {
            for mount in service.bind_mounts() {
                request = request.with_copy_to(mount.target.clone(), mount.source.clone());
            }
        }
        // Published on 127.0.0.1 only, on a port the engine picks: the host alone reaches them, and
        // runs never collide with each other or with a stack from `obs-up`.
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = container_ports
            .iter()
            .map(|port| {
                (
                    format!("{port}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )
            })
            .collect();
        request = request.with_host_config_modifier(move |config| {
            config.publish_all_ports = Some(false);
            config.port_bindings = Some(bindings.clone());
        });
        request.with_container_name(&container_name)
    };
    let start = || async {
        // Before the first try there is nothing to remove: the error (404) says only that.
        let _ = docker
            .remove_container(
                &container_name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        build().start().await
    };
    let container = start
        .retry(
            backon::ConstantBuilder::default()
                .with_delay(Duration::ZERO)
                .with_max_times(2),
        )
        .when(|err| format!("{err:?}").contains("address already in use"))
        .notify(|err, _| {
            eprintln!("{name}: a published port was taken before the start ({err}); once more");
        })
        .await
        .with_context(|| {
            format!(
                "run {image}: is the image there? Without a registry, build local images \
             (`bash .ci/images.sh`, then `source .ci/images.env`) and pick backends that have one \
             (--traces jaeger --logs victorialogs, or AMPEL_E2E_TRACES / AMPEL_E2E_LOGS)"
            )
        })?;

    let inspect = docker
        .inspect_container(container.id(), None)
        .await
        .with_context(|| format!("inspect the {name} container"))?;
    let settings = inspect.network_settings.unwrap_or_default();
    let mut ports = HashMap::new();
    for port in &container_ports {
        let host_port = settings
            .ports
            .as_ref()
            .and_then(|map| map.get(&format!("{port}/tcp")))
            .and_then(|bindings| {
                bindings
                    .as_ref()?
                    .iter()
                    .find_map(|binding| binding.host_port.as_deref()?.parse::<u16>().ok())
            })
            .with_context(|| format!("{name}: the engine reports no host port for {port}/tcp"))?;
        ports.insert(*port, SocketAddr::from(([127, 0, 0, 1], host_port)));
    }
    let gateway = settings
        .networks
        .unwrap_or_default()
        .values()
        .find_map(|network| {
            network
                .gateway
                .as_deref()
                .filter(|ip| !ip.is_empty())?
                .parse()
                .ok()
        });

    let label = format!("{name} ready");
    let ready = match readiness {
        Readiness::Http { port, path } => {
            let address = ports
                .get(port)
                .with_context(|| format!("compose/ does not publish port {port} of {name}"))?;
            let url = format!("http://{address}{path}");
            poll::until(&label, since, READY_DEADLINE, || async {
                let response = http
                    .get(&url)
                    .send()
                    .await
                    .with_context(|| format!("GET {url}"))?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "GET {url}: {}",
                    response.status()
                );
                Ok(())
            })
            .await
        }
        Readiness::Healthcheck => {
            let argv = service
                .healthcheck_argv()
                .with_context(|| format!("compose service {name} has no healthcheck to poll"))?;
            let container = &container;
            poll::until(&label, since, READY_DEADLINE, || {
                let argv = argv.clone();
                async move {
                    let mut exec = container
                        .exec(
                            ExecCommand::new(argv.clone())
                                .with_cmd_ready_condition(CmdWaitFor::exit()),
                        )
                        .await
                        .with_context(|| format!("exec {argv:?}"))?;
                    let output = exec.stdout_to_vec().await.unwrap_or_default();
                    let code = exec.exit_code().await?;
                    anyhow::ensure!(
                        code == Some(0),
                        "healthcheck {argv:?} exited {code:?}: {}",
                        String::from_utf8_lossy(&output).trim()
                    );
                    Ok(())
                }
            })
            .await
        }
    };
    if let Err(timed_out) = ready {
        let logs = container.stderr_to_vec().await.unwrap_or_default();
        let tail: Vec<&str> = std::str::from_utf8(&logs)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect();
        anyhow::bail!(
            "{name} not ready after {}s: {}\n  its last log lines:\n    {}",
            READY_DEADLINE.as_secs(),
            timed_out.last_seen,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
        );
    }
    eprintln!("{name} ready in {:.1}s", since.elapsed().as_secs_f64());
    Ok(Started {
        name: name.to_owned(),
        container,
        ports,
        gateway,
    })
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
        let root = crate::util::project_root();
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
                name == super::backends::prometheus::SERVICE
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
