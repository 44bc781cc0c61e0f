//! `fly/collector.toml`, the OpenTelemetry Collector on Fly, against the collector's own config:
//! the one compose uses too (`SHARED`) merged with the Fly overlay (`OVERLAY`), as
//! fly/collector.Dockerfile passes them. Nothing public reaches it; its health check asks the
//! `health_check` extension's port; its volume is mounted where `file_storage` keeps the queues;
//! it listens on Fly's private IPv6 network; every exporter sends to an endpoint and with an
//! Authorization header that are secrets of the collector (`super::super::secrets`); and
//! kill_timeout outlasts every exporter's request timeout, so an export in flight at the stop
//! signal can finish.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

use fly_deploy::config::{FlyConfig, kill_timeout, parse_go_duration};

use super::{Report, check_private};
use crate::deploy::secrets;
use crate::problem::Problem;
use xtask::flags::FlyApp;

pub const CONFIG: &str = "fly/collector.toml";
/// The collector config compose and Fly share.
const SHARED: &str = "observability/otel-collector/config.yaml";
/// What only Fly adds, merged after `SHARED` (a later `--config` wins key by key).
const OVERLAY: &str = "fly/collector.yaml";
/// The listen host on Fly: `.internal` names resolve to 6PN addresses, which are IPv6, and `[::]`
/// listens on them (0.0.0.0 would be IPv4 only).
const LISTEN_HOST: &str = "[::]";
const AUTHORIZATION: &str = "Authorization";
/// Fly's signals the collector stops gracefully on.
const SIGNALS: [&str; 2] = ["SIGTERM", "SIGINT"];

/// The parts of `SHARED` the Fly app depends on; everything else is the collector's business.
#[derive(Deserialize)]
struct Shared {
    #[serde(default)]
    extensions: BTreeMap<String, Value>,
    #[serde(default)]
    receivers: BTreeMap<String, Value>,
    #[serde(default)]
    exporters: BTreeMap<String, Value>,
}

/// `OVERLAY`: only what a hosted backend needs. Unknown keys are refused, because `otelcol
/// validate` accepts a misspelt key inside an exporter and the setting would silently not apply.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Overlay {
    exporters: BTreeMap<String, OverlayExporter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayExporter {
    timeout: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A listener or exporter address, `${env:VAR:-default}:port` or a URL: the variable it reads.
fn env_var(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("${env:")?;
    let end = rest.find([':', '}'])?;
    Some(&rest[..end])
}

/// `${env:VAR:-default}` as the collector reads it on Fly: `VAR` from `[env]`, else the default;
/// other text as it is.
fn resolve(text: &str, config: &FlyConfig) -> Option<String> {
    let Some(var) = env_var(text) else {
        return Some(text.to_owned());
    };
    match config.env.get(var) {
        Some(value) => Some(value.get_ref().clone()),
        None => text
            .split_once(":-")?
            .1
            .strip_suffix('}')
            .map(str::to_owned),
    }
}

/// The port at the end of a listener's `endpoint`.
fn port(endpoint: &str) -> Option<u16> {
    endpoint.rsplit_once(':')?.1.parse().ok()
}

fn string<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))?
        .as_str()
}

/// Reads a YAML file of the workspace, recording a problem when it cannot.
fn yaml<T: serde::de::DeserializeOwned>(
    root: &Path,
    file: &str,
    problems: &mut Vec<Problem>,
) -> Option<(String, T)> {
    let text = std::fs::read_to_string(root.join(file))
        .map_err(|err| {
            let message = format!("cannot read it ({err}); restore it from git");
            problems.push(Problem::new(file, None, message));
        })
        .ok()?;
    match serde_yaml::from_str(&text) {
        Ok(parsed) => Some((text, parsed)),
        Err(err) => {
            let line = err.location().map(|at| at.line());
            let message = format!("not the collector config expected ({err}); fix it");
            problems.push(Problem::new(file, line, message));
            None
        }
    }
}

/// The collector app's problems; returns the OTLP/HTTP port the apps export to, when known.
pub fn check(root: &Path, config: &FlyConfig, report: &mut Report<'_>) -> Option<u16> {
    if config.app.get_ref().trim().is_empty() {
        report.at(&config.app, "app is empty; set the Fly app name");
    }
    let name = "the collector";
    check_private(name, config, report);
    check_build(root, config, report);
    let (shared_text, shared) = yaml::<Shared>(root, SHARED, report.problems)?;
    let overlay = yaml::<Overlay>(root, OVERLAY, report.problems);
    let extension = |kind: &str| {
        shared
            .extensions
            .iter()
            .find(|(id, _)| *id == kind || id.starts_with(&format!("{kind}/")))
            .map(|(_, value)| value)
    };

    // The health check asks the health_check extension.
    let health = extension("health_check").and_then(|value| string(value, &["endpoint"]));
    match health.and_then(port) {
        Some(health) => check_health(health, config, report),
        None => report.problems.push(Problem::near(
            SHARED,
            &shared_text,
            "extensions:",
            "no health_check extension with an endpoint; Fly's check of fly/collector.toml needs one",
        )),
    }

    // The queues' directory is the volume.
    let directory = extension("file_storage")
        .and_then(|value| string(value, &["directory"]))
        .and_then(|directory| resolve(directory, config));
    let directory = directory.as_deref();
    let mount = config.mounts.as_ref();
    let first = mount.and_then(|mount| mount.get_ref().as_slice().first());
    match (directory, mount, first) {
        (None, ..) => report.problems.push(Problem::new(
            SHARED,
            None,
            "no file_storage extension with a directory, so the Fly collector's queues are in memory \
             and a restart loses them; add one and use it as the exporters' sending_queue storage",
        )),
        (Some(directory), _, Some(first)) if first.destination == directory => {
            if config.volume().is_none() {
                report.at(mount.expect("matched a mount"), format_args!(
                    "[mounts] needs source (the volume's name), initial_size like \"1gb\", and primary_region must be set: \
                     the deploy creates the volume {} with them when it is missing", first.source
                ));
            }
        }
        (Some(directory), Some(mount), _) => report.at(mount, format_args!(
            "[mounts] destination is not {directory}, where file_storage keeps the queues ({SHARED}); set destination = {directory:?}"
        )),
        (Some(directory), None, _) => report.push(None, format_args!(
            "[mounts] is missing, so the queues in {directory} die with the Machine; add source = \"otelcol_queue\", \
             destination = {directory:?}, initial_size = \"1gb\""
        )),
    }

    // The apps reach the receiver over 6PN.
    let otlp = shared
        .receivers
        .get("otlp")
        .and_then(|otlp| string(otlp, &["protocols", "http", "endpoint"]));
    let host_var = otlp.and_then(env_var);
    match host_var {
        Some(var) => match config.env.get(var) {
            Some(host) if host.get_ref() == LISTEN_HOST => {}
            Some(host) => report.at(host, format_args!(
                "{var} = {:?}, but the apps reach the collector at <app>.internal, which resolves to a private IPv6 (6PN) address; set {var} = {LISTEN_HOST:?}",
                host.get_ref()
            )),
            None => report.push(None, format_args!(
                "[env] sets no {var}, so the collector listens on its default, which the apps cannot reach over Fly's private network; set {var} = {LISTEN_HOST:?}"
            )),
        },
        None => report.problems.push(Problem::near(
            SHARED,
            &shared_text,
            "receivers:",
            "the otlp receiver's http endpoint has no ${env:…} host, so Fly cannot make it listen on 6PN; use ${env:OTELCOL_LISTEN_HOST:-localhost}:4318",
        )),
    }

    if let Some((text, overlay)) = overlay {
        let texts = [shared_text.as_str(), text.as_str()];
        check_exporters(&shared, texts, &overlay, config, report);
    }
    otlp.and_then(port)
}

fn check_build(root: &Path, config: &FlyConfig, report: &mut Report<'_>) {
    let dockerfile = config
        .build
        .as_ref()
        .and_then(|build| build.get_ref().dockerfile.as_ref());
    let Some(dockerfile) = dockerfile else {
        return report.push(
            None,
            "[build] dockerfile is unset; set dockerfile = \"collector.Dockerfile\"",
        );
    };
    // Relative to fly/, as flyctl resolves it.
    if !root.join("fly").join(dockerfile.get_ref()).is_file() {
        report.at(dockerfile, format_args!(
            "[build] dockerfile = {:?} (relative to fly/) does not exist; set dockerfile = \"collector.Dockerfile\"",
            dockerfile.get_ref()
        ));
    }
}

fn check_health(port: u16, config: &FlyConfig, report: &mut Report<'_>) {
    let asks = config.checks.values().any(|check| {
        let check = check.get_ref();
        let get = check
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case("GET"));
        check.kind.as_deref() == Some("http")
            && check.port == Some(port)
            && check.path.as_deref() == Some("/")
            && get
    });
    if !asks {
        report.push(None, format_args!(
            "[checks] has no type = \"http\", GET check of port {port}, path / (the health_check extension in {SHARED}), \
             so a broken collector passes the deploy; add [checks.health] with them"
        ));
    }
}

/// Every exporter of the shared config sends to a secret endpoint, with a secret Authorization
/// header and a timeout in the overlay that kill_timeout outlasts.
fn check_exporters(
    shared: &Shared,
    [shared_text, text]: [&str; 2],
    overlay: &Overlay,
    config: &FlyConfig,
    report: &mut Report<'_>,
) {
    let secrets = secrets::names_of(FlyApp::Collector);
    let secret = |var: Option<&str>| var.is_some_and(|var| secrets.contains(&var));
    let known = secrets.join(", ");
    let mut longest = None;
    for (id, exporter) in &shared.exporters {
        let endpoint = string(exporter, &["endpoint"]).unwrap_or_default();
        if !secret(env_var(endpoint)) {
            report.problems.push(Problem::near(SHARED, shared_text, id, format!(
                "exporter {id} sends to {endpoint:?}, which on Fly is not one of the collector's secrets ({known}); \
                 read its address from one of them, or add a secret to deploy/secrets.rs"
            )));
        }
        let Some(added) = overlay.exporters.get(id) else {
            report.problems.push(Problem::new(OVERLAY, None, format!(
                "exporter {id} of {SHARED} has no entry here, so on Fly it sends without the backend's {AUTHORIZATION} header; add it with timeout and headers"
            )));
            continue;
        };
        let header = added.headers.get(AUTHORIZATION).map(String::as_str);
        let var = header.and_then(|value| value.strip_prefix("${env:")?.strip_suffix('}'));
        if !secret(var) {
            report.problems.push(Problem::near(OVERLAY, text, id, format!(
                "exporter {id} needs headers: {{{AUTHORIZATION}: ${{env:NAME}}}} with NAME one of the collector's secrets ({known}), \
                 so the value never sits in a file"
            )));
        }
        match added.timeout.as_deref().and_then(parse_go_duration) {
            Some(timeout) => longest = longest.max(Some((timeout, id))),
            None => report.problems.push(Problem::near(OVERLAY, text, id, format!(
                "exporter {id} needs a timeout like \"10s\", which kill_timeout in {CONFIG} must outlast"
            ))),
        }
    }
    for id in overlay
        .exporters
        .keys()
        .filter(|id| !shared.exporters.contains_key(*id))
    {
        report.problems.push(Problem::near(OVERLAY, text, id, format!(
            "exporter {id} is not in {SHARED}, so this entry would add an exporter no pipeline uses; fix the name"
        )));
    }
    if let Some(signal) = &config.kill_signal
        && !SIGNALS.contains(&signal.get_ref().as_str())
    {
        report.at(signal, format_args!(
            "kill_signal = {:?}; the collector stops gracefully on {}: set kill_signal = \"SIGTERM\"",
            signal.get_ref(),
            SIGNALS.join(" or ")
        ));
    }
    let Some((longest, id)) = longest else { return };
    let wanted = format!(
        "more than exporter {id}'s timeout of {} s in {OVERLAY}, so an export in flight at the signal can finish; set kill_timeout = \"30s\"",
        longest.as_secs_f64()
    );
    match &config.kill_timeout {
        None => report.push(
            None,
            format_args!("kill_timeout is unset (Fly's default is 5 s); it must be {wanted}"),
        ),
        Some(value) => match kill_timeout(value.get_ref()) {
            Some(timeout) if timeout > longest => {}
            _ => report.at(value, format_args!("kill_timeout must be {wanted}")),
        },
    }
}
