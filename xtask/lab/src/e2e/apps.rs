//! ampel-api and ampel-worker as host processes, for the e2e and for `cargo xtask bench`.
//!
//! Why on the host and not in containers: a debug build is already there (or seconds away), no
//! image has to be built, and a failing run's log is a plain file. Running the app in
//! containers, built from the Dockerfile, is what `cargo xtask obs-up` covers.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::eventually;
use xtask::util;

/// The api runs its migrations before it listens; a debug build on a busy machine is slow.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The two binaries, built by [`build`].
pub struct Binaries {
    pub api: PathBuf,
    pub worker: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, e.g. a `target/release`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            api: dir.join("ampel-api"),
            worker: dir.join("ampel-worker"),
        }
    }
}

/// How [`build`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// `cargo build [--release] -p ampel-api -p ampel-worker`; returns where the binaries are.
pub fn build(profile: Profile) -> anyhow::Result<Binaries> {
    let mut args = vec!["build"];
    if profile == Profile::Release {
        args.push("--release");
    }
    args.extend(["-p", "ampel-api", "-p", "ampel-worker"]);
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    util::run("build the api and the worker", &util::cargo(), &args, &[])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::project_root().join("target"))
        .join(match profile {
            Profile::Debug => "debug",
            Profile::Release => "release",
        });
    Ok(Binaries::in_dir(&target))
}

/// A free TCP port on `ip`: bind port 0, read the port, let it go. Another process could take
/// it in between; that would show as a clear "address in use" in the app's log.
pub fn free_port(ip: IpAddr) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind((ip, 0))
        .with_context(|| format!("find a free port on {ip}"))?;
    Ok(listener.local_addr()?)
}

/// One running app process; killed when dropped.
pub struct App {
    pub name: String,
    child: tokio::process::Child,
    pid: i32,
    pub base_url: String,
    pub log: PathBuf,
}

impl App {
    /// Starts `binary` with `env` (over the inherited environment minus any `OTEL_*`, so a
    /// developer's shell cannot change what is exported), its output going to `log`.
    pub fn start(
        name: &str,
        binary: &Path,
        address: SocketAddr,
        env: &[(String, String)],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(binary);
        scrub(&mut command, &["OTEL_"]);
        command.envs(env.iter().map(|(key, value)| (key, value)));
        let hint = format!(
            "start {}: was it built (`cargo build -p ampel-api -p ampel-worker`)?",
            binary.display()
        );
        Self::spawn(name, command, &hint, address, log)
    }

    /// Spawns `command` (program, arguments and environment set by the caller), its stdout and
    /// stderr going to `log`; `hint` is the error when it cannot start. The program must exec
    /// the app in its own process (as `taskset` and `valgrind` do), so [`App::pid`] is the app's.
    pub fn spawn(
        name: &str,
        mut command: tokio::process::Command,
        hint: &str,
        address: SocketAddr,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = command.spawn().context(hint.to_owned())?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .with_context(|| format!("{name} exited at once; see {}", log.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            base_url: format!("http://{address}"),
            log,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits until `GET path` answers 200; fails early, with the log's tail, if the process exits.
    pub async fn ready(&mut self, path: &str) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base_url);
        let http = reqwest::Client::new();
        let since = Instant::now();
        let label = format!("{} ready", self.name);
        let child = &mut self.child;
        let result = eventually(&label, since, READY_DEADLINE, || {
            let exited = child.try_wait();
            let request = http.get(&url).timeout(Duration::from_secs(2)).send();
            let url = &url;
            async move {
                if let Some(status) = exited? {
                    anyhow::bail!("the process exited ({status})");
                }
                let response = request.await.with_context(|| format!("GET {url}"))?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "GET {url}: {}",
                    response.status()
                );
                Ok(())
            }
        })
        .await;
        result.map(drop).map_err(|timed_out| {
            anyhow::anyhow!(
                "{} did not become ready: {}\n  its log ({}) ends with:\n{}",
                self.name,
                timed_out.last_seen,
                self.log.display(),
                tail(&self.log)
            )
        })
    }

    /// Sends `signal` (SIGTERM to stop it properly, SIGKILL to pull the plug).
    pub fn signal(&self, signal: rustix::process::Signal) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.pid)
            .with_context(|| format!("{} has no valid pid", self.name))?;
        rustix::process::kill_process(pid, signal)
            .with_context(|| format!("send {signal:?} to {}", self.name))
    }

    /// Waits for the process to exit, up to `timeout`.
    pub async fn exited(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "{} still running {}s after the signal",
                    self.name,
                    timeout.as_secs()
                )
            })?
            .with_context(|| format!("wait for {}", self.name))
    }

    /// Sends SIGTERM and waits for the exit; returns how long that took (drain + telemetry
    /// flush). Fails, with the log's tail, when it takes more than `deadline` or the exit is
    /// unsuccessful.
    pub async fn stop(mut self, deadline: Duration) -> anyhow::Result<Duration> {
        let sent = Instant::now();
        self.signal(rustix::process::Signal::TERM)?;
        let status = self.exited(deadline).await.with_context(|| {
            format!(
                "its log ({}) ends with:\n{}",
                self.log.display(),
                tail(&self.log)
            )
        })?;
        let took = sent.elapsed();
        anyhow::ensure!(
            status.success(),
            "{} exited with {status} after SIGTERM; its log ({}) ends with:\n{}",
            self.name,
            self.log.display(),
            tail(&self.log)
        );
        Ok(took)
    }
}

/// Removes from `command`'s environment every inherited variable starting with one of
/// `prefixes`: a developer's shell must not change what a run does.
pub fn scrub(command: &mut tokio::process::Command, prefixes: &[&str]) {
    for (key, _) in std::env::vars_os() {
        let text = key.to_string_lossy();
        if prefixes.iter().any(|prefix| text.starts_with(prefix)) {
            command.env_remove(&key);
        }
    }
}

/// The last lines of a log file, indented, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..]
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
