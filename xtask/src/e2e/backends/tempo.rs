//! Grafana Tempo: a trace by id through the v2 API.
//!
//! `GET /api/v2/traces/{id}` answers `{"trace": <OTLP TracesData>, "status": …}` (404 while the
//! trace is unknown). Documented at https://grafana.com/docs/tempo/latest/api_docs/#query-v2 and
//! in Tempo's `pkg/tempopb/tempo.proto` (`TraceByIDResponse`); ids come base64-encoded (jsonpb).

use anyhow::Context as _;
use serde::Deserialize;

use super::{Span, TraceStore, excerpt, fetch, otlp::TracesData};

/// The compose service that runs it.
pub const SERVICE: &str = "tempo";
/// Its HTTP API's port inside the container (`server.http_listen_port` in tempo.yaml).
pub const API_PORT: u16 = 3200;
/// Answers 200 once Tempo takes queries and spans.
pub const READY_PATH: &str = "/ready";

pub struct Tempo {
    http: reqwest::Client,
    base_url: String,
}

#[derive(Debug, Deserialize)]
struct TraceByIdResponse {
    #[serde(default)]
    trace: TracesData,
}

impl Tempo {
    pub fn new(http: reqwest::Client, base_url: String) -> Self {
        Self { http, base_url }
    }
}

#[async_trait::async_trait]
impl TraceStore for Tempo {
    async fn spans(&self, trace_id: &str) -> anyhow::Result<Vec<Span>> {
        let url = format!("{}/api/v2/traces/{trace_id}", self.base_url);
        let Some(body) = fetch(self.http.get(&url), &format!("GET {url}")).await? else {
            return Ok(Vec::new());
        };
        parse(&body).with_context(|| format!("GET {url}: unexpected body: {}", excerpt(&body)))
    }
}

fn parse(body: &str) -> anyhow::Result<Vec<Span>> {
    serde_json::from_str::<TraceByIdResponse>(body)?
        .trace
        .spans()
}

#[cfg(test)]
mod tests {
    use crate::e2e::backends::SpanKind;

    /// A v2 trace-by-id answer, shaped as Tempo documents it, reads into spans with hex ids,
    /// kinds, parents and each resource's service name.
    #[test]
    fn reads_a_v2_trace_by_id_response() {
        let spans = super::parse(include_str!("../fixtures/tempo_trace_v2.json")).unwrap();
        assert_eq!(spans.len(), 3);
        let server = &spans[0];
        assert_eq!(server.service, "ampel-api");
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(server.name, "POST /api/repositories/{id}/poll");
        assert_eq!(server.span_id, "00f067aa0ba902b7");
        assert_eq!(server.parent_span_id, None);
        let task = &spans[1];
        assert_eq!(task.service, "ampel-worker");
        assert_eq!(task.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(spans[2].kind, SpanKind::Client);
    }

    /// An answer without a trace is no spans, not an error.
    #[test]
    fn an_empty_answer_is_no_spans() {
        assert!(super::parse(r#"{"status":"complete"}"#).unwrap().is_empty());
    }
}
