//! Alertmanager: the alerts it holds, as its v2 API lists them (`GET /api/v2/alerts`), with
//! their state and what inhibits or silences them, so a test can ask whether an alert reached
//! Alertmanager and was held back by the right one. What reached a receiver is the receiver's
//! business (a local fake of PagerDuty, Slack or SMTP); this is what Alertmanager decided.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Deserialize;

/// A client of one Alertmanager.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    http: reqwest::Client,
    base_url: String,
}

/// One alert as Alertmanager holds it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Alert {
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub status: Status,
}

/// Where an alert stands: `state` is `active`, `suppressed` (inhibited or silenced) or
/// `unprocessed`; `inhibited_by` holds the fingerprints of the alerts that inhibit it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub state: String,
    #[serde(default)]
    pub inhibited_by: Vec<String>,
    #[serde(default)]
    pub silenced_by: Vec<String>,
}

impl Alert {
    /// Its `alertname` label.
    pub fn name(&self) -> Option<&str> {
        self.labels.get("alertname").map(String::as_str)
    }
}

impl Alertmanager {
    /// `base_url`: the HTTP API, e.g. `http://127.0.0.1:9093`.
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self {
            http,
            base_url: base_url.into(),
        }
    }

    /// Every alert it holds, active, suppressed or not yet processed.
    pub async fn alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let what = format!("GET {}/api/v2/alerts", self.base_url);
        let body = crate::http::fetch(
            self.http.get(format!("{}/api/v2/alerts", self.base_url)),
            &what,
        )
        .await?
        .with_context(|| {
            format!("{what}: 404; is this an Alertmanager of version 0.16 or later?")
        })?;
        serde_json::from_str(&body).with_context(|| format!("{what}: not a list of alerts"))
    }

    /// The alerts that hold the alert named `alertname` back by inhibition; an error, saying
    /// what states it has, unless it is held and suppressed by an inhibition.
    pub async fn inhibitors(&self, alertname: &str) -> anyhow::Result<Vec<Alert>> {
        inhibitors(&self.alerts().await?, alertname)
    }
}

/// Of `alerts`, those inhibiting the one named `alertname` (see [`Alertmanager::inhibitors`]).
fn inhibitors(alerts: &[Alert], alertname: &str) -> anyhow::Result<Vec<Alert>> {
    let held: Vec<&Alert> = alerts
        .iter()
        .filter(|alert| alert.name() == Some(alertname))
        .collect();
    let Some(inhibited) = held
        .iter()
        .find(|alert| alert.status.state == "suppressed" && !alert.status.inhibited_by.is_empty())
    else {
        let states: Vec<&Status> = held.iter().map(|alert| &alert.status).collect();
        anyhow::bail!("{alertname} is not held back by an inhibition: {states:?}");
    };
    inhibited
        .status
        .inhibited_by
        .iter()
        .map(|fingerprint| {
            alerts
                .iter()
                .find(|alert| &alert.fingerprint == fingerprint)
                .cloned()
                .with_context(|| {
                    format!("the alert {fingerprint} inhibiting {alertname} is not listed")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(fingerprint: &str, name: &str, state: &str, inhibited_by: &[&str]) -> Alert {
        Alert {
            fingerprint: fingerprint.to_owned(),
            labels: BTreeMap::from([("alertname".to_owned(), name.to_owned())]),
            status: Status {
                state: state.to_owned(),
                inhibited_by: inhibited_by.iter().map(|f| f.to_string()).collect(),
                silenced_by: Vec::new(),
            },
        }
    }

    /// The API's JSON reads as typed alerts (fields it adds besides are ignored).
    #[test]
    fn the_api_answer_parses() {
        let body = r#"[{"fingerprint": "a1", "labels": {"alertname": "Slow"},
            "status": {"state": "suppressed", "inhibitedBy": ["c3"], "silencedBy": []},
            "receivers": [{"name": "slack"}], "startsAt": "2026-12-01T00:00:00Z"}]"#;
        let alerts: Vec<Alert> = serde_json::from_str(body).unwrap();
        assert_eq!(alerts, [alert("a1", "Slow", "suppressed", &["c3"])]);
    }

    /// The inhibitors are found by fingerprint; an active alert, an unknown name or an inhibitor
    /// that is not listed is an error that says what was there.
    #[test]
    fn inhibitors_are_found_or_the_states_named() {
        let alerts = [
            alert("a1", "Slow", "suppressed", &["c3"]),
            alert("c3", "Down", "active", &[]),
        ];
        let by = inhibitors(&alerts, "Slow").unwrap();
        assert_eq!(
            by.iter().map(Alert::name).collect::<Vec<_>>(),
            [Some("Down")]
        );
        let err = inhibitors(&alerts, "Down").unwrap_err().to_string();
        assert!(
            err.contains("Down is not held back") && err.contains("active"),
            "{err}"
        );
        assert!(inhibitors(&alerts, "Gone").is_err());
        let orphan = [alert("a1", "Slow", "suppressed", &["zz"])];
        let err = inhibitors(&orphan, "Slow").unwrap_err().to_string();
        assert!(err.contains("zz"), "{err}");
    }
}
