//! The service under test as a host process: start it with its output going to a log file,
//! wait until it answers a readiness path over HTTP, signal it, and wait for its exit, with
//! errors that end with the log's last lines.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use otel_testkit::process::{self, Process};
//! let address = process::free_port([127, 0, 0, 1].into())?;
//! let mut command = tokio::process::Command::new("target/debug/my-service");
//! process::scrub(&mut command, &["OTEL_"]);
//! command.env("LISTEN_ADDR", address.to_string());
//! let mut service = Process::spawn("my-service", command, "start my-service: was it built?", address, "target/my-service.log".into())?;
//! service.ready("/health").await?;
//! let took = service.stop(std::time::Duration::from_secs(10)).await?;
//! println!("stopped in {took:?}");
//! # Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
pub use rustix::process::Signal;

use crate::eventually::eventually;

/// How long [`Process::ready`] waits: a debug build on a loaded machine may do start-up work
/// (migrations, say) before it listens.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How many of its log's last lines an error shows.
const LOG_TAIL: usize = 12;

/// A free TCP port on `ip`: bind port 0, read the port, let it go. Another process could take
/// it in between; that shows as a clear "address in use" in the process's log.
pub fn free_port(ip: IpAddr) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind((ip, 0))
        .with_context(|| format!("find a free port on {ip}"))?;
    Ok(listener.local_addr()?)
}

/// Removes from `command`'s environment every inherited variable starting with one of
/// `prefixes`: the shell that runs the test must not change what the process does.
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
    lines[lines.len().saturating_sub(LOG_TAIL)..]
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One running process serving HTTP on one address; killed when dropped.
pub struct Process {
    pub name: String,
    child: tokio::process::Child,
    pid: i32,
    /// `http://<address>`.
    pub base_url: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    /// Spawns `command` (program, arguments and environment set by the caller), its stdout and
    /// stderr going to `log` (its folder is created); `hint` is the error when it cannot start.
    /// A wrapper program (`taskset`, `valgrind`) must exec the service in its own process, so
    /// that [`Process::pid`] is the service's.
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

    /// Waits until `GET path` answers 2xx, up to [`READY_DEADLINE`]; fails at once, with the
    /// log's tail, when the process exits first.
    pub async fn ready(&mut self, path: &str) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base_url);
        let http = reqwest::Client::new();
        let label = format!("{} ready", self.name);
        let answers = eventually(&label, Instant::now(), READY_DEADLINE, || async {
            let response = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            let status = response.status();
            anyhow::ensure!(status.is_success(), "GET {url}: {status}");
            Ok(())
        });
        let seen = tokio::select! {
            answered = answers => match answered {
                Ok(_) => return Ok(()),
                Err(timed_out) => timed_out.last_seen,
            },
            exited = self.child.wait() => match exited {
                Ok(status) => format!("the process exited ({status})"),
                Err(err) => format!("wait for the process: {err}"),
            },
        };
        anyhow::bail!(
            "{} did not become ready: {seen}\n{}",
            self.name,
            self.log_tail()
        )
    }

    /// Sends `signal` (SIGTERM to stop it properly, SIGKILL to pull the plug).
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
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

    /// Sends SIGTERM and waits for the exit; returns how long that took (its drain and flush).
    /// Fails, with the log's tail, when it takes more than `deadline` or the exit is
    /// unsuccessful.
    pub async fn stop(mut self, deadline: Duration) -> anyhow::Result<Duration> {
        let sent = Instant::now();
        self.signal(Signal::TERM)?;
        let status = self
            .exited(deadline)
            .await
            .with_context(|| self.log_tail())?;
        let took = sent.elapsed();
        anyhow::ensure!(
            status.success(),
            "{} exited with {status} after SIGTERM; {}",
            self.name,
            self.log_tail()
        );
        Ok(took)
    }

    /// "its log (path) ends with:" and the log's last lines, for error messages.
    pub fn log_tail(&self) -> String {
        format!(
            "its log ({}) ends with:\n{}",
            self.log.display(),
            tail(&self.log)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    fn shell(script: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", script]);
        command
    }

    fn log(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        dir.path().join("logs").join(format!("{name}.log"))
    }

    /// Waits until the log holds `line`: the script has set its traps by then.
    async fn logged(service: &Process, line: &str) {
        eventually(line, Instant::now(), Duration::from_secs(10), || async {
            let text = std::fs::read_to_string(&service.log)?;
            anyhow::ensure!(text.lines().any(|seen| seen == line), "{text:?}");
            Ok(())
        })
        .await
        .unwrap();
    }

    /// Answers every connection with `200 OK`, from a thread, until the test ends.
    fn http_ok() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let _ = stream.read(&mut [0; 1024]);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        address
    }

    /// A process that answers is ready; SIGTERM then stops it, and a clean exit is a success.
    #[tokio::test]
    async fn ready_then_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let script = "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done";
        let mut service =
            Process::spawn("ok", shell(script), "sh", http_ok(), log(&dir, "ok")).unwrap();
        service.ready("/health").await.unwrap();
        logged(&service, "up").await;
        let path = service.log.clone();
        service.stop(Duration::from_secs(10)).await.unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "up\nbye\n");
    }

    /// A process that exits fails `ready` at once, and the error quotes its log.
    #[tokio::test]
    async fn an_exited_process_is_never_ready() {
        let dir = tempfile::tempdir().unwrap();
        let address = free_port([127, 0, 0, 1].into()).unwrap();
        let mut service = Process::spawn(
            "gone",
            shell("echo 'cannot bind'; exit 3"),
            "sh",
            address,
            log(&dir, "gone"),
        )
        .unwrap();
        let since = Instant::now();
        let err = format!("{:#}", service.ready("/health").await.unwrap_err());
        assert!(since.elapsed() < READY_DEADLINE, "it failed early");
        assert!(err.contains("gone did not become ready"), "{err}");
        assert!(err.contains("the process exited (exit status: 3)"), "{err}");
        assert!(err.contains("    cannot bind"), "{err}");
    }

    /// An exit after SIGTERM that is not a success fails `stop`; a hung process times out.
    #[tokio::test]
    async fn stop_fails_on_a_bad_or_late_exit() {
        let dir = tempfile::tempdir().unwrap();
        let address = http_ok();
        let killed = Process::spawn("killed", shell("sleep 30"), "sh", address, log(&dir, "k"));
        let err = killed
            .unwrap()
            .stop(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("killed exited with signal: 15"),
            "{err:#}"
        );
        let script = "trap '' TERM; echo stuck; while :; do sleep 0.05; done";
        let stuck = Process::spawn("stuck", shell(script), "sh", address, log(&dir, "s"));
        let mut stuck = stuck.unwrap();
        logged(&stuck, "stuck").await;
        stuck.signal(Signal::TERM).unwrap();
        let err = format!(
            "{:#}",
            stuck.exited(Duration::from_millis(300)).await.unwrap_err()
        );
        assert!(
            err.contains("stuck still running 0s after the signal"),
            "{err}"
        );
    }

    /// A scrubbed prefix does not reach the process; the rest of the environment does.
    #[tokio::test]
    async fn scrubbed_variables_are_not_inherited() {
        let dir = tempfile::tempdir().unwrap();
        // Cargo sets CARGO_* for the tests it runs.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let mut command = shell("env");
        scrub(&mut command, &["CARGO_"]);
        command.env("KEPT", "yes");
        let mut service =
            Process::spawn("env", command, "sh", http_ok(), log(&dir, "env")).unwrap();
        assert!(
            service
                .exited(Duration::from_secs(10))
                .await
                .unwrap()
                .success()
        );
        let env = std::fs::read_to_string(&service.log).unwrap();
        assert!(env.lines().any(|line| line == "KEPT=yes"), "{env}");
        assert!(env.lines().any(|line| line.starts_with("PATH=")), "{env}");
        assert!(!env.lines().any(|line| line.starts_with("CARGO_")), "{env}");
    }
}
