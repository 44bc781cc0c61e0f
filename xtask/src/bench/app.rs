//! The release binaries as processes pinned to the server core, and what /proc says about them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::util;

/// The core the measured binary runs on. The load generator, the OTLP sink and the fake
/// provider (this process) run on [`LOAD_CPU`], so they never take cycles from the server.
pub const SERVER_CPU: usize = 0;
/// See [`SERVER_CPU`].
pub const LOAD_CPU: usize = 1;

/// Variables of the developer's shell that would change what the binaries do; every run sets
/// the ones it wants itself.
const SCRUBBED_PREFIXES: &[&str] = &[
    "OTEL_",
    "RUST_LOG",
    "AMPEL_",
    "API_",
    "WORKER_",
    "JOB_",
    "PROVIDER_",
];

/// How long a binary may take to answer `/health` (under valgrind it starts uninstrumented, so
/// this is generous, not needed).
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Linux reports /proc CPU times in USER_HZ ticks, which is 100 on every architecture.
const TICKS_PER_SECOND: u64 = 100;

/// The two release binaries.
pub struct Binaries {
    pub api: PathBuf,
    pub worker: PathBuf,
}

impl Binaries {
    /// Binaries built elsewhere, e.g. another commit's `target/release`.
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let binaries = Self {
            api: dir.join("ampel-api"),
            worker: dir.join("ampel-worker"),
        };
        for binary in [&binaries.api, &binaries.worker] {
            anyhow::ensure!(
                binary.is_file(),
                "{} does not exist: --binaries wants a folder holding ampel-api and ampel-worker (a target/release)",
                binary.display()
            );
        }
        Ok(binaries)
    }
}

/// `cargo build --release -p ampel-api -p ampel-worker`: release, because debug builds would
/// measure the compiler's lack of optimisation rather than telemetry.
pub fn build() -> anyhow::Result<Binaries> {
    util::run(
        "build the release binaries",
        &util::cargo(),
        &[
            "build",
            "--release",
            "-p",
            "ampel-api",
            "-p",
            "ampel-worker",
        ]
        .map(String::from),
        &[],
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::project_root().join("target"))
        .join("release");
    Ok(Binaries {
        api: target.join("ampel-api"),
        worker: target.join("ampel-worker"),
    })
}

/// A free port on 127.0.0.1 (bound, read, released; a clash shows as "address in use" in the
/// binary's log).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?)
}

/// One running binary; killed when dropped.
pub struct App {
    name: String,
    child: tokio::process::Child,
    pid: i32,
    pub base_url: String,
    pub log: PathBuf,
}

impl App {
    /// Starts `wrapper… binary` on [`SERVER_CPU`] with `env` over a scrubbed environment,
    /// stdout and stderr going to `log` (the JSON logs land there, as they would in a file
    /// collected by a log shipper).
    pub fn start(
        name: &str,
        binary: &Path,
        wrapper: &[String],
        env: &[(String, String)],
        listen: SocketAddr,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut command = tokio::process::Command::new("taskset");
        command
            .arg("-c")
            .arg(SERVER_CPU.to_string())
            .args(wrapper)
            .arg(binary);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if SCRUBBED_PREFIXES
                .iter()
                .any(|prefix| key_text.starts_with(prefix))
            {
                command.env_remove(&key);
            }
        }
        command
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| {
            format!(
                "start {} under taskset: is util-linux installed (`apt-get install -y util-linux`)?",
                binary.display()
            )
        })?;
        // taskset and valgrind exec the program in the same process, so this pid is the one
        // whose CPU time and memory we read.
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .with_context(|| format!("{name} exited at once; see {}", log.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            base_url: format!("http://{listen}"),
            log,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits until `GET /health` answers 200; fails early, with the log's tail, if it exits.
    pub async fn ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}/health", self.base_url);
        let since = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "{} exited ({status}) before answering; its log ({}) ends with:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(
                since.elapsed() < READY_DEADLINE,
                "{} did not answer GET {url} within {}s; its log ({}) ends with:\n{}",
                self.name,
                READY_DEADLINE.as_secs(),
                self.log.display(),
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// User + system CPU time the process has used so far (all its threads, so the exporters'
    /// background threads count too).
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        Ok(cpu_times(&self.pid.to_string())?.0)
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .with_context(|| format!("{path} has no VmRSS line"))
    }

    /// Sends SIGTERM and waits for the exit; returns how long that took (drain + telemetry
    /// flush). Fails when the process needs more than `deadline` or exits unsuccessfully.
    pub async fn stop(mut self, deadline: Duration) -> anyhow::Result<Duration> {
        let pid = rustix::process::Pid::from_raw(self.pid)
            .with_context(|| format!("{} has no valid pid", self.name))?;
        let sent = Instant::now();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .with_context(|| format!("send SIGTERM to {}", self.name))?;
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "{} still running {}s after SIGTERM; its log ({}) ends with:\n{}",
                    self.name,
                    deadline.as_secs(),
                    self.log.display(),
                    tail(&self.log)
                )
            })?
            .with_context(|| format!("wait for {}", self.name))?;
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

/// User + system CPU time of process `pid` (`self` for this one) and of its children that have
/// exited and been waited for, from `/proc/{pid}/stat`.
pub fn cpu_times(pid: &str) -> anyhow::Result<(Duration, Duration)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name is in parentheses and may hold spaces; fields are counted after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("{path}: no field {index} after the command name"))
    };
    let time = |ticks: u64| Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND);
    // utime, stime, cutime, cstime are fields 14 to 17 of the line, 11 to 14 after the name.
    Ok((time(ticks(11)? + ticks(12)?), time(ticks(13)? + ticks(14)?)))
}

/// CPU time spent on the load core: this process (the sink, the fake provider) and the children
/// it has reaped (wrk, curl). A load core near its limit caps throughput whatever the server
/// does, so the tables report it beside req/s.
pub fn load_cpu() -> anyhow::Result<Duration> {
    let (own, children) = cpu_times("self")?;
    Ok(own + children)
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

/// What a binary wrote as JSON log lines: how many (excluding the OpenTelemetry SDK's own
/// warnings, which are muted on the OTLP path and so are not "sent" there), how many requests
/// they report, and the counts of items the SDK reported dropped at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LogFile {
    pub lines: u64,
    /// Access log lines: one per request the api answered (`request finished`) or its client
    /// abandoned (`request cancelled`, e.g. wrk's connections still open when it stops), each
    /// inside its server span.
    pub requests: u64,
    pub dropped_spans: u64,
    pub dropped_logs: u64,
}

impl LogFile {
    /// Reads `path`; `requests` counts the access lines of `route` (a route template).
    pub fn read(path: &Path, route: &str) -> anyhow::Result<Self> {
        let route = format!(r#""http.route":"{route}""#);
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let mut file = Self::default();
        // Hundreds of thousands of lines: only the SDK's few are parsed.
        for line in text.lines().filter(|line| line.starts_with('{')) {
            if !line.contains(r#""target":"opentelemetry"#) {
                file.lines += 1;
                let access = line.contains(r#""message":"request finished""#)
                    || line.contains(r#""message":"request cancelled""#);
                if access && line.contains(&route) {
                    file.requests += 1;
                }
                continue;
            }
            let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(line) else {
                continue;
            };
            let count = |key: &str| fields.get(key).and_then(serde_json::Value::as_u64);
            file.dropped_spans += count("dropped_span_count").unwrap_or(0);
            file.dropped_logs += count("dropped_logs_count").unwrap_or(0);
        }
        Ok(file)
    }
}
