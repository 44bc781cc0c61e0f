//! The deploy's last step: wait, up to a deadline, until the new version is the one answering.
//!
//! The api is asked over HTTP, as a user would reach it: `/health`, then `/version`, whose
//! `commit` must be the deployed revision. The worker has no public address, so flyctl's view
//! of its Machines stands in: all started, running the image labelled with the revision, every
//! check passing.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Deserialize;

use super::flyctl::Flyctl;
use super::secrets::Secrets;

/// Pause between two looks; short, since a look costs one or two small requests.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// One request may not use up the whole deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `{base}/health` and `{base}/version` until the version reports `revision`.
pub fn api(base: &str, revision: &str, timeout: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let deadline = Instant::now() + timeout;
        loop {
            let last = match look_at_api(&client, base, revision).await {
                Ok(()) => return Ok(()),
                Err(observation) => observation,
            };
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                bail!(
                    "the api did not report commit {revision} within {} s; last seen: {last}",
                    timeout.as_secs()
                );
            };
            tokio::time::sleep(left.min(POLL_INTERVAL)).await;
        }
    })
}

/// One look: `Ok` when the new version answers, otherwise what was seen instead.
async fn look_at_api(client: &reqwest::Client, base: &str, revision: &str) -> Result<(), String> {
    let health_url = format!("{base}/health");
    let health = client
        .get(&health_url)
        .send()
        .await
        .map_err(|err| format!("GET {health_url}: {}", chain(&err)))?;
    if !health.status().is_success() {
        return Err(format!("GET {health_url} answered {}", health.status()));
    }
    let version_url = format!("{base}/version");
    let response = client
        .get(&version_url)
        .send()
        .await
        .map_err(|err| format!("GET {version_url}: {}", chain(&err)))?;
    if !response.status().is_success() {
        return Err(format!("GET {version_url} answered {}", response.status()));
    }
    let version: serde_json::Value = response
        .json()
        .await
        .map_err(|err| format!("GET {version_url} did not answer JSON: {}", chain(&err)))?;
    match version.get("commit").and_then(serde_json::Value::as_str) {
        Some(commit) if commit == revision => Ok(()),
        Some(commit) => Err(format!("{version_url} reports commit {commit}")),
        None => Err(format!("{version_url} has no \"commit\" field: {version}")),
    }
}

/// `flyctl status --json`, as far as the check reads it.
#[derive(Debug, Deserialize)]
struct Status {
    #[serde(rename = "Machines", default)]
    machines: Vec<Machine>,
}

#[derive(Debug, Deserialize)]
struct Machine {
    id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    image_ref: ImageRef,
    #[serde(default)]
    checks: Vec<CheckStatus>,
}

#[derive(Debug, Default, Deserialize)]
struct ImageRef {
    #[serde(default)]
    tag: String,
}

#[derive(Debug, Deserialize)]
struct CheckStatus {
    name: String,
    status: String,
}

/// Polls `flyctl status --app <app> --json` until every Machine runs `revision` and is healthy.
pub fn machines(
    flyctl: &Flyctl,
    app: &str,
    revision: &str,
    timeout: Duration,
    secrets: &Secrets,
) -> anyhow::Result<()> {
    let args: Vec<String> = ["status", "--app", app, "--json"].map(String::from).into();
    let deadline = Instant::now() + timeout;
    loop {
        let last = match flyctl.json::<Status>(&args, secrets) {
            Ok(status) => match unready_machines(&status, revision) {
                None => return Ok(()),
                Some(observation) => observation,
            },
            Err(failure) => format!(
                "`{}` failed ({}): {}",
                flyctl.display(&args),
                failure.status,
                failure.tail.join(" / ")
            ),
        };
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            bail!(
                "{app}'s Machines did not all run {revision} and pass their checks within {} s; last seen: {last}",
                timeout.as_secs()
            );
        };
        std::thread::sleep(left.min(POLL_INTERVAL));
    }
}

/// `None` when every Machine is started, on `revision` and passing; otherwise what is not.
fn unready_machines(status: &Status, revision: &str) -> Option<String> {
    if status.machines.is_empty() {
        return Some("no Machines".into());
    }
    let unready: Vec<String> = status
        .machines
        .iter()
        .filter_map(|machine| {
            let failing: Vec<String> = machine
                .checks
                .iter()
                .filter(|check| check.status != "passing")
                .map(|check| format!("{}={}", check.name, check.status))
                .collect();
            let ready = machine.state == "started"
                && machine.image_ref.tag == revision
                && failing.is_empty();
            (!ready).then(|| {
                format!(
                    "Machine {} is {} on image {} with checks [{}]",
                    machine.id,
                    machine.state,
                    machine.image_ref.tag,
                    failing.join(", ")
                )
            })
        })
        .collect();
    (!unready.is_empty()).then(|| unready.join("; "))
}

/// An error with its causes, which reqwest keeps out of `Display` (e.g. "connection refused").
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
