//! Do `fly/api.toml` and `fly/worker.toml` agree with the binaries they deploy, as their crates
//! declare them (`crate::binaries`), and with the Dockerfile?
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

use super::dockerfile;
use crate::binaries::{self, Binary};
use crate::problem::{Problem, line_at};
use xtask::flags::FlyApp;

/// What one binary needs from its Fly config.
struct Expected {
    /// The config, relative to the workspace root.
    config: &'static str,
    binary: &'static Binary,
    /// The Dockerfile stage that builds the image.
    target: &'static str,
    /// Public apps get `[http_service]`; the worker must get no public service at all.
    public: bool,
    /// `[deploy] release_command`: what runs after the image's ENTRYPOINT on a release Machine.
    release_command: Option<&'static str>,
}

const API: Expected = Expected {
    config: "fly/api.toml",
    binary: &binaries::API,
    target: "api",
    public: true,
    release_command: Some(ampel_api::MIGRATE_COMMAND),
};

const WORKER: Expected = Expected {
    config: "fly/worker.toml",
    binary: &binaries::WORKER,
    target: "worker",
    public: false,
    release_command: None,
};

fn expected(app: FlyApp) -> &'static Expected {
    match app {
        FlyApp::Api => &API,
        FlyApp::Worker => &WORKER,
    }
}

/// The app's config file, relative to the workspace root.
pub fn config_path(app: FlyApp) -> &'static str {
    expected(app).config
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
    let path = root.join(config_path(app));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read {}: restore it from git", config_path(app)))?;
    toml::from_str(&text).with_context(|| format!("parse {}: fix the TOML", config_path(app)))
}

/// Every disagreement between `fly/*.toml`, the Dockerfile and the binaries. Empty when the
/// configs are deployable.
pub fn fly_problems(root: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut apps = Vec::new();
    for app in [FlyApp::Api, FlyApp::Worker] {
        let expected = expected(app);
        let path = root.join(expected.config);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                problems.push(Problem::new(
                    expected.config,
                    None,
                    format!("cannot read it ({err}); restore it from git"),
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
                problems.push(Problem::new(
                    expected.config,
                    err.span().map(|span| line_at(&text, span.start)),
                    format!("not a Fly config ({}); fix the TOML", err.message()),
                ));
            }
        }
    }
    if let [(api_file, api), (worker_file, worker)] = apps.as_slice()
        && api.get_ref() == worker.get_ref()
    {
        problems.push(Problem::new(
            worker_file,
            None,
            format!(
                "app = {:?} is also {api_file}'s app; give each its own name (they deploy and scale apart)",
                worker.get_ref()
            ),
        ));
    }
    problems
}

/// Collects problems for one file, turning spans into line numbers.
struct Report<'a> {
    file: &'a str,
    text: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Report<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl std::fmt::Display) {
        let line = line_at(self.text, spanned.span().start);
        self.problems
            .push(Problem::new(self.file, Some(line), message.to_string()));
    }

    fn file(&mut self, message: impl std::fmt::Display) {
        self.problems
            .push(Problem::new(self.file, None, message.to_string()));
    }
}

fn check_app(root: &Path, expected: &Expected, config: &FlyConfig, report: &mut Report<'_>) {
    if config.app.get_ref().trim().is_empty() {
        report.at(&config.app, "app is empty; set the Fly app name");
    }
    check_shutdown(expected, config, report);
    check_build(root, expected, config, report);
    check_deploy(expected, config, report);
    let Some(port) = check_listen_addr(expected.binary.listen_var, expected, config, report) else {
        return;
    };
    check_health(expected, config, port, report);
    let metrics_port = match expected.binary.metrics_listen_var {
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
    let handled = telemetry::HANDLED_SIGNALS;
    if let Some(signal) = &config.kill_signal
        && !handled.contains(&signal.get_ref().as_str())
    {
        report.at(
            signal,
            format_args!(
                "kill_signal = {:?} is not one of telemetry::HANDLED_SIGNALS ({}), on which the binaries stop gracefully; set one of those",
                signal.get_ref(),
                handled.join(", ")
            ),
        );
    }
    let binary = expected.binary;
    let minimum = binary.shutdown_budget();
    // Whole seconds, rounded up, so the suggested value is enough.
    let suggestion = format!(
        "set kill_timeout = \"{}s\" or more",
        minimum.as_secs_f64().ceil()
    );
    let needs = format!(
        "{} may take {} = {} s to stop",
        binary.name,
        binary.shutdown_terms(),
        minimum.as_secs_f64()
    );
    match &config.kill_timeout {
        None => report.file(format_args!(
            "kill_timeout is unset, so Fly kills {} 5 s after the signal, but {needs}; {suggestion}",
            binary.name
        )),
        Some(value) => match kill_timeout(value.get_ref()) {
            Some(timeout) if timeout >= minimum => {}
            Some(timeout) => report.at(
                value,
                format_args!(
                    "kill_timeout is {} s, but {needs}; {suggestion}",
                    timeout.as_secs_f64()
                ),
            ),
            None => report.at(
                value,
                format_args!("kill_timeout is neither seconds nor a duration like \"30s\"; {suggestion}"),
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
                    expected.binary.name,
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
    let stages = dockerfile::stages(&dockerfile_text);
    let stage = stages
        .iter()
        .find(|stage| stage.name.as_deref() == Some(expected.target));
    match stage.and_then(|stage| stage.entrypoint.as_deref()) {
        None => report.at(
            target,
            format_args!(
                "the Dockerfile has no stage `AS {}` with an ENTRYPOINT; add it or change build-target",
                expected.target
            ),
        ),
        Some(program) if program.rsplit('/').next() != Some(expected.binary.name) => report.at(
            target,
            format_args!(
                "the Dockerfile stage {:?} runs {program}, not {}; fix its ENTRYPOINT or build-target",
                expected.target, expected.binary.name
            ),
        ),
        Some(_) => {}
    }
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
        (Some(wanted), Some(actual)) if actual.get_ref().split_whitespace().next() == Some(expected.binary.name) => {
            report.at(
                actual,
                format_args!(
                    "release_command = {:?} replaces only CMD; the image's ENTRYPOINT is already {}, so this runs `{} {}`; set release_command = {wanted:?}",
                    actual.get_ref(),
                    expected.binary.name,
                    expected.binary.name,
                    actual.get_ref()
                ),
            );
        }
        (Some(wanted), Some(actual)) => report.at(
            actual,
            format_args!(
                "release_command = {:?}; set release_command = {wanted:?} (runs `{} {wanted}` before the new version starts)",
                actual.get_ref(),
                expected.binary.name
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
    let binary = expected.binary;
    let Some(value) = config.env.get(var) else {
        report.file(format_args!(
            "[env] {var} is unset, so {} listens on {}, where Fly cannot reach it; set {var} = \"0.0.0.0:{}\"",
            binary.name,
            binary.default_listen_addr,
            binary.default_port()
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
    if var == binary.listen_var && addr.port() != binary.default_port() {
        report.at(
            value,
            format_args!(
                "{var} = {:?} is not on the port of {}'s default, {}, which compose/ and the Dockerfile use too; use 0.0.0.0:{}",
                value.get_ref(),
                binary.name,
                binary.default_listen_addr,
                binary.default_port()
            ),
        );
    }
    Some(addr.port())
}

fn check_health(expected: &Expected, config: &FlyConfig, port: u16, report: &mut Report<'_>) {
    let health_path = expected.binary.health;
    let is_health = |check: &Check| {
        check.path.as_deref() == Some(health_path)
            && check
                .method
                .as_deref()
                .is_none_or(|method| method.eq_ignore_ascii_case("GET"))
    };
    if expected.public {
        let Some(service) = &config.http_service else {
            report.file(format_args!(
                "[http_service] is missing, so {} gets no public HTTPS; add it with internal_port = {port}",
                expected.binary.name
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
                    expected.binary.listen_var
                ),
            );
        }
        if !service
            .checks
            .iter()
            .any(|check| is_health(check.get_ref()))
        {
            report.file(format_args!(
                "[[http_service.checks]] has no GET {health_path}; add one so a deploy waits for each new Machine"
            ));
        }
    } else {
        if let Some(service) = &config.http_service {
            report.at(
                service,
                format_args!(
                    "[http_service] makes {} public, but it serves nothing to the Internet; remove it and keep the top-level [checks]",
                    expected.binary.name
                ),
            );
        }
        if let Some(service) = config.services.first() {
            report.at(
                service,
                format_args!(
                    "[[services]] exposes {} through Fly's proxy; remove it and keep the top-level [checks]",
                    expected.binary.name
                ),
            );
        }
        let mut health = config.checks.values().filter(|check| {
            check.get_ref().kind.as_deref() == Some("http") && is_health(check.get_ref())
        });
        match health.next() {
            None => report.file(format_args!(
                "no top-level [checks.<name>] with type = \"http\", path = \"{health_path}\"; add one on port {port}"
            )),
            Some(check) if check.get_ref().port != Some(port) => report.at(
                check,
                format_args!(
                    "the {health_path} check uses port {:?} but {} listens on {port}; set port = {port}",
                    check.get_ref().port,
                    expected.binary.listen_var
                ),
            ),
            Some(_) => {}
        }
    }
}

fn check_metrics(expected: &Expected, config: &FlyConfig, port: u16, report: &mut Report<'_>) {
    let binary = expected.binary;
    let path = binary.metrics;
    let Some(metrics) = &config.metrics else {
        report.file(format_args!(
            "[metrics] is missing, so Fly's Prometheus never scrapes {}; add port = {port}, path = \"{path}\"",
            binary.name
        ));
        return;
    };
    for entry in metrics.get_ref().as_slice() {
        if entry.port != port {
            report.at(
                metrics,
                format_args!(
                    "[metrics] port = {} but {} serves {path} on {port} ({}); set port = {port}",
                    entry.port,
                    binary.name,
                    binary
                        .metrics_listen_var
                        .filter(|var| config.env.contains_key(*var))
                        .unwrap_or(binary.listen_var)
                ),
            );
        }
        if entry.path != path {
            report.at(
                metrics,
                format_args!(
                    "[metrics] path = {:?} but {} serves {path}; set path = \"{path}\"",
                    entry.path, binary.name
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
        let root = xtask::util::project_root();
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

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(|p| p.message.clone()).collect()
    }

    /// The committed fly configs agree with the binaries and the Dockerfile.
    #[test]
    fn committed_configs_have_no_problems() {
        assert_eq!(fly_problems(&xtask::util::project_root()), []);
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
        let problem = &problems[0];
        assert!(
            problem.file == "fly/worker.toml" && problem.line.is_some(),
            "{problems:#?}"
        );
        assert!(
            problem.message.contains("port = 9091") && problem.message.contains("set port = 8081"),
            "{problems:#?}"
        );
    }

    /// A listen address that moved off the crate's default port is caught, and so is the
    /// http_service port that no longer matches it.
    #[test]
    fn listen_port_mismatch_is_reported() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/api.toml",
            "API_LISTEN_ADDR = \"0.0.0.0:8080\"",
            "API_LISTEN_ADDR = \"0.0.0.0:3000\"",
        );
        let problems = messages(&fly_problems(root.path()));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("internal_port = 8080")
                    && p.contains("set internal_port = 3000")),
            "{problems:#?}"
        );
        let default = format!(
            "ampel-api's default, ampel_api::config::DEFAULT_LISTEN_ADDR ({})",
            ampel_api::config::DEFAULT_LISTEN_ADDR
        );
        assert!(
            problems.iter().any(|p| p.contains(&default)),
            "{problems:#?}"
        );
        assert_eq!(
            problems.len(),
            2,
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
        let problems = messages(&fly_problems(root.path()));
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
        let problems = messages(&fly_problems(root.path()));
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
        let problem = &problems[0];
        assert_eq!(problem.file, "fly/api.toml");
        assert!(problem.line.is_some(), "no line: {problems:#?}");
        assert!(problem.message.ends_with("; fix the TOML"), "{problems:#?}");
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
        let problems = messages(&fly_problems(root.path()));
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

    /// A kill_timeout shorter than the shutdown the crates declare names their constants.
    #[test]
    fn short_kill_timeout_names_the_shutdown_constants() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/api.toml",
            "kill_timeout = \"30s\"",
            "kill_timeout = \"5s\"",
        );
        let problems = fly_problems(root.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let needs = format!(
            "ampel-api may take {} = {} s to stop",
            binaries::API.shutdown_terms(),
            binaries::API.shutdown_budget().as_secs_f64()
        );
        assert!(
            problems[0].message.starts_with("kill_timeout is 5 s, but ")
                && problems[0].message.contains(&needs),
            "{problems:#?}"
        );
    }

    /// A kill signal telemetry does not stop on is reported with the ones it does.
    #[test]
    fn unhandled_kill_signal_is_reported() {
        let root = scratch_root();
        replace(
            root.path(),
            "fly/worker.toml",
            "kill_signal = \"SIGTERM\"",
            "kill_signal = \"SIGUSR1\"",
        );
        let problems = messages(&fly_problems(root.path()));
        assert_eq!(
            problems,
            [format!(
                "kill_signal = \"SIGUSR1\" is not one of telemetry::HANDLED_SIGNALS ({}), on which the binaries stop gracefully; set one of those",
                telemetry::HANDLED_SIGNALS.join(", ")
            )]
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
