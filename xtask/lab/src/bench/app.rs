//! The release binaries (built, or found in `--binaries`), the two cores, and what /proc and
//! their logs say about the running processes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::e2e::apps;
pub use crate::e2e::apps::{App, Binaries};

/// The core the measured binary runs on. The load generator, the OTLP sink and the fake
/// provider (this process) run on [`LOAD_CPU`], so they never take cycles from the server.
pub const SERVER_CPU: usize = 0;
/// See [`SERVER_CPU`].
pub const LOAD_CPU: usize = 1;

/// Variables of the developer's shell that would change what the binaries do; every run sets
/// the ones it wants itself.
pub const SCRUBBED_PREFIXES: &[&str] = &[
    "OTEL_",
    "RUST_LOG",
    "AMPEL_",
    "API_",
    "WORKER_",
    "JOB_",
    "PROVIDER_",
];

/// Linux reports /proc CPU times in USER_HZ ticks, which is 100 on every architecture.
const TICKS_PER_SECOND: u64 = 100;

/// `cargo build --release -p ampel-api -p ampel-worker`: release, because debug builds would
/// measure the compiler's lack of optimisation rather than telemetry.
pub fn build() -> anyhow::Result<Binaries> {
    apps::build(apps::Profile::Release)
}

/// Binaries built elsewhere, e.g. another commit's `target/release`.
pub fn binaries_in(dir: &Path) -> anyhow::Result<Binaries> {
    let binaries = Binaries::in_dir(dir);
    for binary in [&binaries.api, &binaries.worker] {
        anyhow::ensure!(
            binary.is_file(),
            "{} does not exist: --binaries wants a folder holding ampel-api and ampel-worker (a target/release)",
            binary.display()
        );
    }
    Ok(binaries)
}

/// A free port on 127.0.0.1.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    apps::free_port(Ipv4Addr::LOCALHOST.into())
}

/// User + system CPU time `app` has used so far (all its threads, so the exporters'
/// background threads count too).
pub fn cpu(app: &App) -> anyhow::Result<Duration> {
    Ok(cpu_times(&app.pid().to_string())?.0)
}

/// Resident set size of `app` in bytes.
pub fn rss(app: &App) -> anyhow::Result<u64> {
    let path = format!("/proc/{}/status", app.pid());
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
/// it has reaped (wrk). A load core near its limit caps throughput whatever the server
/// does, so the tables report it beside req/s.
pub fn load_cpu() -> anyhow::Result<Duration> {
    let (own, children) = cpu_times("self")?;
    Ok(own + children)
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
