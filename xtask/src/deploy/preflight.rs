//! Do `fly/api.toml` and `fly/worker.toml` agree with the binaries they deploy?
//!
//! ```text
//! cargo xtask deploy fly --dry-run
//! ```
//!
//! [`fly_problems`] only reads files and returns what is wrong, each problem naming the file (and
//! line), what disagrees and what to change. `deploy fly` refuses to start while it returns
//! anything; `cargo xtask check` can list its results next to its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use toml::Spanned;

use crate::flags::FlyApp;

/// What one binary needs from its Fly config. The numbers restate constants of the crates (named
/// in each comment) because xtask does not link the app.
struct Expected {
    /// The config, relative to the workspace root.
    config: &'static str,
    /// The binary, as the Dockerfile stage's ENTRYPOINT runs it.
    binary: &'static str,
    /// The Dockerfile stage that builds the image.
    target: &'static str,
    /// The variable the binary binds its HTTP port from; /health is served there, and /metrics too
    /// unless `metrics_var` is set.
    listen_var: &'static str,
    /// The variable that moves /metrics to a port of its own, off the public one.
    metrics_var: Option<&'static str>,
    /// Public apps get `[http_service]`; the worker must get no public service at all.
    public: bool,
    /// `[deploy] release_command`: what runs after the image's ENTRYPOINT on a release Machine.
    release_command: Option<&'static str>,
    /// The shortest `kill_timeout` that still lets the binary drain and flush after the signal.
    min_kill_timeout: Duration,
}

const API: Expected = Expected {
    config: "fly/api.toml",
    binary: "ampel-api",
    target: "api",
    listen_var: "API_LISTEN_ADDR",
    metrics_var: Some("API_METRICS_LISTEN_ADDR"),
    public: true,
    release_command: Some("migrate"),
    // ampel_api::DRAIN_TIMEOUT (10 s) + telemetry::FLUSH_TIMEOUT (2 s) for traces and for logs.
    min_kill_timeout: Duration::from_secs(14),
};

const WORKER: Expected = Expected {
    config: "fly/worker.toml",
    binary: "ampel-worker",
    target: "worker",
    listen_var: "WORKER_LISTEN_ADDR",
    metrics_var: None,
    public: false,
    release_command: None,
    // A running job's provider call (REQUEST_TIMEOUT in crates/worker/src/provider.rs, 15 s) + the
    // two 2 s flushes.
    min_kill_timeout: Duration::from_secs(19),
};

/// The signals `telemetry::shutdown_signal` turns into a graceful stop.
const HANDLED_SIGNALS: [&str; 2] = ["SIGTERM", "SIGINT"];

impl FlyApp {
    fn expected(self) -> &'static Expected {
        match self {
            FlyApp::Api => &API,
            FlyApp::Worker => &WORKER,
        }
    }

    /// The config file, relative to the workspace root.
    pub fn config_path(self) -> &'static str {
        self.expected().config
    }
}

/// A Fly config, as far as the preflight and the deploy read it.
#[derive(Debug, Deserialize)]
pub struct FlyConfig {
    pub app: Spanned<String>,
    kill_signal: Option<Spanned<String>>,
    kill_timeout: Option<Spanned<toml::Value>>,
    build: Option<Spanned<Build>>,
    deploy: Option<Spanned<DeploySection>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    http_service: Option<Spanned<HttpService>>,
    #[serde(default)]
    services: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    checks: BTreeMap<String, Spanned<Check>>,
    metrics: Option<Spanned<OneOrMany<Metrics>>>,
}

#[derive(Debug, Deserialize)]
struct Build {
    dockerfile: Option<Spanned<String>>,
    #[serde(rename = "build-target")]
    build_target: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct DeploySection {
    strategy: Option<Spanned<String>>,
    release_command: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct HttpService {
    internal_port: Spanned<u16>,
    #[serde(default)]
    checks: Vec<Spanned<Check>>,
}

/// An `[[http_service.checks]]` entry or a top-level `[checks.<name>]`.
#[derive(Debug, Deserialize)]
struct Check {
    #[serde(rename = "type")]
    kind: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    method: Option<String>,
}

/// One `[metrics]` entry. No spans inside: the untagged enum around it buffers its input, which
/// loses them, so problems point at the whole section.
#[derive(Debug, Deserialize)]
struct Metrics {
    port: u16,
    path: String,
}

/// `[metrics]` or `[[metrics]]`: flyctl takes both.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// Reads and parses one app's config.
pub fn load(root: &Path, app: FlyApp) -> anyhow::Result<FlyConfig> {
    let path = root.join(app.config_path());
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read {}: restore it from git", app.config_path()))?;
    toml::from_str(&text).with_context(|| format!("parse {}: fix the TOML", app.config_path()))
}

/// Every disagreement between `fly/*.toml`, the Dockerfile and the binaries, one line each:
/// `file[:line]: what is wrong; what to change`. Empty when the configs are deployable.
pub fn fly_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut apps = Vec::new();
    for app in [FlyApp::Api, FlyApp::Worker] {
        let expected = app.expected();
        let path = root.join(expected.config);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                problems.push(format!(
                    "{}: cannot read it ({err}); restore it from git",
                    expected.config
                ));
                continue;
            }
        };
        match toml::from_str::<FlyConfig>(&text) {
            Ok(config) => {
                let mut report = Report {
                    file: expected.config,
                    text: &text,
                    problems: &mut problems,
                };
                check_app(root, expected, &config, &mut report);
                apps.push((expected.config, config.app));
            }
            Err(err) => {
                let line = err
                    .span()
                    .map(|span| format!(":{}", text[..span.start].matches('\n').count() + 1))
                    .unwrap_or_default();
                problems.push(format!(
                    "{}{line}: not a Fly config ({}); fix the TOML",
                    expected.config,
                    err.message()
                ));
            }
        }
    }
    if let [(api_file, api), (worker_file, worker)] = apps.as_slice()
        && api.get_ref() == worker.get_ref()
    {
        problems.push(format!(
            "{worker_file}: app = {:?} is also {api_file}'s app; give each its own name (they deploy and scale apart)",
            worker.get_ref()
        ));
    }
    problems
}

/// Collects problems for one file, turning spans into line numbers.
struct Report<'a> {
    file: &'a str,
    text: &'a str,
    problems: &'a mut Vec<String>,
}

impl Report<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl std::fmt::Display) {
        let line = self.text[..spanned.span().start].matches('\n').count() + 1;
        self.problems
            .push(format!("{}:{line}: {message}", self.file));
    }

    fn file(&mut self, message: impl std::fmt::Display) {
        self.problems.push(format!("{}: {message}", self.file));
    }
}

fn check_app(root: &Path, expected: &Expected, config: &FlyConfig, report: &mut Report<'_>) {
    if config.app.get_ref().trim().is_empty() {
        report.at(&config.app, "app is empty; set the Fly app name");
    }
    check_shutdown(expected, config, report);
    check_build(root, expected, config, report);
    check_deploy(expected, config, report);
    let Some(port) = check_listen_addr(expected.listen_var, expected, config, report) else {
        return;
    };
    check_health(expected, config, port, report);
    let metrics_port = match expected.metrics_var {
        Some(var) if config.env.contains_key(var) => {
            let Some(metrics_port) = check_listen_addr(var, expected, config, report) else {
                return;
            };
            metrics_port
        }
        _ => port,
    };
    check_metrics(expected, config, metrics_port, report);
}

fn check_shutdown(expected: &Expected, config: &FlyConfig, report: &mut Report<'_>) {
    if let Some(signal) = &config.kill_signal
        && !HANDLED_SIGNALS.contains(&signal.get_ref().as_str())
    {
        report.at(
            signal,
            format_args!(
                "kill_signal = {:?} is not one the binaries stop gracefully on (SIGTERM, SIGINT); set kill_signal = \"SIGTERM\"",
                signal.get_ref()
            ),
        );
    }
    let minimum = expected.min_kill_timeout.as_secs();
    match &config.kill_timeout {
        None => report.file(format_args!(
            "kill_timeout is unset, so Fly kills {} 5 s after the signal, before it has drained and flushed; set kill_timeout = \"30s\" (at least {minimum} s)",
            expected.binary
        )),
        Some(value) => match kill_timeout(value.get_ref()) {
            Some(timeout) if timeout >= expected.min_kill_timeout => {}
            Some(timeout) => report.at(
                value,
                format_args!(
                    "kill_timeout is {} s, shorter than {}'s drain and flush ({minimum} s); set kill_timeout = \"30s\"",
                    timeout.as_secs(),
                    expected.binary
                ),
            ),
            None => report.at(
                value,
                "kill_timeout is neither seconds nor a duration like \"30s\"; set kill_timeout = \"30s\"",
            ),
        },
    }
}

/// Fly reads an integer `kill_timeout` as seconds and a string as a Go duration ("30s", "1m").
fn kill_timeout(value: &toml::Value) -> Option<Duration> {
    match value {
        toml::Value::Integer(seconds) => u64::try_from(*seconds).ok().map(Duration::from_secs),
        toml::Value::String(text) => parse_go_duration(text),
        _ => None,
    }
}

/// The subset of Go's `time.ParseDuration` that fly.toml uses: `<number><unit>` pairs with
/// units ms, s, m, h, e.g. "1m30s".
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            _ => return None,
        };
        rest = &rest[unit..];
    }
    Some(total)
}

fn check_build(root: &Path, expected: &Expected, config: &FlyConfig, report: &mut Report<'_>) {
    let Some(build) = &config.build else {
        report.file(format_args!(
            "[build] is missing; add dockerfile = \"../Dockerfile\" and build-target = {:?}",
            expected.target
        ));
        return;
    };
    let Some(dockerfile) = &build.get_ref().dockerfile else {
        report.at(
            build,
            "[build] dockerfile is unset; set dockerfile = \"../Dockerfile\"",
        );
        return;
    };
    // flyctl resolves it against the config's folder, not the working directory.
    let config_dir = root
        .join(expected.config)
        .parent()
        .map_or_else(|| root.to_owned(), Path::to_owned);
    let dockerfile_path: PathBuf = config_dir.join(dockerfile.get_ref());
    let Ok(dockerfile_text) = std::fs::read_to_string(&dockerfile_path) else {
        report.at(
            dockerfile,
            format_args!(
                "[build] dockerfile = {:?} (relative to fly/) does not exist; set dockerfile = \"../Dockerfile\"",
                dockerfile.get_ref()
            ),
        );
        return;
    };
    let target = match &build.get_ref().build_target {
        Some(target) if target.get_ref() == expected.target => target,
        Some(target) => {
            report.at(
                target,
                format_args!(
                    "[build] build-target = {:?} but {} is built by the Dockerfile stage {:?}; set build-target = {:?}",
                    target.get_ref(),
                    expected.binary,
                    expected.target,
                    expected.target
                ),
            );
            return;
        }
        None => {
            report.at(
                build,
                format_args!(
                    "[build] build-target is unset, so Fly builds the Dockerfile's last stage; set build-target = {:?}",
                    expected.target
                ),
            );
            return;
        }
    };
    match stage_entrypoint(&dockerfile_text, expected.target) {
        None => report.at(
            target,
            format_args!(
                "the Dockerfile has no stage `AS {}` with an ENTRYPOINT; add it or change build-target",
                expected.target
            ),
        ),
        Some(program) if program.rsplit('/').next() != Some(expected.binary) => report.at(
            target,
            format_args!(
                "the Dockerfile stage {:?} runs {program}, not {}; fix its ENTRYPOINT or build-target",
                expected.target, expected.binary
            ),
        ),
        Some(_) => {}
    }
}

/// The program of the ENTRYPOINT in the Dockerfile stage named `target` (`FROM … AS target`).
fn stage_entrypoint(dockerfile: &str, target: &str) -> Option<String> {
    let mut in_stage = false;
    for line in dockerfile.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("FROM") {
            let words: Vec<&str> = words.collect();
            in_stage = matches!(words.as_slice(), [.., as_, name] if as_.eq_ignore_ascii_case("AS") && *name == target);
        } else if in_stage && instruction.eq_ignore_ascii_case("ENTRYPOINT") {
            let rest = line[instruction.len()..].trim();
            // Exec form `["/usr/local/bin/x", …]` or shell form `/usr/local/bin/x …`.
            return match serde_json::from_str::<Vec<String>>(rest) {
                Ok(argv) => argv.into_iter().next(),
                Err(_) => rest.split_whitespace().next().map(str::to_owned),
            };
        }
    }
    None
}

fn check_deploy(expected: &Expected, config: &FlyConfig, report: &mut Report<'_>) {
    let Some(deploy) = &config.deploy else {
        report.file("[deploy] is missing; add it with strategy = \"rolling\"");
        return;
    };
    let section = deploy.get_ref();
    match &section.strategy {
        Some(strategy) if strategy.get_ref() == "rolling" => {}
        Some(strategy) => report.at(
            strategy,
            format_args!(
                "[deploy] strategy = {:?}; set strategy = \"rolling\" (one Machine at a time, each checked before the next)",
                strategy.get_ref()
            ),
        ),
        None => report.at(deploy, "[deploy] strategy is unset; set strategy = \"rolling\""),
    }
    match (expected.release_command, &section.release_command) {
        (Some(wanted), Some(actual)) if actual.get_ref() == wanted => {}
        (Some(wanted), Some(actual)) if actual.get_ref().split_whitespace().next() == Some(expected.binary) => {
            report.at(
                actual,
                format_args!(
                    "release_command = {:?} replaces only CMD; the image's ENTRYPOINT is already {}, so this runs `{} {}`; set release_command = {wanted:?}",
                    actual.get_ref(),
                    expected.binary,
                    expected.binary,
                    actual.get_ref()
                ),
            );
        }
        (Some(wanted), Some(actual)) => report.at(
            actual,
            format_args!(
                "release_command = {:?}; set release_command = {wanted:?} (runs `{} {wanted}` before the new version starts)",
                actual.get_ref(),
                expected.binary
            ),
        ),
        (Some(wanted), None) => report.at(
            deploy,
            format_args!(
                "[deploy] release_command is unset, so migrations never run; set release_command = {wanted:?}"
            ),
        ),
        (None, Some(actual)) => report.at(
            actual,
            "release_command is set, but migrations run once, from fly/api.toml; remove it",
        ),
        (None, None) => {}
    }
}

/// Checks `[env] <listen_var>` and returns its port.
fn check_listen_addr(
    var: &str,
    expected: &Expected,
    config: &FlyConfig,
    report: &mut Report<'_>,
) -> Option<u16> {
    let Some(value) = config.env.get(var) else {
        report.file(format_args!(
            "[env] {var} is unset, so {} listens on 127.0.0.1 where Fly cannot reach it; set {var} = \"0.0.0.0:<port>\"",
            expected.binary
        ));
        return None;
    };
    let Ok(addr) = value.get_ref().parse::<SocketAddr>() else {
        report.at(
            value,
            format_args!(
                "{} = {:?} is not an address like 0.0.0.0:8080; fix it",
                var,
                value.get_ref()
            ),
        );
        return None;
    };
    if !addr.ip().is_unspecified() {
        report.at(
            value,
            format_args!(
                "{} = {:?} binds one interface, which Fly's proxy and checks cannot reach; use 0.0.0.0:{}",
                var,
                value.get_ref(),
                addr.port()
            ),
        );
    }
    Some(addr.port())
}

fn check_health(expected: &Expected, config: &FlyConfig, port: u16, report: &mut Report<'_>) {
    let is_health = |check: &Check| {
        check.path.as_deref() == Some("/health")
            && check
                .method
                .as_deref()
                .is_none_or(|method| method.eq_ignore_ascii_case("GET"))
    };
    if expected.public {
        let Some(service) = &config.http_service else {
            report.file(format_args!(
                "[http_service] is missing, so {} gets no public HTTPS; add it with internal_port = {port}",
                expected.binary
            ));
            return;
        };
        let service = service.get_ref();
        if *service.internal_port.get_ref() != port {
            report.at(
                &service.internal_port,
                format_args!(
                    "[http_service] internal_port = {} but {} listens on {port}; set internal_port = {port}",
                    service.internal_port.get_ref(),
                    expected.listen_var
                ),
            );
        }
        if !service
            .checks
            .iter()
            .any(|check| is_health(check.get_ref()))
        {
            report.file(format_args!(
                "[[http_service.checks]] has no GET /health; add one so a deploy waits for each new Machine"
            ));
        }
    } else {
        if let Some(service) = &config.http_service {
            report.at(
                service,
                format_args!(
                    "[http_service] makes {} public, but it serves nothing to the Internet; remove it and keep the top-level [checks]",
                    expected.binary
                ),
            );
        }
        if let Some(service) = config.services.first() {
            report.at(
                service,
                format_args!(
                    "[[services]] exposes {} through Fly's proxy; remove it and keep the top-level [checks]",
                    expected.binary
                ),
            );
        }
        let mut health = config.checks.values().filter(|check| {
            check.get_ref().kind.as_deref() == Some("http") && is_health(check.get_ref())
        });
        match health.next() {
            None => report.file(format_args!(
                "no top-level [checks.<name>] with type = \"http\", path = \"/health\"; add one on port {port}"
            )),
            Some(check) if check.get_ref().port != Some(port) => report.at(
                check,
                format_args!(
                    "the /health check uses port {:?} but {} listens on {port}; set port = {port}",
                    check.get_ref().port,
                    expected.listen_var
                ),
            ),
            Some(_) => {}
        }
    }
}

fn check_metrics(expected: &Expected, config: &FlyConfig, port: u16, report: &mut Report<'_>) {
    let Some(metrics) = &config.metrics else {
        report.file(format_args!(
            "[metrics] is missing, so Fly's Prometheus never scrapes {}; add port = {port}, path = \"/metrics\"",
            expected.binary
        ));
        return;
    };
    for entry in metrics.get_ref().as_slice() {
        if entry.port != port {
            report.at(
                metrics,
                format_args!(
                    "[metrics] port = {} but {} serves /metrics on {port} ({}); set port = {port}",
                    entry.port,
                    expected.binary,
                    expected
                        .metrics_var
                        .filter(|var| config.env.contains_key(*var))
                        .unwrap_or(expected.listen_var)
                ),
            );
        }
        if entry.path != "/metrics" {
            report.at(
                metrics,
                format_args!(
                    "[metrics] path = {:?} but {} serves /metrics; set path = \"/metrics\"",
                    entry.path, expected.binary
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the workspace's fly/ and Dockerfile, so a test can break one line.
    fn scratch_root() -> tempfile::TempDir {
        let root = crate::util::project_root();
        let scratch = tempfile::tempdir().unwrap();
        std::fs::create_dir(scratch.path().join("fly")).unwrap();
        for file in ["fly/api.toml", "fly/worker.toml", "Dockerfile"] {
            std::fs::copy(root.join(file), scratch.path().join(file)).unwrap();
        }
        scratch
    }

    fn replace(root: &Path, file: &str, from: &str, to: &str) {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    /// The committed fly configs agree with the binaries and the Dockerfile.
    #[test]
    fn committed_configs_have_no_problems() {
        assert_eq!(
            fly_problems(&crate::util::project_root()),
            Vec::<String>::new()
        );
    }

    /// A metrics port that is not the binary's port is reported with file, line and the fix.
    #[test]
    fn metrics_port_mismatch_is_reported() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/worker.toml",
            "port = 8081\n  path = \"/metrics\"",
            "port = 9091\n  path = \"/metrics\"",
        );
        let problems = fly_problems(root.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with("fly/worker.toml:"), "{problems:#?}");
        assert!(
            problems[0].contains("port = 9091") && problems[0].contains("set port = 8081"),
            "{problems:#?}"
        );
    }

    /// An http_service port or a listen address that moved is caught on both sides.
    #[test]
    fn listen_port_mismatch_is_reported() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/api.toml",
            "API_LISTEN_ADDR = \"0.0.0.0:8080\"",
            "API_LISTEN_ADDR = \"0.0.0.0:3000\"",
        );
        let problems = fly_problems(root.path());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("internal_port = 8080")
                    && p.contains("set internal_port = 3000")),
            "{problems:#?}"
        );
        assert_eq!(
            problems.len(),
            1,
            "the metrics port is its own: {problems:#?}"
        );
    }

    /// With `/metrics` on a port of its own, `[metrics]` must follow that port.
    #[test]
    fn metrics_port_follows_the_metrics_listen_addr() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/api.toml",
            "API_METRICS_LISTEN_ADDR = \"0.0.0.0:9091\"",
            "API_METRICS_LISTEN_ADDR = \"0.0.0.0:9092\"",
        );
        let problems = fly_problems(root.path());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("[metrics] port = 9091")
                    && p.contains("API_METRICS_LISTEN_ADDR")),
            "{problems:#?}"
        );
    }

    /// `release_command = "ampel-api migrate"` would run the server behind the ENTRYPOINT.
    #[test]
    fn release_command_repeating_the_entrypoint_is_reported() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/api.toml",
            "release_command = \"migrate\"",
            "release_command = \"ampel-api migrate\"",
        );
        let problems = fly_problems(root.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("runs `ampel-api ampel-api migrate`"),
            "{problems:#?}"
        );
    }

    /// A file that is not TOML is reported with its line, and the other file is still checked.
    #[test]
    fn unparsable_config_is_reported_with_its_line() {
        let root = scratch_root();
        replace(root.path(), "fly/api.toml", "[env]", "[env");
        let problems = fly_problems(root.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with("fly/api.toml:"), "{problems:#?}");
        assert!(problems[0].ends_with("; fix the TOML"), "{problems:#?}");
        assert!(
            !problems[0].starts_with("fly/api.toml: "),
            "no line: {problems:#?}"
        );
    }

    /// The worker must not be public, and Fly's 5 s default kill timeout is too short.
    #[test]
    fn public_worker_and_default_kill_timeout_are_reported() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/worker.toml",
            "[build]",
            "[http_service]\n  internal_port = 8081\n\n[build]",
        );
        replace(root.path(), "fly/worker.toml", "kill_timeout = \"30s\"", "");
        let problems = fly_problems(root.path());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("[http_service] makes ampel-worker public")),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("kill_timeout is unset")),
            "{problems:#?}"
        );
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("30"), None);
        assert_eq!(parse_go_duration("s"), None);
    }
}
