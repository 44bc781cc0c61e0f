//! PagerDuty's Events API v2 (`POST /v2/enqueue`): the event checks PagerDuty documents, its
//! `202` and `400 invalid event` answers, and the notification an Alertmanager event carries in
//! `payload.custom_details`.
//!
//! One rule is relaxed: PagerDuty wants a 32-character integration key as `routing_key`; any
//! non-empty key is taken here, so the local default and tests need no real-looking key. The key
//! is never logged or kept.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{Fields, Notifications, Receiver, Status};

const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The fields PagerDuty checks and the catcher reads; the rest (client, links, images, class...)
/// is accepted unread, as PagerDuty accepts it.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    routing_key: Option<String>,
    #[serde(default)]
    event_action: Option<String>,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    custom_details: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

/// An event that passed PagerDuty's checks.
struct Valid {
    action: Action,
    dedup_key: String,
    custom_details: Map<String, Value>,
}

fn blank(value: Option<&str>) -> bool {
    value.is_none_or(|value| value.trim().is_empty())
}

/// PagerDuty's checks, each failure worded as PagerDuty words it in `errors`.
fn validate(event: Event) -> Result<Valid, Vec<String>> {
    let mut errors = Vec::new();
    if blank(event.routing_key.as_deref()) {
        errors.push("'routing_key' is missing or blank".to_owned());
    }
    let action = match event.event_action.as_deref() {
        Some("trigger") => Some(Action::Trigger),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some("resolve") => Some(Action::Resolve),
        None | Some("") => {
            errors.push("'event_action' is missing or blank".to_owned());
            None
        }
        Some(_) => {
            errors.push(
                "'event_action' is invalid (must be one of the following: 'trigger', \
                 'acknowledge' or 'resolve')"
                    .to_owned(),
            );
            None
        }
    };
    match action {
        Some(Action::Trigger) => match &event.payload {
            None => errors.push("'payload' is missing or blank".to_owned()),
            Some(payload) => {
                for (name, value) in [("summary", &payload.summary), ("source", &payload.source)] {
                    if blank(value.as_deref()) {
                        errors.push(format!("'payload.{name}' is missing or blank"));
                    }
                }
                match payload.severity.as_deref() {
                    severity if blank(severity) => {
                        errors.push("'payload.severity' is missing or blank".to_owned());
                    }
                    Some(severity) if !SEVERITIES.contains(&severity) => errors.push(
                        "'payload.severity' is invalid (must be one of the following: \
                         'critical', 'warning', 'error' or 'info')"
                            .to_owned(),
                    ),
                    _ => {}
                }
            }
        },
        Some(Action::Acknowledge | Action::Resolve) if blank(event.dedup_key.as_deref()) => {
            errors.push("'dedup_key' is missing or blank".to_owned());
        }
        _ => {}
    }
    match action {
        Some(action) if errors.is_empty() => Ok(Valid {
            action,
            // PagerDuty makes one up for a trigger without a key, and returns it.
            dedup_key: event
                .dedup_key
                .filter(|key| !key.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            custom_details: event
                .payload
                .and_then(|payload| payload.custom_details)
                .unwrap_or_default(),
        }),
        _ => Err(errors),
    }
}

fn invalid(errors: Vec<String>) -> Response {
    let body = json!({
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": errors,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// A `custom_details` entry as text: Alertmanager sends strings; anything else is shown as JSON.
fn detail(details: &Map<String, Value>, key: &str) -> String {
    match details.get(key) {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// The notification a valid event carries; `None` for an acknowledgement, which comes from a
/// responder, never from Alertmanager.
fn notification(event: &Valid) -> Option<Fields> {
    let status = match event.action {
        Action::Trigger => Status::Firing,
        Action::Resolve => Status::Resolved,
        Action::Acknowledge => return None,
    };
    let details = &event.custom_details;
    Some(Fields {
        status,
        alertname: detail(details, "alertname"),
        service: detail(details, "service"),
        summary: detail(details, "summary"),
        runbook_url: detail(details, "runbook_url"),
    })
}

pub(crate) async fn enqueue(
    State(notifications): State<Arc<Notifications>>,
    body: Bytes,
) -> Response {
    let event = match serde_json::from_slice::<Event>(&body) {
        Ok(event) => event,
        Err(err) => return invalid(vec![format!("the body is not an event object: {err}")]),
    };
    let valid = match validate(event) {
        Ok(valid) => valid,
        Err(errors) => return invalid(errors),
    };
    match notification(&valid) {
        Some(fields) => notifications.record(Receiver::PagerDuty, fields),
        None => tracing::info!(
            dedup_key = valid.dedup_key,
            "PagerDuty acknowledgement: accepted, not a notification"
        ),
    }
    let body = json!({
        "status": "success",
        "message": "Event processed",
        "dedup_key": valid.dedup_key,
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlertCatcher;
    use crate::tests::assert_firing_then_resolved;

    /// An event as Alertmanager 0.25's `notifyV2` encodes it for `alertmanager.yml`'s pagerduty
    /// receiver: the fields in `pagerDutyMessage`'s order, `custom_details` with the configured
    /// details plus the defaults it adds (`num_firing`, `num_resolved`).
    fn alertmanager_event(action: &str) -> Value {
        json!({
            "routing_key": "0123456789abcdef0123456789abcdef",
            "dedup_key": "5f0a4ce6c6a09e1fa8c1d2b0b4f03c12bb25aebc5a6b4f1f3ddf2b23fcd5d8f6",
            "event_action": action,
            "payload": {
                "summary": "ApiDown (api): The api answers no requests.",
                "source": "Alertmanager",
                "severity": "critical",
                "custom_details": {
                    "alertname": "ApiDown",
                    "firing": "1",
                    "num_firing": "1",
                    "num_resolved": "0",
                    "resolved": "0",
                    "runbook_url": "https://github.com/ampel/ops/blob/main/RUNBOOK.md#apidown",
                    "service": "api",
                    "summary": "The api answers no requests."
                }
            },
            "client": "Alertmanager",
            "client_url": "http://alertmanager:9093/#/alerts?receiver=pagerduty",
            "links": [{
                "href": "https://github.com/ampel/ops/blob/main/RUNBOOK.md#apidown",
                "text": "runbook"
            }]
        })
    }

    async fn post(catcher: &AlertCatcher, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!(
                "http://{}{}",
                catcher.http_addr(),
                crate::PAGERDUTY_PATH
            ))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the catcher answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn catcher() -> AlertCatcher {
        let any = "127.0.0.1:0".parse().unwrap();
        AlertCatcher::start(any, any).await.unwrap()
    }

    /// Alertmanager's trigger and resolve are accepted as PagerDuty accepts them, each recorded
    /// with what its `custom_details` say.
    #[tokio::test]
    async fn alertmanager_trigger_and_resolve_are_processed() {
        let catcher = catcher().await;
        for action in ["trigger", "resolve"] {
            let (status, body) = post(&catcher, alertmanager_event(action).to_string()).await;
            assert_eq!(status, 202, "{body}");
            assert_eq!(
                body,
                json!({
                    "status": "success",
                    "message": "Event processed",
                    "dedup_key": alertmanager_event(action)["dedup_key"],
                })
            );
        }
        assert_firing_then_resolved(
            &catcher,
            Receiver::PagerDuty,
            "ApiDown",
            "api",
            "The api answers no requests.",
            "https://github.com/ampel/ops/blob/main/RUNBOOK.md#apidown",
        );
    }

    /// An acknowledgement is processed but is no notification; a trigger without a key gets one.
    #[tokio::test]
    async fn acknowledge_is_accepted_and_a_missing_key_is_made_up() {
        let catcher = catcher().await;
        let (status, _) = post(&catcher, alertmanager_event("acknowledge").to_string()).await;
        assert_eq!(status, 202);
        assert!(catcher.notifications().is_empty());
        let mut event = alertmanager_event("trigger");
        event.as_object_mut().unwrap().remove("dedup_key");
        let (status, body) = post(&catcher, event.to_string()).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["dedup_key"].as_str().map(str::len), Some(32), "{body}");
    }

    /// Each broken event is refused as PagerDuty refuses it, naming every problem.
    #[tokio::test]
    async fn invalid_events_are_refused_like_pagerduty() {
        let catcher = catcher().await;
        let edit = |edit: fn(&mut Value)| {
            let mut event = alertmanager_event("trigger");
            edit(&mut event);
            event.to_string()
        };
        let cases: [(&str, String, &[&str]); 8] = [
            (
                "not JSON",
                "{".into(),
                &["the body is not an event object: "],
            ),
            (
                "no routing key",
                edit(|e| e["routing_key"] = json!("")),
                &["'routing_key' is missing or blank"],
            ),
            (
                "no action",
                edit(|e| {
                    e.as_object_mut().unwrap().remove("event_action");
                }),
                &["'event_action' is missing or blank"],
            ),
            (
                "unknown action",
                edit(|e| e["event_action"] = json!("escalate")),
                &[
                    "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')",
                ],
            ),
            (
                "trigger without payload",
                edit(|e| e["payload"] = Value::Null),
                &["'payload' is missing or blank"],
            ),
            (
                "trigger without summary and source",
                edit(|e| {
                    e["payload"]["summary"] = json!(" ");
                    e["payload"].as_object_mut().unwrap().remove("source");
                }),
                &[
                    "'payload.summary' is missing or blank",
                    "'payload.source' is missing or blank",
                ],
            ),
            (
                "unknown severity",
                edit(|e| e["payload"]["severity"] = json!("page")),
                &[
                    "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')",
                ],
            ),
            (
                "resolve without key",
                edit(|e| {
                    e["event_action"] = json!("resolve");
                    e.as_object_mut().unwrap().remove("dedup_key");
                }),
                &["'dedup_key' is missing or blank"],
            ),
        ];
        for (case, event, expected) in cases {
            let (status, body) = post(&catcher, event).await;
            assert_eq!(status, 400, "{case}: {body}");
            assert_eq!(body["status"], "invalid event", "{case}: {body}");
            assert_eq!(body["message"], "Event object is invalid", "{case}: {body}");
            let errors: Vec<&str> = body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            assert_eq!(errors.len(), expected.len(), "{case}: {body}");
            for (error, expected) in errors.iter().zip(expected) {
                assert!(error.starts_with(expected), "{case}: {body}");
            }
        }
        assert!(catcher.notifications().is_empty());
    }
}
