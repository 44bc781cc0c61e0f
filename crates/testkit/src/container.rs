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
//! - **Containers that restart are reached by name, on a network of their own.** A container
//!   stopped and started again ([`Running::halt`], [`Running::resume`]) gets a new address on the
//!   bridge network, so another container that kept its old address loses it. A container
//!   given [`ContainerSpec::network`] also joins that user-defined network under an alias, which
//!   the engine's DNS resolves whatever its address. Its host ports must stay across the restart
//!   too: Podman keeps them; an engine that picks new ones fails [`Running::resume`].
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
use testcontainers::bollard::models::{
    EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, PortBinding,
};
use testcontainers::bollard::query_parameters::{
    KillContainerOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions, StatsOptions,
};
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
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    copies: Vec<(CopyDataSource, String)>,
    mounts: Vec<(PathBuf, String)>,
    readiness: Option<Readiness>,
    name_prefix: String,
    ready_deadline: Duration,
    /// A user-defined network joined under an alias: `(network, alias)`.
    network: Option<(String, String)>,
    /// Who the process runs as, when not the image's user (`uid[:gid]`).
    user: Option<String>,
    /// Capabilities taken away (`ALL`, `NET_RAW`, …).
    cap_drop: Vec<String>,
    /// `--security-opt`s, e.g. `no-new-privileges:true`.
    security_opts: Vec<String>,
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
            entrypoint: None,
            cmd: None,
            copies: Vec::new(),
            mounts: Vec::new(),
            readiness: None,
            name_prefix: "otel-testkit".to_owned(),
            ready_deadline: READY_DEADLINE,
            network: None,
            user: None,
            cap_drop: Vec::new(),
            security_opts: Vec::new(),
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

    /// Replaces the image's entrypoint by `argv`; the image's default command is then not run
    /// (as with `docker run --entrypoint`), only [`ContainerSpec::cmd`]'s arguments after it.
    pub fn entrypoint(mut self, argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.entrypoint = Some(argv.into_iter().map(Into::into).collect());
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

    /// Also joins the existing user-defined `network` as `alias`, which other
    /// containers on it resolve across restarts. The container stays on the engine's default
    /// network too: [`Running::gateway`] and [`Running::ip`] are that network's.
    pub fn network(mut self, network: impl Into<String>, alias: impl Into<String>) -> Self {
        self.network = Some((network.into(), alias.into()));
        self
    }

    /// Runs the process as `user` (`uid[:gid]`) instead of the image's user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Takes `capability` away from the process (`ALL` for every one).
    pub fn cap_drop(mut self, capability: impl Into<String>) -> Self {
        self.cap_drop.push(capability.into());
        self
    }

    /// Adds a `--security-opt` (e.g. `no-new-privileges:true`).
    pub fn security_opt(mut self, option: impl Into<String>) -> Self {
        self.security_opts.push(option.into());
        self
    }

    fn request(&self, name: &str) -> testcontainers::ContainerRequest<GenericImage> {
        let mut image = GenericImage::new(self.repository.clone(), self.tag.clone());
        for port in &self.ports {
            image = image.with_exposed_port(port.tcp());
        }
        // testcontainers sets the entrypoint's program only (bollard's `entrypoint` gets one
        // word): the rest of it leads the command, which runs the same argv.
        let (program, mut cmd) = match self.entrypoint.as_deref() {
            Some([program, rest @ ..]) => (Some(program), Some(rest.to_vec())),
            _ => (None, None),
        };
        if let Some(program) = program {
            image = image.with_entrypoint(program);
        }
        if let Some(args) = &self.cmd {
            cmd.get_or_insert_with(Vec::new)
                .extend(args.iter().cloned());
        }
        let mut request = image.with_startup_timeout(self.ready_deadline);
        for (key, value) in &self.env {
            request = request.with_env_var(key, value);
        }
        if let Some(cmd) = cmd {
            request = request.with_cmd(cmd);
        }
        if let Some(user) = &self.user {
            request = request.with_user(user);
        }
        for capability in &self.cap_drop {
            request = request.with_cap_drop(capability);
        }
        for option in &self.security_opts {
            request = request.with_security_opt(option);
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
    /// What it was started from: [`Running::resume`] waits for its readiness again.
    spec: ContainerSpec,
}

/// One reading of a container's cgroup counters from the engine's stats API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// CPU time (user + system) of all its processes since it started.
    pub cpu_ns: u64,
    /// Memory in use, as the engine reports it (the cgroup's usage).
    pub memory_bytes: u64,
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

    /// Its CPU time and memory now: the difference of two readings is what it used between
    /// them. Fails when the engine reports neither (a container that is not running).
    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let stats = self
            .docker
            .stats(self.id(), Some(options))
            .next()
            .await
            .with_context(|| format!("the engine sent no stats of {}", self.name))?
            .with_context(|| format!("read the stats of {}", self.name))?;
        let cpu_ns = stats
            .cpu_stats
            .and_then(|cpu| cpu.cpu_usage?.total_usage)
            .filter(|ns| *ns > 0);
        let memory_bytes = stats
            .memory_stats
            .and_then(|memory| memory.usage)
            .filter(|bytes| *bytes > 0);
        match (cpu_ns, memory_bytes) {
            (Some(cpu_ns), Some(memory_bytes)) => Ok(Stats {
                cpu_ns,
                memory_bytes,
            }),
            _ => anyhow::bail!(
                "{}: the engine reports no CPU time or memory usage: is it running?",
                self.name
            ),
        }
    }

    /// Stops the container (SIGTERM, SIGKILL after `grace`) but keeps it, with its files, for
    /// [`Running::resume`].
    pub async fn halt(&self, grace: Duration) -> anyhow::Result<()> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        self.container
            .stop_with_timeout(Some(seconds))
            .await
            .with_context(|| format!("stop the container {}", self.name))
    }

    /// Freezes the container's processes: its ports still accept connections, which then hang
    /// (a server stuck rather than gone). [`Running::unpause`] thaws them.
    pub async fn pause(&self) -> anyhow::Result<()> {
        self.container
            .pause()
            .await
            .with_context(|| format!("pause the container {}", self.name))
    }

    /// Thaws a paused container.
    pub async fn unpause(&self) -> anyhow::Result<()> {
        self.container
            .unpause()
            .await
            .with_context(|| format!("unpause the container {}", self.name))
    }

    /// Kills the container's processes at once (SIGKILL) but keeps it, with its files, for
    /// [`Running::resume`].
    pub async fn kill(&self) -> anyhow::Result<()> {
        let options = KillContainerOptions {
            signal: "SIGKILL".to_owned(),
        };
        self.docker
            .kill_container(self.id(), Some(options))
            .await
            .with_context(|| format!("kill the container {}", self.name))
    }

    /// Starts a halted or killed container again and waits until it is ready, as [`start`]
    /// does. Its name, network alias and host ports are the ones it had; its bridge address
    /// may change ([`Running::ip`] then says the new one). Fails when the engine published a
    /// port on another host port (Docker may), since clients hold the old addresses.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let since = Instant::now();
        self.docker
            .start_container(self.id(), None::<StartContainerOptions>)
            .await
            .with_context(|| format!("start the container {} again", self.name))?;
        let (ports, gateway, ip) = addresses(&self.docker, &self.name, self.id(), &self.spec)
            .await
            .with_context(|| format!("inspect {} after its restart", self.name))?;
        for (port, before) in &self.ports {
            let after = ports.get(port).copied();
            anyhow::ensure!(
                after == Some(*before),
                "{}: port {port} was published on {before} and after the restart on {after:?}: \
                 this engine picks new host ports on a start (Podman keeps them), so clients \
                 would lose it; restart nothing in tests on this engine, or run them on Podman",
                self.name
            );
        }
        (self.gateway, self.ip) = (gateway, ip);
        self.wait_ready(since).await
    }

    /// Polls the spec's readiness until it passes or its deadline (from `since`) is over; the
    /// error shows what the last check saw and the container's last log lines.
    async fn wait_ready(&self, since: Instant) -> anyhow::Result<()> {
        let Some(readiness) = &self.spec.readiness else {
            return Ok(());
        };
        let label = format!("{} ready", self.name);
        let ready = eventually(&label, since, self.spec.ready_deadline, || {
            probe(self, readiness)
        })
        .await;
        if let Err(timed_out) = ready {
            let tail = self.logs_tail(LOG_TAIL).await.replace('\n', "\n    ");
            anyhow::bail!(
                "{}: {timed_out}\n  its last log lines:\n    {tail}",
                self.spec.image()
            );
        }
        Ok(())
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
    if let Err(err) = running.wait_ready(since).await {
        let _ = running.stop().await;
        return Err(err);
    }
    Ok(running)
}

/// Creates the user-defined network `name` (a bridge with the engine's DNS).
pub(crate) async fn create_network(name: &str) -> anyhow::Result<()> {
    let create = NetworkCreateRequest {
        name: name.to_owned(),
        ..Default::default()
    };
    engine()
        .await?
        .create_network(create)
        .await
        .with_context(|| format!("create the network {name}"))?;
    Ok(())
}

/// Joins `container` to the existing `network` as `alias`.
async fn join(docker: &Docker, network: &str, alias: &str, container: &str) -> anyhow::Result<()> {
    let connect = NetworkConnectRequest {
        container: container.to_owned(),
        endpoint_config: Some(EndpointSettings {
            aliases: Some(vec![alias.to_owned()]),
            ..Default::default()
        }),
    };
    docker
        .connect_network(network, connect)
        .await
        .with_context(|| format!("join {container} to the network {network} as {alias}"))
}

/// Joins the spec's network, reads the published ports and the gateway; hands the container
/// back on failure so it can be removed.
async fn inspect(
    docker: &Docker,
    name: &str,
    container: ContainerAsync<GenericImage>,
    spec: &ContainerSpec,
) -> Result<Running, (ContainerAsync<GenericImage>, anyhow::Error)> {
    if let Some((network, alias)) = &spec.network
        && let Err(err) = join(docker, network, alias, container.id()).await
    {
        return Err((container, err));
    }
    match addresses(docker, name, container.id(), spec).await {
        Ok((ports, gateway, ip)) => Ok(Running {
            name: name.to_owned(),
            container,
            docker: docker.clone(),
            ports,
            gateway,
            ip,
            spec: spec.clone(),
        }),
        Err(err) => Err((container, err)),
    }
}

/// The host address of each published port of `spec`, and the gateway and the container's own
/// address on the engine's default network (not on the spec's own network).
async fn addresses(
    docker: &Docker,
    name: &str,
    id: &str,
    spec: &ContainerSpec,
) -> anyhow::Result<(HashMap<u16, SocketAddr>, IpAddr, IpAddr)> {
    let settings = docker
        .inspect_container(id, None)
        .await
        .with_context(|| format!("inspect {name}"))?
        .network_settings
        .unwrap_or_default();
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
        let host_port = host_port
            .with_context(|| format!("{name}: the engine reports no host port for {port}/tcp"))?;
        ports.insert(*port, SocketAddr::from(([127, 0, 0, 1], host_port)));
    }
    let address = |ip: &Option<String>| -> Option<IpAddr> {
        ip.as_deref().filter(|ip| !ip.is_empty())?.parse().ok()
    };
    let own = spec.network.as_ref().map(|(network, _)| network.as_str());
    let (gateway, ip) = settings
        .networks
        .unwrap_or_default()
        .iter()
        .filter(|(network, _)| Some(network.as_str()) != own)
        .find_map(|(_, network)| Some((address(&network.gateway)?, address(&network.ip_address)?)))
        .with_context(|| {
            format!(
                "{name}: no bridge gateway address reported: is the engine's default network a bridge?"
            )
        })?;
    Ok((ports, gateway, ip))
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

    /// An entrypoint of several words runs as one argv: its program, then its other words and
    /// the command's arguments.
    #[test]
    fn entrypoint_words_lead_the_command() {
        let spec = ContainerSpec::new("prom/alertmanager:v0")
            .entrypoint(["/bin/sh", "/etc/alertmanager/entrypoint.sh"])
            .cmd(["--storage.path=/alertmanager"]);
        let request = spec.request("test");
        let cmd: Vec<String> = request.cmd().map(|word| word.into_owned()).collect();
        assert_eq!(request.entrypoint(), Some("/bin/sh"));
        assert_eq!(
            cmd,
            [
                "/etc/alertmanager/entrypoint.sh",
                "--storage.path=/alertmanager"
            ]
        );
        let plain = ContainerSpec::new("redis").request("test");
        assert_eq!((plain.entrypoint(), plain.cmd().count()), (None, 0));
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

    /// Prometheus scrapes itself, so its CPU time grows between two readings; once it is
    /// halted the engine reports none and `stats` says so.
    #[tokio::test]
    async fn stats_count_cpu_time_and_memory() {
        let image = crate::prometheus::image();
        if require_engine("stats_count_cpu_time_and_memory", &[&image])
            .await
            .is_none()
        {
            return;
        }
        let running = start(&crate::prometheus::spec(&image)).await.unwrap();
        let first = running.stats().await.unwrap();
        assert!(first.memory_bytes > 1 << 20, "{first:?}");
        let grown = eventually(
            "its CPU time grows",
            Instant::now(),
            Duration::from_secs(30),
            || async {
                let now = running.stats().await?;
                anyhow::ensure!(now.cpu_ns > first.cpu_ns, "{now:?} after {first:?}");
                Ok(now)
            },
        )
        .await
        .unwrap();
        assert!(grown.value.cpu_ns > first.cpu_ns);
        running.halt(Duration::from_secs(5)).await.unwrap();
        let halted = running.stats().await.unwrap_err();
        assert!(format!("{halted:#}").contains(running.name()), "{halted:#}");
        running.stop().await.unwrap();
    }

    /// A paused server still takes connections but answers none; unpaused, it answers again.
    #[tokio::test]
    async fn a_paused_container_hangs_until_unpaused() {
        let image = crate::prometheus::image();
        if require_engine("a_paused_container_hangs_until_unpaused", &[&image])
            .await
            .is_none()
        {
            return;
        }
        let running = start(&crate::prometheus::spec(&image)).await.unwrap();
        let ready = format!("{}/-/ready", running.url(crate::prometheus::API_PORT));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        running.pause().await.unwrap();
        let hung = http.get(&ready).send().await.unwrap_err();
        assert!(hung.is_timeout(), "{hung:#}");
        running.unpause().await.unwrap();
        let answer = http.get(&ready).send().await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        running.stop().await.unwrap();
    }

    /// A port is published once, however often it is named.
    #[test]
    fn ports_are_published_once() {
        let spec = ContainerSpec::new("x:1").port(80).port(443).port(80);
        assert_eq!(spec.ports(), [80, 443]);
    }
}
