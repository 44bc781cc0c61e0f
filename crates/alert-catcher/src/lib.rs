//! A local catcher for Alertmanager's notifications. It stands in for PagerDuty, Slack and an
//! SMTP relay, which cannot be reached from here (and should not be paged by tests), speaking the
//! shapes of their real protocols so that Alertmanager's own notifiers talk to it unchanged:
//!
//! - PagerDuty Events API v2: `POST /pagerduty/v2/enqueue` ([`PAGERDUTY_PATH`]), validated as
//!   PagerDuty does, answered `202` or `400 invalid event`, except that any non-empty
//!   `routing_key` is taken where PagerDuty wants a 32-character integration key;
//! - a Slack incoming webhook: `POST /slack/{anything}` ([`SLACK_PATH_PREFIX`]), answered `200 ok`
//!   or `400 invalid_payload`;
//! - SMTP on a port of its own: the session Alertmanager's email notifier holds (EHLO, MAIL,
//!   RCPT, DATA, QUIT), without STARTTLS or AUTH (see `email.rs`).
//!
//! Each notification becomes a [`Notification`] built from the structured fields that
//! `observability/alertmanager/alertmanager.yml` fills in (PagerDuty's `custom_details`, Slack's
//! attachment fields, the `X-Ampel-*` mail headers), never from prose. `GET /` (or
//! `GET /notifications`) lists them as JSON, oldest first. `cargo xtask obs-up` runs the binary
//! as the local default receiver; the e2e starts one in-process:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let catcher = alert_catcher::AlertCatcher::start(
//!     "127.0.0.1:0".parse()?,
//!     "127.0.0.1:0".parse()?,
//! )
//! .await?;
//! // point Alertmanager at catcher.http_addr() and catcher.smtp_addr(), then:
//! assert!(catcher.notifications().is_empty());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Context as _;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

mod email;
mod pagerduty;
mod slack;

/// Where PagerDuty's Events API v2 takes events (`https://events.pagerduty.com/v2/enqueue`).
pub const PAGERDUTY_PATH: &str = "/pagerduty/v2/enqueue";
/// Every path under it is a Slack incoming webhook (Slack's are `/services/T.../B.../...`).
pub const SLACK_PATH_PREFIX: &str = "/slack/";
/// The HTTP address the binary listens on (PagerDuty, Slack and the list of notifications).
pub const LISTEN_ADDR_VAR: &str = "ALERT_CATCHER_LISTEN_ADDR";
/// The SMTP address the binary listens on.
pub const SMTP_LISTEN_ADDR_VAR: &str = "ALERT_CATCHER_SMTP_LISTEN_ADDR";
/// [`LISTEN_ADDR_VAR`] when unset: loopback, for a run by hand (the image listens on 0.0.0.0).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:9095";
/// [`SMTP_LISTEN_ADDR_VAR`] when unset.
pub const DEFAULT_SMTP_LISTEN_ADDR: &str = "127.0.0.1:2525";
/// The paths that list what arrived so far.
pub const NOTIFICATIONS_PATHS: [&str; 2] = ["/", "/notifications"];

/// Which stand-in a notification reached: the receiver `alertmanager.yml` routes a severity to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Receiver {
    /// `severity="critical"`: PagerDuty Events API v2.
    PagerDuty,
    /// `severity="warning"` (and the root route): a Slack incoming webhook.
    Slack,
    /// `severity="info"`: email over SMTP.
    Email,
}

/// Whether the notification announces alerts firing or all of them resolved, as Alertmanager's
/// `.Status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one alert of the group fires.
    Firing,
    /// Every alert of the group is resolved.
    Resolved,
}

impl Status {
    /// Alertmanager's `.Status` (`firing` or `resolved`); `None` for anything else.
    fn parse(text: &str) -> Option<Self> {
        match text {
            "firing" => Some(Self::Firing),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }
}

/// One notification, as the structured fields of its request or mail carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub receiver: Receiver,
    pub status: Status,
    /// The group's common `alertname` label.
    pub alertname: String,
    /// The group's common `service` label.
    pub service: String,
    /// The group's common `summary` annotation.
    pub summary: String,
    /// The group's common `runbook_url` annotation.
    pub runbook_url: String,
    /// When the catcher accepted it (RFC 3339 in JSON).
    #[serde(with = "rfc3339")]
    pub received_at: SystemTime,
}

/// The fields every protocol maps to, before the catcher stamps and records them.
struct Fields {
    status: Status,
    alertname: String,
    service: String,
    summary: String,
    runbook_url: String,
}

#[derive(Default)]
struct Notifications(Mutex<Vec<Notification>>);

impl Notifications {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Notification>> {
        // A panic elsewhere cannot leave the list half-written: push is the only writer.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stamps, logs (labels and annotations only: routing keys and webhook paths never get this
    /// far) and keeps one notification.
    fn record(&self, receiver: Receiver, fields: Fields) {
        let notification = Notification {
            receiver,
            status: fields.status,
            alertname: fields.alertname,
            service: fields.service,
            summary: fields.summary,
            runbook_url: fields.runbook_url,
            received_at: SystemTime::now(),
        };
        tracing::info!(
            receiver = ?notification.receiver,
            status = ?notification.status,
            alertname = notification.alertname,
            service = notification.service,
            summary = notification.summary,
            runbook_url = notification.runbook_url,
            "notification"
        );
        self.list().push(notification);
    }
}

/// The running catcher, its HTTP and SMTP servers on the addresses it was given; stops when
/// dropped.
pub struct AlertCatcher {
    http_addr: SocketAddr,
    smtp_addr: SocketAddr,
    notifications: Arc<Notifications>,
    http: tokio::task::JoinHandle<()>,
    smtp: tokio::task::JoinHandle<()>,
}

impl AlertCatcher {
    /// Binds both addresses (port 0 picks a free port) and starts serving.
    ///
    /// # Errors
    /// When either address cannot be bound.
    pub async fn start(http: SocketAddr, smtp: SocketAddr) -> anyhow::Result<Self> {
        let http_listener = tokio::net::TcpListener::bind(http).await.with_context(|| {
            format!("bind the catcher's HTTP on {http}: is another process using it? set {LISTEN_ADDR_VAR}")
        })?;
        let smtp_listener = tokio::net::TcpListener::bind(smtp).await.with_context(|| {
            format!("bind the catcher's SMTP on {smtp}: is another process using it? set {SMTP_LISTEN_ADDR_VAR}")
        })?;
        let http_addr = http_listener.local_addr()?;
        let smtp_addr = smtp_listener.local_addr()?;
        let notifications = Arc::new(Notifications::default());
        let app = app(notifications.clone());
        let http = tokio::spawn(async move {
            if let Err(err) = axum::serve(http_listener, app).await {
                tracing::error!(error = %err, addr = %http_addr, "the catcher's HTTP server stopped");
            }
        });
        let smtp = tokio::spawn(email::serve(smtp_listener, notifications.clone()));
        Ok(Self {
            http_addr,
            smtp_addr,
            notifications,
            http,
            smtp,
        })
    }

    /// Where PagerDuty's and Slack's requests go: `http://{http_addr}{PAGERDUTY_PATH}`.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Alertmanager's `smtp_smarthost`.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    /// Every notification received so far, oldest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.notifications.list().clone()
    }
}

impl Drop for AlertCatcher {
    fn drop(&mut self) {
        self.http.abort();
        // Its connections live in a `JoinSet` inside the task, so they end with it.
        self.smtp.abort();
    }
}

fn app(notifications: Arc<Notifications>) -> Router {
    let mut app = Router::new()
        .route(PAGERDUTY_PATH, post(pagerduty::enqueue))
        .route(
            &format!("{SLACK_PATH_PREFIX}{{*rest}}"),
            post(slack::webhook),
        );
    for path in NOTIFICATIONS_PATHS {
        app = app.route(path, get(list));
    }
    app.with_state(notifications)
}

async fn list(State(notifications): State<Arc<Notifications>>) -> Json<Vec<Notification>> {
    Json(notifications.list().clone())
}

/// `received_at` as an RFC 3339 string, which a reader of `GET /` can take in at a glance.
mod rfc3339 {
    use std::time::SystemTime;

    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        let time: DateTime<Utc> = (*time).into();
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(SystemTime::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `catcher` recorded, in order, a firing and a resolved notification through
    /// `receiver`, both with these labels and annotations.
    #[track_caller]
    pub(crate) fn assert_firing_then_resolved(
        catcher: &AlertCatcher,
        receiver: Receiver,
        alertname: &str,
        service: &str,
        summary: &str,
        runbook_url: &str,
    ) {
        let seen: Vec<_> = catcher
            .notifications()
            .into_iter()
            .map(|n| {
                (
                    n.receiver,
                    n.status,
                    n.alertname,
                    n.service,
                    n.summary,
                    n.runbook_url,
                )
            })
            .collect();
        let expected = |status| {
            (
                receiver,
                status,
                alertname.to_owned(),
                service.to_owned(),
                summary.to_owned(),
                runbook_url.to_owned(),
            )
        };
        assert_eq!(seen, [expected(Status::Firing), expected(Status::Resolved)]);
    }

    /// The addresses given are the ones bound, port 0 resolved: the e2e binds the containers'
    /// gateway IP, not loopback.
    #[tokio::test]
    async fn binds_the_given_ip() {
        let ip: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let catcher = AlertCatcher::start((ip, 0).into(), (ip, 0).into())
            .await
            .unwrap();
        for addr in [catcher.http_addr(), catcher.smtp_addr()] {
            assert_eq!(addr.ip(), ip);
            assert_ne!(addr.port(), 0);
        }
        let url = format!("http://{}/", catcher.http_addr());
        assert_eq!(
            reqwest::get(&url).await.unwrap().text().await.unwrap(),
            "[]"
        );
        let taken = AlertCatcher::start(catcher.http_addr(), (ip, 0).into()).await;
        let err = format!("{:#}", taken.err().expect("the port is taken"));
        assert!(err.contains("set ALERT_CATCHER_LISTEN_ADDR"), "{err}");
    }

    /// `GET /` lists what arrived as JSON that reads back into the same notifications.
    #[tokio::test]
    async fn the_list_reads_back() {
        let catcher = AlertCatcher::start(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        catcher.notifications.record(
            Receiver::Slack,
            Fields {
                status: Status::Resolved,
                alertname: "ApiDown".into(),
                service: "api".into(),
                summary: "The api is down.".into(),
                runbook_url: "https://runbook/ApiDown".into(),
            },
        );
        for path in NOTIFICATIONS_PATHS {
            let url = format!("http://{}{path}", catcher.http_addr());
            let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
            assert!(
                body.contains(r#""receiver":"slack","status":"resolved""#),
                "{body}"
            );
            let listed: Vec<Notification> = serde_json::from_str(&body).unwrap();
            // The JSON keeps milliseconds; compare the rest.
            let [listed] = listed.as_slice() else {
                panic!("{body}")
            };
            let recorded = &catcher.notifications()[0];
            assert_eq!(
                (listed.receiver, listed.status, &listed.alertname),
                (recorded.receiver, recorded.status, &recorded.alertname)
            );
            let skew = recorded
                .received_at
                .duration_since(listed.received_at)
                .unwrap();
            assert!(skew.as_millis() < 1, "{skew:?}");
        }
    }
}
