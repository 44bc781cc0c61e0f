//! Do `fly/api.toml` and `fly/worker.toml` agree with the binaries they deploy, as their crates
//! declare them (`crate::binaries`), and with the Dockerfile? Does `fly/collector.toml` agree
//! with the collector's config (`collector`), and do the apps export to it?
//!
//! ```text
//! cargo xtask deploy fly --dry-run
//! ```
//!
//! [`fly_problems`] only reads files and returns what is wrong, each problem naming the file (and
//! line), what disagrees and what to change. `deploy fly` refuses to start while it returns
//! anything; `cargo xtask check` lists its results next to its own. Each app is read into a
//! [`Deployment`] (its Dockerfile stage under `[env]`, `[http_service]`, the checks, `[metrics]`)
//! and held to its binary by the comparison compose and the Dockerfile get too; what only Fly has
//! (build, release command, kill timeout, public or not) is checked here.

mod collector;

use std::fmt::Display;
use std::path::Path;

use anyhow::Context as _;
use fly_deploy::config::{Check, FlyConfig, kill_timeout};
use toml::Spanned;

use super::dockerfile;
use crate::binaries::{self, Binary, Deployment, Kind, Listed, Request};
use crate::problem::{Problem, Stated, line_at};
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

/// The app's config file, relative to the workspace root.
pub fn config_path(app: FlyApp) -> &'static str {
    match app {
        FlyApp::Collector => collector::CONFIG,
        FlyApp::Api => API.config,
        FlyApp::Worker => WORKER.config,
    }
}

/// The variable the apps read the collector's address from (the OTLP SDK's own).
const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Reads and parses one app's config.
pub fn load(root: &Path, app: FlyApp) -> anyhow::Result<FlyConfig> {
    let path = root.join(config_path(app));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read {}: restore it from git", config_path(app)))?;
    toml::from_str(&text).with_context(|| format!("parse {}: fix the TOML", config_path(app)))
}

/// Every disagreement between `fly/*.toml`, the Dockerfile, the collector's config and the
/// binaries. Empty when the configs are deployable.
pub fn fly_problems(root: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let collector = read(root, collector::CONFIG, &mut problems);
    let collector = collector.map(|(text, config)| {
        let mut report = Report {
            file: collector::CONFIG,
            text: &text,
            problems: &mut problems,
        };
        let otlp = collector::check(root, &config, &mut report);
        (config, otlp)
    });
    let mut apps = Vec::new();
    if let Some((config, _)) = &collector {
        apps.push((collector::CONFIG, config.app.clone()));
    }
    for expected in [&API, &WORKER] {
        let file = expected.config;
        let Some((text, config)) = read(root, file, &mut problems) else {
            continue;
        };
        let mut report = Report {
            file,
            text: &text,
            problems: &mut problems,
        };
        check_app(root, expected, &config, &mut report);
        if let Some((collector, Some(port))) = &collector {
            check_exports_to(collector.app.get_ref(), *port, &config, &mut report);
        }
        apps.push((file, config.app));
    }
    for (index, (file, app)) in apps.iter().enumerate() {
        if let Some((other, _)) = apps[..index]
            .iter()
            .find(|(_, other)| other.get_ref() == app.get_ref())
        {
            let message = format!(
                "app = {:?} is also {other}'s app; give each its own name (they deploy and scale apart)",
                app.get_ref()
            );
            problems.push(Problem::new(file, None, message));
        }
    }
    problems
}

/// The text and the parsed config of `file`, or `None` with the problem recorded.
fn read(root: &Path, file: &str, problems: &mut Vec<Problem>) -> Option<(String, FlyConfig)> {
    let text = match std::fs::read_to_string(root.join(file)) {
        Ok(text) => text,
        Err(err) => {
            let message = format!("cannot read it ({err}); restore it from git");
            problems.push(Problem::new(file, None, message));
            return None;
        }
    };
    match toml::from_str::<FlyConfig>(&text) {
        Ok(config) => Some((text, config)),
        Err(err) => {
            let line = err.span().map(|span| line_at(&text, span.start));
            let message = format!("not a Fly config ({}); fix the TOML", err.message());
            problems.push(Problem::new(file, line, message));
            None
        }
    }
}

/// The app's `[env]` points its OTLP exporter at the collector app over the private network.
fn check_exports_to(collector: &str, port: u16, config: &FlyConfig, report: &mut Report<'_>) {
    let want = format!("http://{collector}.internal:{port}");
    let fix = format!(
        "set {OTLP_ENDPOINT_VAR} = {want:?} in [env] (the collector of {}, over Fly's private network)",
        collector::CONFIG
    );
    match config.env.get(OTLP_ENDPOINT_VAR) {
        Some(value) if *value.get_ref() == want => {}
        Some(value) => report.at(
            value,
            format_args!("{OTLP_ENDPOINT_VAR} = {:?}; {fix}", value.get_ref()),
        ),
        None => report.push(
            None,
            format_args!("{OTLP_ENDPOINT_VAR} is unset, so its telemetry goes nowhere; {fix}"),
        ),
    }
}

/// Collects problems for one file, turning spans into line numbers.
struct Report<'a> {
    file: &'a str,
    text: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Report<'_> {
    fn line<T>(&self, spanned: &Spanned<T>) -> Option<usize> {
        Some(line_at(self.text, spanned.span().start))
    }

    fn push(&mut self, line: Option<usize>, message: impl Display) {
        self.problems
            .push(Problem::new(self.file, line, message.to_string()));
    }

    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Display) {
        self.push(self.line(spanned), message);
    }

    /// `value`, at the line of `spanned`.
    fn stated<S, T>(&self, spanned: &Spanned<S>, value: T) -> Stated<T> {
        Stated::new(value, self.file, self.line(spanned))
    }
}

fn check_app(root: &Path, expected: &Expected, config: &FlyConfig, report: &mut Report<'_>) {
    if config.app.get_ref().trim().is_empty() {
        report.at(&config.app, "app is empty; set the Fly app name");
    }
    check_shutdown(expected.binary, config, report);
    check_deploy(expected, config, report);
    let stage = check_build(root, expected, config, report);
    let deployment = deployment(expected, config, stage, report);
    report
        .problems
        .extend(expected.binary.problems(&deployment));
}

/// The Fly app as a deployment of its binary: the image's stage under `[env]`, the port
/// `[http_service]` routes, the health checks and `[metrics]`.
fn deployment(
    expected: &Expected,
    config: &FlyConfig,
    stage: Option<Deployment>,
    report: &mut Report<'_>,
) -> Deployment {
    let name = expected.binary.name;
    let mut deployment = stage.unwrap_or_default();
    deployment.name = expected.config.to_owned();
    for (var, value) in &config.env {
        deployment
            .env
            .insert(var.clone(), report.stated(value, value.get_ref().clone()));
    }
    let service = config.http_service.as_ref();
    match (expected.public, service) {
        (true, None) => report.push(None, format_args!(
            "[http_service] is missing, so {name} gets no public HTTPS; add it with internal_port = {}",
            expected.binary.default_port()
        )),
        (false, _) => check_private(name, config, report),
        _ => {}
    }
    let request =
        |port, path: &Option<String>| Request::new(port, Some(path.as_deref().unwrap_or_default()));
    let get = |check: &&Spanned<Check>| {
        let method = check.get_ref().method.as_deref();
        method.is_none_or(|method| method.eq_ignore_ascii_case("GET"))
    };
    let mut probes = Vec::new();
    if let Some(service) = service {
        let port = &service.get_ref().internal_port;
        let route = report.stated(port, Request::new(Some(*port.get_ref()), None));
        let section = report.stated(service, "[http_service]".to_owned());
        deployment
            .lists
            .push(Listed::new(Kind::Route, section, vec![route]));
        // Fly sends these to internal_port.
        for check in service.get_ref().checks.iter().filter(get) {
            let probe = request(Some(*port.get_ref()), &check.get_ref().path);
            probes.push(report.stated(check, probe));
        }
    }
    for check in config.checks.values().filter(get) {
        let Check {
            kind, port, path, ..
        } = check.get_ref();
        if kind.as_deref() == Some("http") {
            probes.push(report.stated(check, request(*port, path)));
        }
    }
    let metrics = config.metrics.iter().flat_map(|metrics| {
        let entries = metrics.get_ref().as_slice().iter();
        entries.map(|entry| {
            report.stated(
                metrics,
                request(Some(entry.port), &Some(entry.path.clone())),
            )
        })
    });
    let whole = |section: &str| Stated::new(section.to_owned(), expected.config, None);
    let checks = match expected.public {
        true => "[[http_service.checks]] (GET)",
        false => "[checks] (type = \"http\", GET)",
    };
    deployment
        .lists
        .push(Listed::new(Kind::Liveness, whole(checks), probes));
    deployment.lists.push(Listed::new(
        Kind::Scrape,
        whole("[metrics]"),
        metrics.collect(),
    ));
    deployment
}

/// Nothing of `config` is reachable through Fly's proxy.
fn check_private(name: &str, config: &FlyConfig, report: &mut Report<'_>) {
    match (&config.http_service, config.services.first()) {
        (Some(service), _) => report.at(service, format_args!(
            "[http_service] makes {name} public, but it serves nothing to the Internet; remove it and keep the top-level [checks]"
        )),
        (None, Some(services)) => report.at(services, format_args!(
            "[[services]] exposes {name} through Fly's proxy; remove it and keep the top-level [checks]"
        )),
        (None, None) => {}
    }
}

fn check_shutdown(binary: &Binary, config: &FlyConfig, report: &mut Report<'_>) {
    let handled = telemetry::HANDLED_SIGNALS;
    if let Some(signal) = &config.kill_signal
        && !handled.contains(&signal.get_ref().as_str())
    {
        report.at(signal, format_args!(
            "kill_signal = {:?} is not one of telemetry::HANDLED_SIGNALS ({}), on which the binaries stop gracefully; set one of those",
            signal.get_ref(),
            handled.join(", ")
        ));
    }
    let (name, minimum) = (binary.name, binary.shutdown_budget());
    // Whole seconds, rounded up, so the suggested value is enough.
    let suggestion = format!(
        "set kill_timeout = \"{}s\" or more",
        minimum.as_secs_f64().ceil()
    );
    let needs = format!(
        "{name} may take {} = {} s to stop",
        binary.shutdown_terms(),
        minimum.as_secs_f64()
    );
    let Some(value) = &config.kill_timeout else {
        let message = format!(
            "kill_timeout is unset, so Fly kills {name} 5 s after the signal, but {needs}; {suggestion}"
        );
        return report.push(None, message);
    };
    match kill_timeout(value.get_ref()) {
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
            format_args!(
                "kill_timeout is neither seconds nor a duration like \"30s\"; {suggestion}"
            ),
        ),
    }
}

/// Checks `[build]` and returns the deployment of the Dockerfile stage it builds.
fn check_build(
    root: &Path,
    expected: &Expected,
    config: &FlyConfig,
    report: &mut Report<'_>,
) -> Option<Deployment> {
    let (name, wanted) = (expected.binary.name, expected.target);
    let Some(build) = &config.build else {
        let fix = format!("add dockerfile = \"../Dockerfile\" and build-target = {wanted:?}");
        report.push(None, format_args!("[build] is missing; {fix}"));
        return None;
    };
    let Some(dockerfile) = &build.get_ref().dockerfile else {
        report.at(
            build,
            "[build] dockerfile is unset; set dockerfile = \"../Dockerfile\"",
        );
        return None;
    };
    // flyctl resolves it against the config's folder; problems name it from the workspace root.
    let path = dockerfile.get_ref();
    let file = path
        .strip_prefix("../")
        .map_or_else(|| format!("fly/{path}"), str::to_owned);
    let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
        let fix = "set dockerfile = \"../Dockerfile\"";
        report.at(
            dockerfile,
            format_args!("[build] dockerfile = {path:?} (relative to fly/) does not exist; {fix}"),
        );
        return None;
    };
    let target = match &build.get_ref().build_target {
        Some(target) if target.get_ref() == wanted => target,
        target => {
            let got = target
                .as_ref()
                .map(|target| format!("{:?}", target.get_ref()));
            let got =
                got.unwrap_or_else(|| "unset, so Fly builds the Dockerfile's last stage".into());
            let line = target
                .as_ref()
                .map_or(report.line(build), |target| report.line(target));
            report.push(line, format_args!(
                "[build] build-target is {got}; {name} is built by the Dockerfile stage {wanted:?}: set build-target = {wanted:?}"
            ));
            return None;
        }
    };
    let stages = dockerfile::stages(&file, &text);
    dockerfile::find(&stages, &file, &report.stated(target, wanted.to_owned()))
        .map(|stage| stage.deployment(&file))
        .map_err(|problem| report.problems.push(problem))
        .ok()
}

fn check_deploy(expected: &Expected, config: &FlyConfig, report: &mut Report<'_>) {
    let Some(deploy) = &config.deploy else {
        return report.push(
            None,
            "[deploy] is missing; add it with strategy = \"rolling\"",
        );
    };
    let section = deploy.get_ref();
    match &section.strategy {
        Some(strategy) if strategy.get_ref() == "rolling" => {}
        Some(strategy) => report.at(strategy, format_args!(
            "[deploy] strategy = {:?}; set strategy = \"rolling\" (one Machine at a time, each checked before the next)",
            strategy.get_ref()
        )),
        None => report.at(deploy, "[deploy] strategy is unset; set strategy = \"rolling\""),
    }
    let name = expected.binary.name;
    match (expected.release_command, &section.release_command) {
        (Some(wanted), Some(actual)) if actual.get_ref() == wanted => {}
        (Some(wanted), Some(actual)) => {
            let got = actual.get_ref();
            let message = match got.split_whitespace().next() == Some(name) {
                true => format!("release_command = {got:?} replaces only CMD; the image's ENTRYPOINT is already {name}, so this runs `{name} {got}`; set release_command = {wanted:?}"),
                false => format!("release_command = {got:?}; set release_command = {wanted:?} (runs `{name} {wanted}` before the new version starts)"),
            };
            report.at(actual, message);
        }
        (Some(wanted), None) => report.at(deploy, format_args!(
            "[deploy] release_command is unset, so migrations never run; set release_command = {wanted:?}"
        )),
        (None, Some(actual)) => report.at(actual, "release_command is set, but migrations run once, from fly/api.toml; remove it"),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Case, assert_cases};

    const API: &str = "fly/api.toml";
    const WORKER: &str = "fly/worker.toml";
    const COLLECTOR: &str = "fly/collector.toml";
    const OVERLAY: &str = "fly/collector.yaml";
    const SHARED: &str = "observability/otel-collector/config.yaml";

    /// `fly_problems` of a copy of the workspace's fly/ and Dockerfile after each `(file, from,
    /// to)` replacement (the first occurrence), as `file[:N]: message`: `:N` says there is a line.
    fn problems_with(replace: &[(&str, &str, &str)]) -> Vec<String> {
        let scratch = tempfile::tempdir().unwrap();
        let files = [API, WORKER, "Dockerfile", COLLECTOR, OVERLAY, SHARED];
        for file in files.into_iter().chain(["fly/collector.Dockerfile"]) {
            let text = std::fs::read_to_string(xtask::util::project_root().join(file)).unwrap();
            let path = scratch.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        for (file, from, to) in replace {
            let path = scratch.path().join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(from), "{file} has no {from:?}");
            std::fs::write(path, text.replacen(from, to, 1)).unwrap();
        }
        let problems = fly_problems(scratch.path());
        let line = |problem: &Problem| if problem.line.is_some() { ":N" } else { "" };
        problems
            .iter()
            .map(|p| format!("{}{}: {}", p.file, line(p), p.message))
            .collect()
    }

    /// The committed fly configs agree with the binaries and the Dockerfile.
    #[test]
    fn committed_configs_have_no_problems() {
        assert_eq!(fly_problems(&xtask::util::project_root()), []);
    }

    /// Each broken input and every problem it gives, each matched by a part of its text.
    #[test]
    fn each_rule_catches_its_broken_input() {
        let api = &binaries::API;
        let budget = api.shutdown_budget().as_secs_f64();
        let needs = format!(
            "ampel-api may take {} = {budget} s to stop; set kill_timeout = \"{}s\" or more",
            api.shutdown_terms(),
            budget.ceil()
        );
        let default = format!(
            "is not on the port of ampel-api's default, {}",
            api.default_listen_addr
        );
        let signals = telemetry::HANDLED_SIGNALS.join(", ");
        let env = |file, line: &str| (file, "[env]\n", format!("[env]\n  {line}\n"));
        let (moved, named, unknown) = (
            env(API, "API_LISTEN_ADDR = \"0.0.0.0:3000\""),
            env(API, "API_LISTEN_ADDR = \"localhost:8080\""),
            env(WORKER, "API_LISTEN_ADDR = \"0.0.0.0:8080\""),
        );
        let web_dir = ampel_api::config::WEB_DIR_VAR;
        let page_moved = env(API, &format!("{web_dir} = \"/srv/web\""));
        let image_web_dir = format!(" {web_dir}=/usr/local/share/ampel/web");
        let page = "stage api COPYs the page into /usr/local/share/ampel/web (Dockerfile:";
        let api_entrypoint = "ENTRYPOINT [\"/usr/local/bin/ampel-api\"]";
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (&[(WORKER, "port = 8081\n  path = \"/metrics\"", "port = 9091\n  path = \"/metrics\"")], &["fly/worker.toml:N: [metrics]: port 9091, path /metrics, but ampel-worker serves /metrics on port 8081 (WORKER_LISTEN_ADDR); use port 8081, path /metrics"]),
            (&[(API, "path = \"/metrics\"", "path = \"/prometheus\"")], &["fly/api.toml:N: [metrics]: port 9091, path /prometheus, but"]),
            (&[(WORKER, "[metrics]\n  port = 8081\n  path = \"/metrics\"\n", "")], &["fly/worker.toml: [metrics]: none for ampel-worker; add port 8081, path /metrics"]),
            // With /metrics on a port of its own, [metrics] follows that port.
            (&[(API, "0.0.0.0:9091", "0.0.0.0:9092")], &["fly/api.toml:N: [metrics]: port 9091, path /metrics, but ampel-api serves /metrics on port 9092 (API_METRICS_LISTEN_ADDR)"]),
            (&[(API, "0.0.0.0:9091", "127.0.0.1:9091")], &["fly/api.toml:N: API_METRICS_LISTEN_ADDR=\"127.0.0.1:9091\" binds one interface"]),
            // An [env] override of the image's address is held to the same rules.
            (&[(moved.0, moved.1, &moved.2)], &[&format!("fly/api.toml:N: API_LISTEN_ADDR=\"0.0.0.0:3000\" {default}")]),
            (&[(named.0, named.1, &named.2)], &["fly/api.toml:N: API_LISTEN_ADDR=\"localhost:8080\" is not an address like 0.0.0.0:8080; fix it"]),
            (&[(unknown.0, unknown.1, &unknown.2)], &["fly/worker.toml:N: API_LISTEN_ADDR is not read by ampel-worker, which listens on WORKER_LISTEN_ADDR; fix the variable's name"]),
            // The image names the page's folder; [env] may not point elsewhere.
            (&[(page_moved.0, page_moved.1, &page_moved.2)], &[&format!("fly/api.toml:N: {web_dir}=\"/srv/web\", but {page}")]),
            (&[("Dockerfile", &image_web_dir, "")], &[&format!("Dockerfile:N: {page}")]),
            (&[("Dockerfile", "ENV API_LISTEN_ADDR=0.0.0.0:8080", "ENV API_LISTEN_ADDR=0.0.0.0:3000")], &[&format!("Dockerfile:N: API_LISTEN_ADDR=\"0.0.0.0:3000\" {default}")]),
            (&[(API, "internal_port = 8080", "internal_port = 3000")], &["fly/api.toml:N: [http_service]: port 3000, but ampel-api serves HTTP on port 8080 (API_LISTEN_ADDR); use port 8080", "fly/api.toml:N: [[http_service.checks]] (GET): port 3000, path /health, but"]),
            (&[("Dockerfile", "ENV WORKER_LISTEN_ADDR=0.0.0.0:8081\n", "")], &["Dockerfile:N: stage worker sets no WORKER_LISTEN_ADDR, so ampel-worker listens on ampel_worker::DEFAULT_LISTEN_ADDR"]),
            (&[(API, "path = \"/health\"", "path = \"/ready\"")], &["fly/api.toml:N: [[http_service.checks]] (GET): port 8080, path /ready, but ampel-api serves /health on port 8080 (API_LISTEN_ADDR); use port 8080, path /health"]),
            (&[(API, "method = \"GET\"", "method = \"POST\"")], &["fly/api.toml: [[http_service.checks]] (GET): none for ampel-api; add port 8080, path /health"]),
            (&[(WORKER, "port = 8081\n    path", "port = 8082\n    path")], &["fly/worker.toml:N: [checks] (type = \"http\", GET): port 8082, path /health, but ampel-worker serves /health on port 8081"]),
            (&[(WORKER, "[build]", "[http_service]\n  internal_port = 8081\n\n[build]")], &["fly/worker.toml:N: [http_service] makes ampel-worker public, but it serves nothing to the Internet; remove it"]),
            (&[(WORKER, "[build]", "[[services]]\n  internal_port = 8081\n\n[build]")], &["fly/worker.toml:N: [[services]] exposes ampel-worker through Fly's proxy; remove it"]),
            (&[(API, "\n[http_service]", "\n[http_servic]"), (API, "[http_service.", "[http_servic."), (API, "[[http_service.", "[[http_servic.")], &["fly/api.toml: [http_service] is missing, so ampel-api gets no public HTTPS; add it with internal_port = 8080", "fly/api.toml: [[http_service.checks]] (GET): none for ampel-api"]),
            (&[(API, "kill_timeout = \"30s\"", "kill_timeout = \"5s\"")], &[&format!("fly/api.toml:N: kill_timeout is 5 s, but {needs}")]),
            (&[(API, "kill_timeout = \"30s\"", "kill_timeout = 5")], &["fly/api.toml:N: kill_timeout is 5 s, but "]),
            (&[(API, "kill_timeout = \"30s\"", "kill_timeout = \"30 s\"")], &["fly/api.toml:N: kill_timeout is neither seconds nor a duration like \"30s\"; set kill_timeout"]),
            (&[(WORKER, "kill_timeout = \"30s\"", "")], &["fly/worker.toml: kill_timeout is unset, so Fly kills ampel-worker 5 s after the signal, but ampel-worker may take"]),
            (&[(WORKER, "kill_signal = \"SIGTERM\"", "kill_signal = \"SIGUSR1\"")], &[&format!("fly/worker.toml:N: kill_signal = \"SIGUSR1\" is not one of telemetry::HANDLED_SIGNALS ({signals}), on which the binaries stop gracefully; set one of those")]),
            // The release command replaces CMD: repeating the ENTRYPOINT would start the server.
            (&[(API, "release_command = \"migrate\"", "release_command = \"ampel-api migrate\"")], &["fly/api.toml:N: release_command = \"ampel-api migrate\" replaces only CMD; the image's ENTRYPOINT is already ampel-api, so this runs `ampel-api ampel-api migrate`; set release_command = \"migrate\""]),
            (&[(API, "release_command = \"migrate\"", "release_command = \"serve\"")], &["fly/api.toml:N: release_command = \"serve\"; set release_command = \"migrate\""]),
            (&[(API, "release_command = \"migrate\"\n", "")], &["fly/api.toml:N: [deploy] release_command is unset, so migrations never run"]),
            (&[(WORKER, "strategy = \"rolling\"", "release_command = \"migrate\"\n  strategy = \"canary\"")], &["fly/worker.toml:N: release_command is set, but migrations run once, from fly/api.toml; remove it", "fly/worker.toml:N: [deploy] strategy = \"canary\"; set strategy = \"rolling\""]),
            (&[(WORKER, "app = \"ampel-worker\"", "app = \"ampel-api\"")], &["fly/worker.toml: app = \"ampel-api\" is also fly/api.toml's app; give each its own name"]),
            (&[(API, "app = \"ampel-api\"", "app = \" \"")], &["fly/api.toml:N: app is empty; set the Fly app name"]),
            (&[(API, "build-target = \"api\"", "build-target = \"worker\"")], &["fly/api.toml:N: [build] build-target is \"worker\"; ampel-api is built by the Dockerfile stage \"api\": set build-target = \"api\""]),
            (&[(API, "build-target = \"api\"\n", "")], &["fly/api.toml:N: [build] build-target is unset, so Fly builds the Dockerfile's last stage; ampel-api is built by"]),
            (&[(API, "dockerfile = \"../Dockerfile\"", "dockerfile = \"Dockerfile\"")], &["fly/api.toml:N: [build] dockerfile = \"Dockerfile\" (relative to fly/) does not exist; set dockerfile = \"../Dockerfile\""]),
            (&[(WORKER, "[build]\n  dockerfile = \"../Dockerfile\"\n  build-target = \"worker\"\n", "")], &["fly/worker.toml: [build] is missing; add dockerfile = \"../Dockerfile\" and build-target = \"worker\""]),
            (&[("Dockerfile", "FROM runtime AS api\n", "FROM runtime AS apx\n")], &["fly/api.toml:N: Dockerfile has no stage `AS api`; add it or change this build target"]),
            (&[("Dockerfile", "ENTRYPOINT [\"/usr/local/bin/ampel-worker\"]", "")], &["Dockerfile:N: stage worker has no ENTRYPOINT; add ENTRYPOINT [\"/usr/local/bin/ampel-worker\"]"]),
            (&[("Dockerfile", api_entrypoint, "ENTRYPOINT [\"/usr/local/bin/ampel-worker\"]")], &["Dockerfile:N: ENTRYPOINT runs /usr/local/bin/ampel-worker, but fly/api.toml deploys ampel-api from this stage; fix the ENTRYPOINT or the build target"]),
            (&[(API, "[env]", "[env")], &["fly/api.toml:N: not a Fly config ("]),
        ];
        assert_cases(cases, problems_with);
    }

    /// The collector app against its config and the overlay; the apps export to it.
    #[test]
    fn each_collector_rule_catches_its_broken_input() {
        let endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT = \"http://ampel-collector.internal:4318\"";
        let host = "OTELCOL_LISTEN_HOST = \"[::]\"";
        let header = "Authorization: ${env:OTELCOL_EXPORT_AUTHORIZATION}";
        let remote_write = "  prometheus_remote_write:\n    timeout: 10s\n";
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (&[(COLLECTOR, "[build]", "[http_service]\n  internal_port = 4318\n\n[build]")], &["fly/collector.toml:N: [http_service] makes the collector public, but it serves nothing to the Internet; remove it"]),
            (&[(COLLECTOR, "[build]", "[[services]]\n  internal_port = 4318\n\n[build]")], &["fly/collector.toml:N: [[services]] exposes the collector through Fly's proxy"]),
            (&[(COLLECTOR, "port = 13133", "port = 13134")], &["fly/collector.toml: [checks] has no type = \"http\", GET check of port 13133, path / (the health_check extension in observability/otel-collector/config.yaml)"]),
            (&[(COLLECTOR, "path = \"/\"", "path = \"/health\"")], &["fly/collector.toml: [checks] has no type = \"http\", GET check of port 13133, path /"]),
            (&[(COLLECTOR, "destination = \"/var/lib/otelcol/file_storage\"", "destination = \"/data\"")], &["fly/collector.toml:N: [mounts] destination is not /var/lib/otelcol/file_storage, where file_storage keeps the queues"]),
            (&[(COLLECTOR, host, "OTELCOL_LISTEN_HOST = \"[::]\"\n  OTELCOL_QUEUE_DIR = \"/data\"")], &["fly/collector.toml:N: [mounts] destination is not /data, where file_storage keeps the queues"]),
            (&[(COLLECTOR, "[mounts]", "[mountz]")], &["fly/collector.toml: [mounts] is missing, so the queues in /var/lib/otelcol/file_storage die with the Machine"]),
            (&[(COLLECTOR, "initial_size = \"1gb\"", "initial_size = \"1 TB\"")], &["fly/collector.toml:N: [mounts] needs source (the volume's name), initial_size like \"1gb\""]),
            (&[(COLLECTOR, host, "OTELCOL_LISTEN_HOST = \"0.0.0.0\"")], &["fly/collector.toml:N: OTELCOL_LISTEN_HOST = \"0.0.0.0\", but the apps reach the collector at <app>.internal, which resolves to a private IPv6 (6PN) address; set OTELCOL_LISTEN_HOST = \"[::]\""]),
            (&[(COLLECTOR, host, "")], &["fly/collector.toml: [env] sets no OTELCOL_LISTEN_HOST"]),
            (&[(COLLECTOR, "kill_timeout = \"30s\"", "kill_timeout = \"10s\"")], &["fly/collector.toml:N: kill_timeout must be more than exporter "]),
            (&[(COLLECTOR, "kill_timeout = \"30s\"", "")], &["fly/collector.toml: kill_timeout is unset (Fly's default is 5 s); it must be more than exporter "]),
            (&[(COLLECTOR, "kill_signal = \"SIGTERM\"", "kill_signal = \"SIGKILL\"")], &["fly/collector.toml:N: kill_signal = \"SIGKILL\"; the collector stops gracefully on SIGTERM or SIGINT"]),
            (&[(COLLECTOR, "dockerfile = \"collector.Dockerfile\"", "dockerfile = \"../Dockerfile.collector\"")], &["fly/collector.toml:N: [build] dockerfile = \"../Dockerfile.collector\" (relative to fly/) does not exist"]),
            (&[(COLLECTOR, "app = \"ampel-collector\"", "app = \"\"")], &["fly/collector.toml:N: app is empty", "fly/api.toml:N: OTEL_EXPORTER_OTLP_ENDPOINT = \"http://ampel-collector.internal:4318\"; set OTEL_EXPORTER_OTLP_ENDPOINT = \"http://.internal:4318\"", "fly/worker.toml:N: OTEL_EXPORTER_OTLP_ENDPOINT"]),
            (&[(COLLECTOR, "app = \"ampel-collector\"", "app = \"ampel-api\"")], &["fly/api.toml: app = \"ampel-api\" is also fly/collector.toml's app", "fly/api.toml:N: OTEL_EXPORTER_OTLP_ENDPOINT", "fly/worker.toml:N: OTEL_EXPORTER_OTLP_ENDPOINT"]),
            (&[(API, endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT = \"http://otel-collector:4318\"")], &["fly/api.toml:N: OTEL_EXPORTER_OTLP_ENDPOINT = \"http://otel-collector:4318\"; set OTEL_EXPORTER_OTLP_ENDPOINT = \"http://ampel-collector.internal:4318\" in [env]"]),
            (&[(WORKER, endpoint, "")], &["fly/worker.toml: OTEL_EXPORTER_OTLP_ENDPOINT is unset, so its telemetry goes nowhere"]),
            (&[(OVERLAY, header, "Authorization: Basic c2VjcmV0")], &["fly/collector.yaml:N: exporter otlp_http/traces needs headers: {Authorization: ${env:NAME}} with NAME one of the collector's secrets"]),
            (&[(OVERLAY, remote_write, "  prometheus_remote_writ:\n    timeout: 10s\n")], &["fly/collector.yaml: exporter prometheus_remote_write of observability/otel-collector/config.yaml has no entry here", "fly/collector.yaml:N: exporter prometheus_remote_writ is not in observability/otel-collector/config.yaml"]),
            (&[(OVERLAY, remote_write, "  prometheus_remote_write:\n    timeut: 10s\n")], &["fly/collector.yaml:N: not the collector config expected ("]),
            (&[(OVERLAY, remote_write, "  prometheus_remote_write:\n")], &["fly/collector.yaml:N: exporter prometheus_remote_write needs a timeout like \"10s\""]),
            (&[(SHARED, "${env:OTELCOL_LOGS_ENDPOINT:-", "${env:OTELCOL_LOKI_URL:-")], &["observability/otel-collector/config.yaml:N: exporter otlp_http/logs sends to \"${env:OTELCOL_LOKI_URL:-http://loki:3100/otlp}\", which on Fly is not one of the collector's secrets"]),
            (&[(SHARED, "health_check:\n", "health_checks:\n")], &["observability/otel-collector/config.yaml:N: no health_check extension with an endpoint"]),
            (&[(SHARED, "file_storage:\n", "file_storag:\n")], &["observability/otel-collector/config.yaml: no file_storage extension with a directory"]),
            (&[(SHARED, "${env:OTELCOL_LISTEN_HOST:-localhost}:4318", "0.0.0.0:4318")], &["observability/otel-collector/config.yaml:N: the otlp receiver's http endpoint has no ${env:…} host"]),
        ];
        assert_cases(cases, problems_with);
    }
}
