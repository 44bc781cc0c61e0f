//! The deploy's last step: wait, up to a deadline, until the new version is the one answering.
//!
//! The api is asked over HTTP, as a user would reach it: `/health`, then `/version`, whose
//! `commit` must be the deployed revision. The worker has no public address, so flyctl's view
//! of its Machines stands in: all started, running the image labelled with the revision, every
//! check passing.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use otel_testkit::eventually;
use serde::Deserialize;

use super::flyctl::Flyctl;
use super::secrets::Secrets;

/// One request may not use up the whole deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `{base}/health` and `{base}/version` until the version reports `revision`.
pub fn api(base: &str, revision: &str, timeout: Duration) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let what = format!("{base}/version reporting commit {revision}");
        eventually(&what, Instant::now(), timeout, || async {
            look_at_api(&client, base, revision)
                .await
                .map_err(|seen| anyhow!(seen))
        })
        .await
        .map_err(|timed_out| {
            anyhow!(
                "the api did not report commit {revision} within {} s; last seen: {}",
                timeout.as_secs(),
                timed_out.last_seen
            )
        })?;
        Ok(())
    })
}

/// The checks wait on Tokio's clock; one thread is enough for one look at a time.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// One look: `Ok` when the new version answers, otherwise what was seen instead.
async fn look_at_api(client: &reqwest::Client, base: &str, revision: &str) -> Result<(), String> {
    get_ok(client, &format!("{base}/health")).await?;
    let version_url = format!("{base}/version");
    let response = get_ok(client, &version_url).await?;
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

/// `GET url`, answered with a success status; otherwise what happened instead.
async fn get_ok(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| format!("GET {url}: {}", chain(&err)))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    Ok(response)
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
    let args = args.as_slice();
    let what = format!("{app}'s Machines running {revision} and passing their checks");
    // flyctl is run synchronously inside the probe: the runtime has nothing else to do meanwhile.
    let look = move || async move {
        let observation = match flyctl.json::<Status>(args, secrets) {
            Ok(status) => match unready_machines(&status, revision) {
                None => return Ok(()),
                Some(observation) => observation,
            },
            Err(failure) => format!(
                "`{}` failed ({}): {}",
                flyctl.display(args),
                failure.status,
                failure.tail.join(" / ")
            ),
        };
        Err(anyhow!(observation))
    };
    runtime()?
        .block_on(eventually(&what, Instant::now(), timeout, look))
        .map_err(|timed_out| {
            anyhow!(
                "{app}'s Machines did not all run {revision} and pass their checks within {} s; last seen: {}",
                timeout.as_secs(),
                timed_out.last_seen
            )
        })?;
    Ok(())
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
