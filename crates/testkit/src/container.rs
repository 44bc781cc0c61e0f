//! Containers for tests: describe one with a [`ContainerSpec`], [`start`] it, reach it through
//! [`Running`]. Works with Docker and with Podman's Docker-compatible API (`DOCKER_HOST`).
//!
//! What shapes this module, so that the same code runs on both engines:
//!
//! - **Ports are read by inspecting the container.** Podman (4.3 at least) reports published
//!   ports with an empty host IP, and testcontainers' own port lookup (`get_host_port_ipv4`,
//!   `ports`, its HTTP wait strategy) then finds none ("does not expose port"). [`start`] reads
//!   `NetworkSettings.Ports["<port>/tcp"][*].HostPort` through bollard instead.
//! - **Ports are published on 127.0.0.1, on host ports the engine picks.** Only the host reaches
//!   them, and parallel tests never collide over a fixed port. Binding 0.0.0.0 explicitly makes
//!   connections hang on Podman; 127.0.0.1 forwards correctly on both engines.
//! - **"address already in use" is tried again.** Podman picks the host port when it creates
//!   the container and binds it only when it starts it, so another process (or a container
//!   started beside this one) can take it in between. Only that error is retried, with the
//!   half-created container removed first.
//! - **Readiness is polled here, never left to the engine.** Podman schedules healthchecks
//!   with systemd timers; without systemd (most CI containers) they never run, a container stays
//!   `starting` forever, and a health-status wait hangs. [`Readiness::Exec`] runs the check
//!   itself inside the container until it passes; [`Readiness::Http`] asks from the host, for
//!   images that have nothing to run a check with (distroless).
//! - **Containers reach the host at [`Running::gateway`],** the bridge network's gateway
//!   address: `host.containers.internal` exists only on Podman, `host.docker.internal` needs
//!   `host-gateway`, which Podman 4.3 does not support, and a process bound to 127.0.0.1 is not
//!   reachable from a container at all. Bind what containers must reach to the gateway address.
//!
//! Tests that need an engine call [`require_engine`] first: without one it skips them with the
//! reason, except under `CI=true`, where a missing engine or image fails the test.
//!
//! [`Group`] starts several named containers at once (a compose file's services) and rewrites
//! references to them (`//name:port`) to host addresses; [`SharedDir`] is a host folder a
//! container mounts while the host rewrites its files.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backon::Retryable as _;
use futures::StreamExt as _;
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::PortBinding;
use testcontainers::bollard::query_parameters::{LogsOptions, RemoveContainerOptions};
use testcontainers::core::{
    AccessMode, CmdWaitFor, CopyDataSource, ExecCommand, IntoContainerPort as _, Mount,
};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

use crate::eventually::eventually;

mod group;
mod shared_dir;

pub use group::Group;
pub use shared_dir::SharedDir;

/// How long a container may take to become ready unless its spec says otherwise.
pub const READY_DEADLINE: Duration = Duration::from_secs(120);
/// How many of its last log lines a container that never became ready shows.
const LOG_TAIL: usize = 15;

/// How to tell that a started container serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// This command, run inside the container (a healthcheck), exits 0.
    Exec(Vec<String>),
    /// `GET path` on this container port, from the host, answers 2xx. For images that cannot
    /// run a check (no shell, no probe flag); the port must be published.
    Http { port: u16, path: String },
}

impl Readiness {
    /// `GET path` on `port` inside the container answers 2xx, asked with whichever of wget, curl
    /// or bash's `/dev/tcp` the image has (busybox, distro or slim images alike).
    pub fn http_inside(port: u16, path: &str) -> Self {
        let url = format!("http://127.0.0.1:{port}{path}");
        let script = format!(
            "wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url} || \
             bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && \
             printf \"GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n\" >&3 && \
             head -n 1 <&3 | grep -q \" 200 \"'"
        );
        Self::Exec(vec!["sh".into(), "-c".into(), script])
    }
}

/// What to start: image, published ports, environment, command, files, readiness.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    repository: String,
    tag: String,
    ports: Vec<u16>,
    env: Vec<(String, String)>,
    cmd: Option<Vec<String>>,
    copies: Vec<(CopyDataSource, String)>,
    mounts: Vec<(PathBuf, String)>,
    readiness: Option<Readiness>,
    name_prefix: String,
    ready_deadline: Duration,
}

impl ContainerSpec {
    /// A container of `image` (`repository[:tag]`, `latest` when there is no tag) that is ready
    /// once started, until [`ContainerSpec::readiness`] says more.
    pub fn new(image: &str) -> Self {
        // The tag follows the last ':' after the last '/' (a registry may carry a port).
        let (repository, tag) = match image.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, tag),
            _ => (image, "latest"),
        };
        Self {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            ports: Vec::new(),
            env: Vec::new(),
            cmd: None,
            copies: Vec::new(),
            mounts: Vec::new(),
            readiness: None,
            name_prefix: "otel-testkit".to_owned(),
            ready_deadline: READY_DEADLINE,
        }
    }

    /// `repository:tag`.
    pub fn image(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// The container ports that are published (TCP).
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Publishes a container port (TCP) on 127.0.0.1, on a host port the engine picks.
    pub fn port(mut self, port: u16) -> Self {
        if !self.ports.contains(&port) {
            self.ports.push(port);
        }
        self
    }

    /// Sets `key` (again: the last value set wins).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(set, _)| *set != key);
        self.env.push((key, value.into()));
        self
    }

    /// The arguments given to the image's entrypoint (replacing its default command).
    pub fn cmd(mut self, argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.cmd = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// Copies a host file or folder to `target` before the container starts.
    pub fn copy_file(mut self, source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        self.copies
            .push((CopyDataSource::File(source.into()), target.into()));
        self
    }

    /// Writes `contents` to the file `target` (mode 0644) before the container starts.
    pub fn copy_bytes(mut self, contents: impl Into<Vec<u8>>, target: impl Into<String>) -> Self {
        self.copies
            .push((CopyDataSource::Data(contents.into()), target.into()));
        self
    }

    /// Bind-mounts a host folder read-only at `target`: unlike a copy, later changes on the
    /// host are seen inside (a configuration that is edited and reloaded while it runs).
    pub fn mount_ro(mut self, source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        self.mounts.push((source.into(), target.into()));
        self
    }

    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// The start of the container's name (`{prefix}-{pid}-{n}`), to tell whose containers run.
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }

    /// How long readiness may take from the start (default [`READY_DEADLINE`]).
    pub fn ready_within(mut self, deadline: Duration) -> Self {
        self.ready_deadline = deadline;
        self
    }

    fn request(&self, name: &str) -> testcontainers::ContainerRequest<GenericImage> {
        let mut image = GenericImage::new(self.repository.clone(), self.tag.clone());
        for port in &self.ports {
            image = image.with_exposed_port(port.tcp());
        }
        let mut request = image.with_startup_timeout(self.ready_deadline);
        for (key, value) in &self.env {
            request = request.with_env_var(key, value);
        }
        if let Some(cmd) = &self.cmd {
            request = request.with_cmd(cmd.clone());
        }
        for (source, target) in &self.copies {
            request = request.with_copy_to(target.clone(), source.clone());
        }
        for (source, target) in &self.mounts {
            request = request.with_mount(
                Mount::bind_mount(source.to_string_lossy(), target)
                    .with_access_mode(AccessMode::ReadOnly),
            );
        }
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = self
            .ports
            .iter()
            .map(|port| {
                let binding = PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                };
                (format!("{port}/tcp"), Some(vec![binding]))
            })
            .collect();
        request
            .with_host_config_modifier(move |config| {
                config.publish_all_ports = Some(false);
                config.port_bindings = Some(bindings.clone());
            })
            .with_container_name(name)
    }
}

/// A started, ready container. Dropping it removes the container (in the background, while a
/// Tokio runtime runs); [`Running::stop`] removes it and waits.
pub struct Running {
    name: String,
    container: ContainerAsync<GenericImage>,
    docker: Docker,
    ports: HashMap<u16, SocketAddr>,
    gateway: IpAddr,
    ip: IpAddr,
}

/// What a command run inside a container did.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// `127.0.0.1:<host port>` where `container_port` is published.
    ///
    /// # Panics
    /// When the spec did not publish `container_port`: a mistake in the test, not a condition.
    pub fn address(&self, container_port: u16) -> SocketAddr {
        *self.ports.get(&container_port).unwrap_or_else(|| {
            panic!(
                "port {container_port} of {} is not published: add it to the spec's ports",
                self.name
            )
        })
    }

    /// `http://127.0.0.1:<host port>` for `container_port` (see [`Running::address`]).
    pub fn url(&self, container_port: u16) -> String {
        format!("http://{}", self.address(container_port))
    }

    /// Where containers reach the host: the bridge network's gateway address.
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// Where other containers reach this one: its address on the bridge network (any of its
    /// ports, published or not; the engine's default network has no names).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Runs `argv` inside the container and waits for it to exit.
    pub async fn exec(&self, argv: &[String]) -> anyhow::Result<ExecOutput> {
        let mut exec = self
            .container
            .exec(ExecCommand::new(argv.to_vec()).with_cmd_ready_condition(CmdWaitFor::exit()))
            .await
            .with_context(|| format!("exec {argv:?} in {}", self.name))?;
        let stdout = exec.stdout_to_vec().await.unwrap_or_default();
        let stderr = exec.stderr_to_vec().await.unwrap_or_default();
        Ok(ExecOutput {
            code: exec.exit_code().await?,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// The container's last `lines` log lines, stdout and stderr interleaved as written.
    pub async fn logs_tail(&self, lines: usize) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let chunks: Vec<_> = self.docker.logs(self.id(), Some(options)).collect().await;
        let text: String = chunks
            .into_iter()
            .map(|chunk| match chunk {
                Ok(output) => String::from_utf8_lossy(&output.into_bytes()).into_owned(),
                Err(err) => format!("(could not read the logs: {err})\n"),
            })
            .collect();
        text.trim_end().to_owned()
    }

    /// Removes the container and waits until it is gone.
    pub async fn stop(self) -> anyhow::Result<()> {
        let name = self.name;
        self.container
            .rm()
            .await
            .with_context(|| format!("remove the container {name}"))
    }

    /// Leaves the container running after the handle goes (to look at it after a test);
    /// returns its id, for `docker rm -f <id>`.
    pub fn keep(self) -> String {
        let id = self.id().to_owned();
        // Forgetting the handle skips its Drop, which would remove the container.
        std::mem::forget(self.container);
        id
    }
}

/// The container engine at `DOCKER_HOST` (Docker's default socket when unset), once it answers.
pub async fn engine() -> anyhow::Result<Docker> {
    let host = std::env::var("DOCKER_HOST");
    let at = host
        .as_deref()
        .unwrap_or("the default socket (DOCKER_HOST is not set)");
    let hint = "start the engine, or set DOCKER_HOST \
                (Podman: unix:///run/podman/podman.sock, served by `podman system service`)";
    let docker = Docker::connect_with_defaults()
        .with_context(|| format!("connect to the container engine at {at}: {hint}"))?;
    docker
        .ping()
        .await
        .with_context(|| format!("the container engine at {at} does not answer: {hint}"))?;
    Ok(docker)
}

/// Whether whoever runs this asked for every check to run: `CI=true`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// For tests that need containers: the engine when it answers and holds every one of `images`;
/// otherwise `None`, after printing why `test` is skipped. Under `CI=true` it panics instead,
/// naming what is missing: a test that needs containers never passes silently there.
pub async fn require_engine(test: &str, images: &[&str]) -> Option<Docker> {
    match missing(images).await {
        Ok(docker) => Some(docker),
        Err(reason) if under_ci() => panic!("{test} cannot run, and CI=true: {reason:#}"),
        Err(reason) => {
            eprintln!("skipped {test}: {reason:#}");
            None
        }
    }
}

async fn missing(images: &[&str]) -> anyhow::Result<Docker> {
    let docker = engine().await?;
    for image in images {
        docker.inspect_image(image).await.with_context(|| {
            format!(
                "image {image} is not on this machine: pull it, or point the test at one that is"
            )
        })?;
    }
    Ok(docker)
}

/// Starts `spec` and waits until it is ready. On failure the container is removed and the
/// error shows what the last readiness check saw and the container's last log lines.
pub async fn start(spec: &ContainerSpec) -> anyhow::Result<Running> {
    let since = Instant::now();
    let image = spec.image();
    let docker = engine().await?;
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{}-{}-{}",
        spec.name_prefix,
        std::process::id(),
        STARTED.fetch_add(1, Ordering::Relaxed)
    );
    let attempt = || async {
        // Before the first try there is nothing to remove: the error (404) says only that.
        let _ = docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        spec.request(&name).start().await
    };
    let container = attempt
        .retry(
            backon::ConstantBuilder::new()
                .with_delay(Duration::ZERO)
                .with_max_times(2),
        )
        .when(|err| format!("{err:?}").contains("address already in use"))
        .notify(|err, _| {
            eprintln!("{name}: a published port was taken before the start ({err}); once more")
        })
        .await
        .with_context(|| {
            format!("run {image}: is the image on this machine, or can it be pulled?")
        })?;
    let running = match inspect(&docker, &name, container, spec).await {
        Ok(running) => running,
        Err((container, err)) => {
            let _ = container.rm().await;
            return Err(err);
        }
    };
    if let Some(readiness) = &spec.readiness {
        let label = format!("{name} ready");
        let ready = eventually(&label, since, spec.ready_deadline, || {
            probe(&running, readiness)
        })
        .await;
        if let Err(timed_out) = ready {
            let tail = running.logs_tail(LOG_TAIL).await.replace('\n', "\n    ");
            let _ = running.stop().await;
            anyhow::bail!("{image}: {timed_out}\n  its last log lines:\n    {tail}");
        }
    }
    Ok(running)
}

/// Reads the published ports and the gateway; hands the container back on failure so it can
/// be removed.
async fn inspect(
    docker: &Docker,
    name: &str,
    container: ContainerAsync<GenericImage>,
    spec: &ContainerSpec,
) -> Result<Running, (ContainerAsync<GenericImage>, anyhow::Error)> {
    let settings = match docker.inspect_container(container.id(), None).await {
        Ok(inspect) => inspect.network_settings.unwrap_or_default(),
        Err(err) => {
            return Err((
                container,
                anyhow::Error::new(err).context(format!("inspect {name}")),
            ));
        }
    };
    let mut ports = HashMap::new();
    for port in &spec.ports {
        let host_port = settings
            .ports
            .as_ref()
            .and_then(|map| map.get(&format!("{port}/tcp")))
            .and_then(|bindings| {
                bindings
                    .as_ref()?
                    .iter()
                    .find_map(|binding| binding.host_port.as_deref()?.parse::<u16>().ok())
            });
        let Some(host_port) = host_port else {
            let err = anyhow::anyhow!("{name}: the engine reports no host port for {port}/tcp");
            return Err((container, err));
        };
        ports.insert(*port, SocketAddr::from(([127, 0, 0, 1], host_port)));
    }
    let address = |ip: &Option<String>| -> Option<IpAddr> {
        ip.as_deref().filter(|ip| !ip.is_empty())?.parse().ok()
    };
    let bridge = settings
        .networks
        .unwrap_or_default()
        .values()
        .find_map(|network| Some((address(&network.gateway)?, address(&network.ip_address)?)));
    let Some((gateway, ip)) = bridge else {
        let err = anyhow::anyhow!(
            "{name}: no bridge gateway address reported: is the engine's default network a bridge?"
        );
        return Err((container, err));
    };
    Ok(Running {
        name: name.to_owned(),
        container,
        docker: docker.clone(),
        ports,
        gateway,
        ip,
    })
}

/// One readiness check; `Err` says what was seen.
async fn probe(running: &Running, readiness: &Readiness) -> anyhow::Result<()> {
    match readiness {
        Readiness::Exec(argv) => {
            let output = running.exec(argv).await?;
            anyhow::ensure!(
                output.code == Some(0),
                "{argv:?} exited {:?}: {}",
                output.code,
                format!("{} {}", output.stdout.trim(), output.stderr.trim()).trim()
            );
            Ok(())
        }
        Readiness::Http { port, path } => {
            let url = format!("{}{path}", running.url(*port));
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            anyhow::ensure!(
                response.status().is_success(),
                "GET {url}: {}",
                response.status()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Image references split into repository and tag, registries with ports included.
    #[test]
    fn images_split_into_repository_and_tag() {
        let split = |image: &str| {
            let spec = ContainerSpec::new(image);
            (spec.repository, spec.tag)
        };
        let owned = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            split("prom/prometheus:v3.1.0"),
            owned("prom/prometheus", "v3.1.0")
        );
        assert_eq!(
            split("localhost:5000/jaeger"),
            owned("localhost:5000/jaeger", "latest")
        );
        assert_eq!(
            split("localhost:5000/jaeger:2"),
            owned("localhost:5000/jaeger", "2")
        );
        assert_eq!(split("redis"), owned("redis", "latest"));
    }

    /// The in-container HTTP probe tries each tool in turn against the one URL.
    #[test]
    fn http_inside_tries_wget_curl_and_bash() {
        let Readiness::Exec(argv) = Readiness::http_inside(9090, "/-/ready") else {
            unreachable!("http_inside is an exec check");
        };
        assert_eq!(argv[..2], ["sh", "-c"]);
        let script = &argv[2];
        assert!(script.starts_with("wget -q -O /dev/null http://127.0.0.1:9090/-/ready || curl"));
        assert!(script.contains("/dev/tcp/127.0.0.1/9090"));
        assert!(script.contains("GET /-/ready HTTP/1.1"));
    }

    /// A port is published once, however often it is named.
    #[test]
    fn ports_are_published_once() {
        let spec = ContainerSpec::new("x:1").port(80).port(443).port(80);
        assert_eq!(spec.ports(), [80, 443]);
    }
}
