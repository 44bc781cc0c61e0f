//! VictoriaLogs: log records by trace id through LogsQL.
//!
//! `GET /select/logsql/query?query=…` answers one JSON object per line, every field a string:
//! `_msg`, `_time`, `_stream`, and what the OTLP receiver made of the record (`trace_id`, and the
//! resource attributes under their own names, such as `service.name`). Exercised for real by
//! `cargo xtask e2e --logs victorialogs`.

use std::collections::HashMap;

use anyhow::Context as _;

use super::{LogRecord, LogStore, excerpt, fetch};

/// The compose service that runs it.
pub const SERVICE: &str = "victorialogs";
/// Its HTTP API's port inside the container (`-httpListenAddr`).
pub const API_PORT: u16 = 9428;
/// Answers 200 once VictoriaLogs takes inserts and queries.
pub const READY_PATH: &str = "/health";

pub struct VictoriaLogs {
    http: reqwest::Client,
    base_url: String,
}

impl VictoriaLogs {
    pub fn new(http: reqwest::Client, base_url: String) -> Self {
        Self { http, base_url }
    }
}

#[async_trait::async_trait]
impl LogStore for VictoriaLogs {
    async fn records(&self, trace_id: &str) -> anyhow::Result<Vec<LogRecord>> {
        let url = format!("{}/select/logsql/query", self.base_url);
        let query = format!(r#"trace_id:="{trace_id}""#);
        let request = self
            .http
            .get(&url)
            .query(&[("query", query.as_str()), ("limit", "100")]);
        let what = format!("GET {url} ({query})");
        let body = fetch(request, &what)
            .await?
            .with_context(|| format!("{what}: 404 Not Found"))?;
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let fields: HashMap<String, String> = serde_json::from_str(line)
                    .with_context(|| format!("GET {url}: unexpected line: {}", excerpt(line)))?;
                let field = |key: &str| fields.get(key).cloned().unwrap_or_default();
                Ok(LogRecord {
                    service: field("service.name"),
                    trace_id: field("trace_id"),
                    body: field("_msg"),
                })
            })
            .collect()
    }
}
