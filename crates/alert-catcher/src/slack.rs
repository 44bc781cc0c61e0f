//! A Slack incoming webhook (`POST https://hooks.slack.com/services/...`): a JSON message with
//! `text` or `attachments`, answered `200 ok`, or `400 invalid_payload` when it cannot be read as
//! one. The webhook's path is Slack's secret, so it is never logged or kept.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::{Fields, Notifications, Receiver, Status};

/// The answers Slack gives, as status and plain-text body.
const OK: (StatusCode, &str) = (StatusCode::OK, "ok");
const INVALID_PAYLOAD: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "invalid_payload");

/// The parts of a message the catcher reads; Alertmanager's `channel`, `username`, `color`... are
/// accepted unread.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    attachments: Option<Vec<Attachment>>,
}

#[derive(Debug, Deserialize)]
struct Attachment {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    fields: Option<Vec<Field>>,
}

#[derive(Debug, Deserialize)]
struct Field {
    title: String,
    value: String,
}

impl Message {
    /// Slack posts nothing for a message without text and without attachments.
    fn is_empty(&self) -> bool {
        self.text.as_deref().is_none_or(str::is_empty)
            && self.attachments.as_deref().is_none_or(<[_]>::is_empty)
    }

    /// The notification in the first attachment's fields (`alertmanager.yml` names them), its
    /// text as the summary; `Err` says which field is missing for a message that is no
    /// Alertmanager notification.
    fn notification(&self) -> Result<Fields, String> {
        let attachment = self.attachments.as_deref().and_then(<[_]>::first);
        let fields = attachment
            .and_then(|attachment| attachment.fields.as_deref())
            .unwrap_or_default();
        let field = |title: &str| {
            fields
                .iter()
                .find(|field| field.title == title)
                .map(|field| field.value.clone())
        };
        let status = field("status").ok_or("no attachment field \"status\"")?;
        let status = Status::parse(&status).ok_or(format!("the status field says {status:?}"))?;
        Ok(Fields {
            status,
            alertname: field("alertname").unwrap_or_default(),
            service: field("service").unwrap_or_default(),
            summary: attachment
                .and_then(|attachment| attachment.text.clone())
                .or_else(|| self.text.clone())
                .unwrap_or_default(),
            runbook_url: field("runbook_url").unwrap_or_default(),
        })
    }
}

pub(crate) async fn webhook(
    State(notifications): State<Arc<Notifications>>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Ok(message) = serde_json::from_slice::<Message>(&body) else {
        return INVALID_PAYLOAD;
    };
    if message.is_empty() {
        return INVALID_PAYLOAD;
    }
    match message.notification() {
        Ok(fields) => notifications.record(Receiver::Slack, fields),
        Err(missing) => tracing::warn!(
            missing,
            "Slack message posted, but it is no Alertmanager notification: not recorded"
        ),
    }
    OK
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::AlertCatcher;
    use crate::tests::assert_firing_then_resolved;

    /// A message as Alertmanager 0.25's slack notifier encodes it for `alertmanager.yml`'s slack
    /// receiver: `request` with one `attachment`, the defaults it fills in included.
    fn alertmanager_message(status: &str) -> Value {
        json!({
            "channel": "#alerts",
            "username": "Alertmanager",
            "attachments": [{
                "title": format!("[{}] WorkerJobsFailing (worker)", status.to_uppercase()),
                "title_link": "https://github.com/ampel/ops/blob/main/RUNBOOK.md#workerjobsfailing",
                "text": "Jobs fail: résumé below.",
                "fallback": "[FIRING:1] WorkerJobsFailing worker",
                "callback_id": "",
                "fields": [
                    {"title": "status", "value": status, "short": true},
                    {"title": "alertname", "value": "WorkerJobsFailing", "short": true},
                    {"title": "service", "value": "worker", "short": true},
                    {"title": "runbook_url", "value": "https://github.com/ampel/ops/blob/main/RUNBOOK.md#workerjobsfailing", "short": false}
                ],
                "footer": "",
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"]
            }]
        })
    }

    async fn post(catcher: &AlertCatcher, path: &str, body: String) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("http://{}{path}", catcher.http_addr()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the catcher answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn catcher() -> AlertCatcher {
        let any = "127.0.0.1:0".parse().unwrap();
        AlertCatcher::start(any, any).await.unwrap()
    }

    /// Alertmanager's firing and resolved messages are taken as Slack takes them, on any webhook
    /// path, and recorded from their fields and text.
    #[tokio::test]
    async fn alertmanager_messages_are_posted() {
        let catcher = catcher().await;
        for (path, status) in [
            ("/slack/T0/B0/secret", "firing"),
            ("/slack/local", "resolved"),
        ] {
            let answer = post(&catcher, path, alertmanager_message(status).to_string()).await;
            assert_eq!(answer, (200, "ok".to_owned()));
        }
        assert_firing_then_resolved(
            &catcher,
            Receiver::Slack,
            "WorkerJobsFailing",
            "worker",
            "Jobs fail: résumé below.",
            "https://github.com/ampel/ops/blob/main/RUNBOOK.md#workerjobsfailing",
        );
    }

    /// A plain text message is fine for Slack but no notification; the catcher says so and
    /// keeps nothing.
    #[tokio::test]
    async fn a_text_message_is_posted_but_not_recorded() {
        let catcher = catcher().await;
        let answer = post(&catcher, "/slack/x", json!({"text": "hi"}).to_string()).await;
        assert_eq!(answer, (200, "ok".to_owned()));
        assert!(catcher.notifications().is_empty());
        let mut message = alertmanager_message("firing");
        message["attachments"][0]["fields"][0]["value"] = json!("pending");
        let err = Message::deserialize(&message).unwrap().notification();
        assert_eq!(
            err.err().as_deref(),
            Some("the status field says \"pending\"")
        );
    }

    /// What Slack refuses: no JSON, no message, or neither text nor attachments.
    #[tokio::test]
    async fn invalid_messages_are_refused_like_slack() {
        let catcher = catcher().await;
        for body in ["{", "[]", "{}", r#"{"text": ""}"#, r#"{"attachments": []}"#] {
            let answer = post(&catcher, "/slack/local", body.to_owned()).await;
            assert_eq!(answer, (400, "invalid_payload".to_owned()), "{body}");
        }
        assert!(catcher.notifications().is_empty());
    }
}
