//! Jaeger v2: a trace by id through the api_v3 HTTP gateway.
//!
//! `GET /api/v3/traces/{id}` answers `{"result": <OTLP TracesData>}` with hex ids and numeric
//! kinds, or 404 while the trace is unknown. Exercised for real by `cargo xtask e2e --traces jaeger`.

use anyhow::Context as _;
use serde::Deserialize;

use super::{Span, TraceStore, excerpt, fetch, otlp::TracesData};

/// The compose service that runs it.
pub const SERVICE: &str = "jaeger";
/// Its query API's port inside the container.
pub const API_PORT: u16 = 16686;
/// Answers 200 once the query service is up (the all-in-one starts it after the receivers).
pub const READY_PATH: &str = "/api/v3/services";

pub struct Jaeger {
    http: reqwest::Client,
    base_url: String,
}

#[derive(Debug, Deserialize)]
struct GetTraceResponse {
    #[serde(default)]
    result: TracesData,
}

impl Jaeger {
    pub fn new(http: reqwest::Client, base_url: String) -> Self {
        Self { http, base_url }
    }
}

#[async_trait::async_trait]
impl TraceStore for Jaeger {
    async fn spans(&self, trace_id: &str) -> anyhow::Result<Vec<Span>> {
        let url = format!("{}/api/v3/traces/{trace_id}", self.base_url);
        let Some(body) = fetch(self.http.get(&url), &format!("GET {url}")).await? else {
            return Ok(Vec::new());
        };
        serde_json::from_str::<GetTraceResponse>(&body)
            .map_err(anyhow::Error::from)
            .and_then(|response| response.result.spans())
            .with_context(|| format!("GET {url}: unexpected body: {}", excerpt(&body)))
    }
}
