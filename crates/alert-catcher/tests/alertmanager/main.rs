//! The catcher against the real Alertmanager: Debian's `prometheus-alertmanager` (0.25) as a
//! process, configured by `observability/alertmanager/entrypoint.sh --render-only` from the
//! shipped `alertmanager.yml`, its receivers pointed at an in-process catcher. Fails under
//! `CI=true` when the binary is missing, and skips otherwise.
//!
//! ```text
//! cargo test -p alert-catcher --test alertmanager
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alert_catcher::{
    AlertCatcher, Notification, PAGERDUTY_PATH, Receiver, SLACK_PATH_PREFIX, Status,
};
use anyhow::Context as _;
use otel_testkit::container::under_ci;
use otel_testkit::eventually;
use otel_testkit::process::{self, Process};
use serde_json::json;

/// Where Debian's package (which CI installs) puts the binary.
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// From an alert posted to a notification received: group_wait (1s here) plus a debug build's
/// and a loaded machine's slowness.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(60);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The secrets the rendered config hands to Alertmanager (written to files by the entrypoint).
const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
const SLACK_SECRET_PATH: &str = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";

/// One alert of the test and the receiver its severity routes it to.
struct Alert {
    alertname: &'static str,
    service: &'static str,
    severity: &'static str,
    summary: &'static str,
    receiver: Receiver,
}

impl Alert {
    fn runbook_url(&self) -> String {
        format!("https://runbook.test/{}", self.alertname)
    }

    /// As Prometheus posts it to `/api/v2/alerts`; `ends_at` in the past resolves it.
    fn posted(&self, starts_at: &str, ends_at: Option<&str>) -> serde_json::Value {
        let mut alert = json!({
            "labels": {"alertname": self.alertname, "service": self.service, "severity": self.severity},
            "annotations": {"summary": self.summary, "runbook_url": self.runbook_url()},
            "startsAt": starts_at,
        });
        if let Some(ends_at) = ends_at {
            alert["endsAt"] = json!(ends_at);
        }
        alert
    }

    /// Whether `notification` is this alert's, with `status`, at the right receiver.
    fn delivered(&self, notification: &Notification, status: Status) -> bool {
        notification.receiver == self.receiver
            && notification.status == status
            && notification.alertname == self.alertname
            && notification.service == self.service
            && notification.summary == self.summary
            && notification.runbook_url == self.runbook_url()
    }
}

/// One per severity, each of its own service so that the critical one inhibits nothing; the
/// summaries are not ASCII, which mail headers carry encoded.
const ALERTS: [Alert; 3] = [
    Alert {
        alertname: "CatcherTestCritical",
        service: "api",
        severity: "critical",
        summary: "The api is down — page someone.",
        receiver: Receiver::PagerDuty,
    },
    Alert {
        alertname: "CatcherTestWarning",
        service: "worker",
        severity: "warning",
        summary: "Jobs fail — look soon.",
        receiver: Receiver::Slack,
    },
    Alert {
        alertname: "CatcherTestInfo",
        service: "poller",
        severity: "info",
        summary: "Polls are late — for the record.",
        receiver: Receiver::Email,
    },
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Renders the shipped template with the entrypoint, as the container does, pointing every
/// receiver at `catcher`; returns the rendered file.
fn render(catcher: &AlertCatcher, dir: &Path) -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let http = catcher.http_addr();
    let output = std::process::Command::new("sh")
        .arg(root.join("observability/alertmanager/entrypoint.sh"))
        .arg("--render-only")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "ALERTMANAGER_TEMPLATE",
            root.join("observability/alertmanager/alertmanager.yml"),
        )
        .env("ALERTMANAGER_SECRETS_DIR", dir.join("secrets"))
        .env("PAGERDUTY_URL", format!("http://{http}{PAGERDUTY_PATH}"))
        .env("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
        .env(
            "SLACK_WEBHOOK_URL",
            format!("http://{http}{SLACK_PATH_PREFIX}{SLACK_SECRET_PATH}"),
        )
        .env("SLACK_CHANNEL", "#alerts")
        .env("SMTP_SMARTHOST", catcher.smtp_addr().to_string())
        .env("SMTP_FROM", "alertmanager@ampel.test")
        .env("SMTP_USERNAME", "")
        .env("SMTP_PASSWORD", "")
        .env("SMTP_REQUIRE_TLS", "false")
        .env("ALERT_EMAIL_TO", "oncall@ampel.test")
        .env("ALERTMANAGER_GROUP_WAIT", "1s")
        .env("ALERTMANAGER_GROUP_INTERVAL", "1s")
        .env("ALERTMANAGER_REPEAT_INTERVAL", "1h")
        .output()
        .context("run entrypoint.sh --render-only with sh")?;
    anyhow::ensure!(
        output.status.success(),
        "entrypoint.sh --render-only failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

async fn start_alertmanager(config: &Path, dir: &Path) -> anyhow::Result<Process> {
    let web = process::free_port(LOOPBACK)?;
    let mut command = tokio::process::Command::new(ALERTMANAGER);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={web}"))
        // No peers: a single instance must not try to gossip.
        .arg("--cluster.listen-address=");
    let hint = format!("start {ALERTMANAGER}: is prometheus-alertmanager installed?");
    let mut alertmanager = Process::spawn(
        "alertmanager",
        command,
        &hint,
        web,
        dir.join("alertmanager.log"),
    )?;
    alertmanager.ready("/-/ready").await?;
    Ok(alertmanager)
}

async fn post_alerts(alertmanager: &Process, alerts: Vec<serde_json::Value>) -> anyhow::Result<()> {
    let url = format!("{}/api/v2/alerts", alertmanager.base_url);
    let response = reqwest::Client::new()
        .post(&url)
        .json(&alerts)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "POST {url}: {status}: {}",
        response.text().await?
    );
    Ok(())
}

/// A notification on one line, without its time.
fn brief(n: &Notification) -> String {
    format!(
        "{:?} {:?} {}/{} summary {:?} runbook {:?}",
        n.receiver, n.status, n.alertname, n.service, n.summary, n.runbook_url
    )
}

/// Waits until every alert of [`ALERTS`] has reached its receiver with `status`, and nothing
/// reached another one; returns how long that took.
async fn delivered(catcher: &AlertCatcher, status: Status, since: Instant) -> Duration {
    let what = format!("{status:?} notifications at their receivers");
    let visible = eventually(&what, since, NOTIFY_DEADLINE, || async {
        let seen = catcher.notifications();
        for alert in &ALERTS {
            anyhow::ensure!(
                seen.iter().any(|n| alert.delivered(n, status)),
                "{} not at {:?} yet; seen: [{}]",
                alert.alertname,
                alert.receiver,
                seen.iter().map(brief).collect::<Vec<_>>().join("; ")
            );
            let astray: Vec<&Notification> = seen
                .iter()
                .filter(|n| n.alertname == alert.alertname && n.receiver != alert.receiver)
                .collect();
            anyhow::ensure!(
                astray.is_empty(),
                "{} went astray: {astray:#?}",
                alert.alertname
            );
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|timed_out| panic!("{timed_out}"));
    visible.after
}

/// Alertmanager, routing with the shipped config, delivers the critical alert as a PagerDuty
/// event, the warning as a Slack message and the info as a mail, each carrying its alertname,
/// service, summary and runbook URL; resolving them delivers "resolved" to the same receivers.
#[tokio::test]
async fn alertmanager_notifications_reach_the_catcher() {
    if !Path::new(ALERTMANAGER).exists() {
        let reason = format!("{ALERTMANAGER} is missing: apt-get install prometheus-alertmanager");
        assert!(
            !under_ci(),
            "the Alertmanager test cannot run, and CI=true: {reason}"
        );
        eprintln!("skipped the Alertmanager test: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let any = SocketAddr::new(LOOPBACK, 0);
    let catcher = AlertCatcher::start(any, any).await.unwrap();
    let config = render(&catcher, dir.path()).unwrap();
    let alertmanager = start_alertmanager(&config, dir.path()).await.unwrap();

    let starts_at = chrono::Utc::now().to_rfc3339();
    let firing = ALERTS
        .iter()
        .map(|alert| alert.posted(&starts_at, None))
        .collect();
    let posted = Instant::now();
    post_alerts(&alertmanager, firing).await.unwrap();
    let to_fire = delivered(&catcher, Status::Firing, posted).await;

    let ends_at = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let resolved = ALERTS
        .iter()
        .map(|alert| alert.posted(&starts_at, Some(&ends_at)))
        .collect();
    let posted = Instant::now();
    post_alerts(&alertmanager, resolved).await.unwrap();
    let to_resolve = delivered(&catcher, Status::Resolved, posted).await;
    eprintln!(
        "alert posted -> all 3 notified: firing {:.1}s, resolved {:.1}s (group_wait 1s)",
        to_fire.as_secs_f64(),
        to_resolve.as_secs_f64()
    );

    let log = std::fs::read_to_string(&alertmanager.log).unwrap_or_default();
    alertmanager.stop(Duration::from_secs(10)).await.unwrap();
    assert!(
        !log.contains("level=error"),
        "Alertmanager logged errors (a receiver refused?):\n{log}"
    );
}
