//! The deploy's last step: wait, up to a deadline, until the new version is the one answering.
//!
//! The api is asked over HTTP, as a user would reach it: `/health`, then `/version`, whose
//! `commit` must be the deployed revision. The collector and the worker have no public address,
//! so flyctl's view of their Machines stands in: all started, running the image labelled with
//! the revision, every check passing (`fly_deploy::status`).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use fly_deploy::flyctl::Flyctl;
use otel_testkit::eventually;

use super::secrets::Secrets;

/// One request may not use up the whole deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `{base}/health` and `{base}/version` until the version reports `revision`.
pub fn api(base: &str, revision: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    wait(
        &format!("{base}/version reporting commit {revision}"),
        &format!("the api did not report commit {revision}"),
        timeout,
        || look_at_api(&client, base, revision),
    )
}

/// One look: `Ok` when the new version answers, otherwise what was seen instead.
async fn look_at_api(client: &reqwest::Client, base: &str, revision: &str) -> anyhow::Result<()> {
    get_ok(client, &format!("{base}/health")).await?;
    let version_url = format!("{base}/version");
    let version: serde_json::Value = get_ok(client, &version_url)
        .await?
        .json()
        .await
        .with_context(|| format!("GET {version_url} did not answer JSON"))?;
    match version.get("commit").and_then(serde_json::Value::as_str) {
        Some(commit) if commit == revision => Ok(()),
        Some(commit) => bail!("{version_url} reports commit {commit}"),
        None => bail!("{version_url} has no \"commit\" field: {version}"),
    }
}

/// `GET url`, answered with a success status; otherwise what happened instead (with the causes
/// reqwest keeps out of its own message, e.g. "connection refused").
async fn get_ok(client: &reqwest::Client, url: &str) -> anyhow::Result<reqwest::Response> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url} answered {}", response.status());
    }
    Ok(response)
}

/// Polls `flyctl status --app <app> --json` until every Machine runs `revision` and is healthy.
pub fn machines(
    flyctl: &Flyctl,
    app: &str,
    revision: &str,
    timeout: Duration,
    secrets: &Secrets,
) -> anyhow::Result<()> {
    // flyctl is run synchronously inside the probe: the runtime has nothing else to do meanwhile.
    let look = || async {
        let status = flyctl
            .status(app, secrets.mask())
            .map_err(|failure| anyhow!(failure.summary()))?;
        status.ready(revision)
    };
    wait(
        &format!("{app}'s Machines running {revision} and passing their checks"),
        &format!("{app}'s Machines did not all run {revision} and pass their checks"),
        timeout,
        look,
    )
}

/// Runs `look` until it passes or `timeout` is over; the error says `failed` and what the last
/// look saw.
fn wait<Fut>(
    what: &str,
    failed: &str,
    timeout: Duration,
    look: impl FnMut() -> Fut,
) -> anyhow::Result<()>
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    // The checks wait on Tokio's clock; one thread is enough for one look at a time.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(eventually(what, Instant::now(), timeout, look))
        .map_err(|timed_out| {
            let seconds = timeout.as_secs();
            anyhow!(
                "{failed} within {seconds} s; last seen: {}",
                timed_out.last_seen
            )
        })?;
    Ok(())
}
