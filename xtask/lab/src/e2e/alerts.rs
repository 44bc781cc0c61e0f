//! `cargo xtask e2e --alerts`: an alert fires in a running stack and reaches the right receiver.
//!
//! The e2e's stack plus Alertmanager as compose runs it. Prometheus scrapes and evaluates every
//! second and runs the shipped rules on a compressed clock
//! (`otel_testkit::prometheus::rules::compress`: every `for:` and window divided by
//! [`TIME_SCALE`], thresholds as shipped). Alertmanager's receivers point at the local catcher
//! (`alert_catcher`, in-process: PagerDuty's Events API, Slack's webhooks and SMTP, which cannot
//! be reached from here), its grouping timings at a second. Each round:
//!
//! 1. the fault: PostgreSQL is paused while the api serves steady traffic, so every request hangs
//!    until the api's request timeout and ends in a 503;
//! 2. the critical alert ([`CRITICAL`]) fires in Prometheus and its PagerDuty event arrives with
//!    the rule's service, summary and runbook URL: the time from fault to notification;
//! 3. the warning of the same service ([`INHIBITED`]: the slow requests) fires too, and
//!    Alertmanager holds it suppressed by a critical alert of that service (the 5xx alert, or an
//!    SLO page, whichever fired first); no Slack message for it arrives while the fault lasts;
//! 4. PostgreSQL thawed: the resolved event arrives.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use alert_catcher::{AlertCatcher, Notification, Receiver, Status};
use anyhow::Context as _;
use otel_testkit::alertmanager::Alertmanager;
use otel_testkit::checks::{Check, Checks};
use otel_testkit::eventually;
use otel_testkit::queries::RuleFile;

use super::apps::{self, Service};
use super::stack::{Clock, Stack};

/// How much faster than shipped the rules run: 5 minutes of errors become 10 seconds.
const TIME_SCALE: u32 = 30;
/// The alerts under test, from observability/prometheus/rules/.
const RULES: &str = "observability/prometheus/rules/api.yml";
const CRITICAL: &str = "ApiHigh5xxRatio";
const INHIBITED: &str = "ApiHighLatencyP95";
/// Alertmanager's timings for the test, through the variables compose sets (production: 30 s,
/// 5 m, 4 h).
const TIMINGS: [(&str, &str); 3] = [
    ("ALERTMANAGER_GROUP_WAIT", "1s"),
    ("ALERTMANAGER_GROUP_INTERVAL", "1s"),
    ("ALERTMANAGER_REPEAT_INTERVAL", "1h"),
];
/// Requests in flight at once; during the fault each takes the api's request timeout.
const CLIENTS: usize = 8;
/// Between one client's requests while the api is healthy: about 16 requests a second.
const PACE: Duration = Duration::from_millis(500);
/// From the fault to each step: the compressed `for:` (10 s and 20 s), windows emptying of the
/// healthy requests (10 s and 20 s), the request timeout (10 s), and slack for a loaded machine.
const FIRE_DEADLINE: Duration = Duration::from_secs(120);
/// From the fault's end to the resolved notification, and for the alerts to clear.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(90);

/// Runs the live alert test `rounds` times on one stack; fails when a step of any round fails.
pub async fn run(flags: &xtask::flags::E2e, rounds: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let expected = Expected::from_rules().context("read the alerts under test")?;
    let binaries = apps::build(apps::Profile::Debug)?;
    let mut stack =
        Stack::start_with(flags.traces, flags.logs, Clock::Compressed(TIME_SCALE)).await?;
    let outcome = rounds_on(&mut stack, &binaries, &expected, rounds).await;
    stack.stop(flags.keep).await;
    eprintln!("alerts wall time {:.1}s", started.elapsed().as_secs_f64());
    let reports = outcome?;
    for report in &reports {
        println!("{report}");
    }
    let mut notified: Vec<Duration> = reports.iter().filter_map(Round::notified).collect();
    notified.sort();
    if let Some(median) = notified.get(notified.len().saturating_sub(1) / 2) {
        println!(
            "fault to PagerDuty notification: median {:.1}s of {} rounds (rules at {TIME_SCALE}x)",
            median.as_secs_f64(),
            notified.len()
        );
    }
    let failed: Vec<String> = reports
        .iter()
        .flat_map(|round| {
            let title = &round.checks.title;
            round
                .checks
                .failed()
                .into_iter()
                .map(move |step| format!("{title}: {step}"))
        })
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "alerts failed: {}; the table above says what was seen instead",
        failed.join(", ")
    );
    Ok(())
}

/// What the notifications must carry, as the rule file states it.
struct Expected {
    service: String,
    runbook_url: String,
    /// The summary's text before its first template action.
    summary_prefix: String,
}

impl Expected {
    fn from_rules() -> anyhow::Result<Self> {
        let path = xtask::util::project_root().join(RULES);
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {RULES}"))?;
        let file = RuleFile::parse(&text).with_context(|| format!("parse {RULES}"))?;
        let find = |name: &str| {
            file.rules()
                .find(|rule| rule.alert.as_deref() == Some(name))
                .with_context(|| format!("{RULES} has no alert {name}: the alert test needs it"))
        };
        let critical = find(CRITICAL)?;
        let service = critical.labels.get("service").context("no service label")?;
        let inhibited = find(INHIBITED)?;
        anyhow::ensure!(
            inhibited.labels.get("service") == Some(service),
            "{INHIBITED} must carry {CRITICAL}'s service label ({service}) to be inhibited by it"
        );
        let annotation = |key: &str| {
            critical
                .annotations
                .get(key)
                .with_context(|| format!("{CRITICAL} has no {key} annotation"))
        };
        let summary = annotation("summary")?;
        Ok(Self {
            service: service.clone(),
            runbook_url: annotation("runbook_url")?.clone(),
            summary_prefix: summary.split("{{").next().unwrap_or_default().to_owned(),
        })
    }
}

/// The steps of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Firing,
    Paged,
    Inhibited,
    Resolved,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Firing => "firing",
            Step::Paged => "paged",
            Step::Inhibited => "inhibited",
            Step::Resolved => "resolved",
        })
    }
}

/// One round's steps.
struct Round {
    checks: Checks<Step>,
}

impl Round {
    /// Time from the fault to the PagerDuty event, when it arrived.
    fn notified(&self) -> Option<Duration> {
        self.checks
            .checks
            .iter()
            .find(|check| check.label == Step::Paged)
            .and_then(|check| check.outcome.as_ref().ok())
            .map(|found| found.after)
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.checks.fmt(f)
    }
}

async fn rounds_on(
    stack: &mut Stack,
    binaries: &apps::Binaries,
    expected: &Expected,
    rounds: usize,
) -> anyhow::Result<Vec<Round>> {
    let catcher = AlertCatcher::start((stack.host_ip, 0).into(), (stack.host_ip, 0).into())
        .await
        .context("start the local catcher")?;
    let http = catcher.http_addr();
    let mut env: Vec<(&str, String)> = vec![
        (
            "PAGERDUTY_URL",
            format!("http://{http}{}", alert_catcher::PAGERDUTY_PATH),
        ),
        (
            "SLACK_WEBHOOK_URL",
            format!("http://{http}{}e2e", alert_catcher::SLACK_PATH_PREFIX),
        ),
        ("SMTP_SMARTHOST", catcher.smtp_addr().to_string()),
    ];
    env.extend(TIMINGS.map(|(key, value)| (key, value.to_owned())));
    let alertmanager = stack.add_alertmanager(&env).await?;

    let address = apps::free_port(stack.host_ip)?;
    let api = apps::start_on(stack, binaries, Service::Api, address, "alerts", &[]).await?;
    stack.scrape(&[("api", address)], "alerts").await?;

    let healthy = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}{}", api.base_url, ampel_api::routes::REPOSITORIES);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(traffic(url.clone(), healthy.clone(), stop.clone())))
        .collect();
    let mut checker = Checker {
        stack,
        catcher: &catcher,
        alertmanager: Alertmanager::new(reqwest::Client::new(), alertmanager),
        expected,
    };
    let mut reports = Vec::new();
    let mut failure = None;
    for round in 1..=rounds {
        match checker.round(round, &healthy).await {
            Ok(report) => reports.push(report),
            Err(err) => {
                failure = Some(err.context(format!("alerts round {round}")));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.context("a traffic client panicked")?;
    }
    api.stop(Duration::from_secs(20)).await?;
    match failure {
        Some(err) => Err(err),
        None => Ok(reports),
    }
}

/// Steady requests to `url` until `stop`; while the database is paused they hang until the
/// api's request timeout, so `healthy` only paces the requests that are answered at once.
async fn traffic(url: String, healthy: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut pace = tokio::time::interval(PACE);
    while !stop.load(Ordering::Relaxed) {
        if healthy.load(Ordering::Relaxed) {
            pace.tick().await;
        }
        // The outcome shows in the api's metrics, which is what the alerts read.
        let _answer = http
            .get(&url)
            .timeout(ampel_api::REQUEST_TIMEOUT * 2)
            .send()
            .await;
    }
}

struct Checker<'a> {
    stack: &'a mut Stack,
    catcher: &'a AlertCatcher,
    alertmanager: Alertmanager,
    expected: &'a Expected,
}

impl Checker<'_> {
    async fn round(&mut self, round: usize, healthy: &AtomicBool) -> anyhow::Result<Round> {
        let title = format!("alerts round {round}");
        // A round starts from quiet: the last round's alerts under test resolved in Prometheus.
        // (The SLO burn-rate alerts of the same fault look back further and may still fire.)
        eventually(
            &format!("[{title}] no alert of the last round"),
            Instant::now(),
            RESOLVE_DEADLINE,
            || async {
                let firing = self.stack.prometheus.firing_alerts().await?;
                let under_test: Vec<&String> = firing
                    .iter()
                    .filter(|name| [CRITICAL, INHIBITED].contains(&name.as_str()))
                    .collect();
                anyhow::ensure!(under_test.is_empty(), "still firing: {under_test:?}");
                Ok(())
            },
        )
        .await
        .map_err(anyhow::Error::from)?;

        let since = SystemTime::now();
        let fault = Instant::now();
        healthy.store(false, Ordering::Relaxed);
        self.stack.container("postgres")?.pause().await?;
        eprintln!("[{title}] PostgreSQL paused");
        let firing = self
            .step(Step::Firing, "prometheus", fault, FIRE_DEADLINE, || async {
                let firing = self.stack.prometheus.firing_alerts().await?;
                anyhow::ensure!(
                    firing.iter().any(|alert| alert == CRITICAL),
                    "{CRITICAL} not firing; active: {firing:?}"
                );
                Ok(format!(
                    "{CRITICAL} firing ({} active: {firing:?})",
                    firing.len()
                ))
            })
            .await;
        let paged = self
            .step(Step::Paged, "pagerduty", fault, FIRE_DEADLINE, || async {
                let event = self
                    .arrived(since, Receiver::PagerDuty, CRITICAL, Status::Firing)
                    .with_context(|| format!("no PagerDuty event for {CRITICAL} yet"))?;
                self.expected.matches(&event)?;
                Ok(format!(
                    "{CRITICAL} service={} runbook={} summary={:?}",
                    event.service, event.runbook_url, event.summary
                ))
            })
            .await;
        let inhibited = self
            .step(
                Step::Inhibited,
                "alertmanager",
                fault,
                FIRE_DEADLINE,
                || async {
                    let by = self.inhibitors(INHIBITED).await?;
                    self.not_delivered(since, INHIBITED)?;
                    Ok(format!(
                        "{INHIBITED} suppressed, inhibited by {by:?}; no Slack message for it"
                    ))
                },
            )
            .await;
        // Whatever the steps saw, the fault ends here, and the warning must not have been
        // delivered while it lasted.
        let inhibited = match (inhibited, self.not_delivered(since, INHIBITED)) {
            (check, Ok(())) => check,
            (mut check, Err(err)) => {
                check.outcome = Err(otel_testkit::TimedOut {
                    what: format!("[{title}] inhibited"),
                    waited: fault.elapsed(),
                    last_seen: format!("{err:#}"),
                });
                check
            }
        };
        let thawed = Instant::now();
        self.stack.container("postgres")?.unpause().await?;
        healthy.store(true, Ordering::Relaxed);
        eprintln!("[{title}] PostgreSQL thawed");
        let resolved = self
            .step(
                Step::Resolved,
                "pagerduty",
                thawed,
                RESOLVE_DEADLINE,
                || async {
                    self.arrived(since, Receiver::PagerDuty, CRITICAL, Status::Resolved)
                        .with_context(|| {
                            format!("no resolved PagerDuty event for {CRITICAL} yet")
                        })?;
                    Ok(format!("{CRITICAL} resolved"))
                },
            )
            .await;
        Ok(Round {
            checks: Checks {
                title,
                checks: vec![firing, paged, inhibited, resolved],
            },
        })
    }

    async fn step<F, Fut>(
        &self,
        step: Step,
        backend: &str,
        since: Instant,
        deadline: Duration,
        probe: F,
    ) -> Check<Step>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<String>>,
    {
        Check {
            label: step,
            backend: backend.to_owned(),
            outcome: eventually(&format!("alerts {step}"), since, deadline, probe).await,
        }
    }

    /// The names of the alerts that hold `alertname` back in Alertmanager; an error unless it
    /// is suppressed and each of them is a critical alert of its service.
    async fn inhibitors(&self, alertname: &str) -> anyhow::Result<Vec<String>> {
        let by = self.alertmanager.inhibitors(alertname).await?;
        for source in &by {
            let label = |key: &str| source.labels.get(key).map(String::as_str);
            anyhow::ensure!(
                label("severity") == Some("critical")
                    && label("service") == Some(self.expected.service.as_str()),
                "{alertname} is inhibited by {:?}, not a critical alert of service {}",
                source.labels,
                self.expected.service
            );
        }
        Ok(by
            .iter()
            .filter_map(|alert| alert.name().map(str::to_owned))
            .collect())
    }

    /// The first notification since `since` from `receiver` about `alertname` in `status`.
    fn arrived(
        &self,
        since: SystemTime,
        receiver: Receiver,
        alertname: &str,
        status: Status,
    ) -> Option<Notification> {
        self.catcher
            .notifications()
            .into_iter()
            .find(|notification| {
                notification.received_at >= since
                    && notification.receiver == receiver
                    && notification.alertname == alertname
                    && notification.status == status
            })
    }

    /// Fails when any receiver was told since `since` that `alertname` fires.
    fn not_delivered(&self, since: SystemTime, alertname: &str) -> anyhow::Result<()> {
        let delivered: Vec<String> = self
            .catcher
            .notifications()
            .into_iter()
            // A resolved message may still be on its way from the last round's episode.
            .filter(|n| {
                n.received_at >= since && n.alertname == alertname && n.status == Status::Firing
            })
            .map(|n| format!("{:?} {:?}", n.receiver, n.status))
            .collect();
        anyhow::ensure!(
            delivered.is_empty(),
            "{alertname} was delivered while {CRITICAL} fired: {delivered:?}"
        );
        Ok(())
    }
}

impl Expected {
    /// The notification carries the rule's service and runbook, and its summary.
    fn matches(&self, event: &Notification) -> anyhow::Result<()> {
        anyhow::ensure!(
            event.service == self.service
                && event.runbook_url == self.runbook_url
                && event.summary.starts_with(&self.summary_prefix),
            "the event says service={:?} runbook={:?} summary={:?}; the rule: service={:?} \
             runbook={:?} summary starting {:?}",
            event.service,
            event.runbook_url,
            event.summary,
            self.service,
            self.runbook_url,
            self.summary_prefix
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_yaml::Value;

    /// Every shipped rule file compresses to [`super::TIME_SCALE`] into expressions that parse.
    #[test]
    fn the_shipped_rules_compress() {
        let dir = xtask::util::project_root().join(xtask::queries::RULES);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let compressed =
                otel_testkit::prometheus::rules::compress(&text, super::TIME_SCALE).unwrap();
            let compressed: Value = serde_yaml::from_str(&compressed).unwrap();
            for group in compressed["groups"].as_sequence().unwrap() {
                for rule in group["rules"].as_sequence().unwrap() {
                    let expr = rule["expr"].as_str().unwrap();
                    if let Err(err) = promql_parser::parser::parse(expr) {
                        panic!("{}: {expr}: {err}", path.display());
                    }
                }
            }
        }
    }
}
