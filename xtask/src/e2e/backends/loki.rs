//! Grafana Loki: log records by trace id through `query_range`.
//!
//! Loki's OTLP endpoint turns `service.name` into the stream label `service_name` and keeps
//! `trace_id`/`span_id` as structured metadata
//! (https://grafana.com/docs/loki/latest/send-data/otel/). `GET /loki/api/v1/query_range` answers
//! `{"status":"success","data":{"resultType":"streams","result":[{"stream":{…},"values":[[ns, line, …]]}]}}`
//! (https://grafana.com/docs/loki/latest/reference/loki-http-api/#query-logs-within-a-range-of-time).
//! With the request header `X-Loki-Response-Encoding-Flags: categorize-labels` each value gets a
//! third element `{"structuredMetadata": {…}, "parsed": {…}}` and `stream` keeps only the stream
//! labels; without it (or from an older Loki) structured metadata is folded into `stream`. Both
//! are read.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Deserialize;

use super::{LogRecord, LogStore, excerpt, fetch};

/// The compose service that runs it.
pub const SERVICE: &str = "loki";
/// Its HTTP API's port inside the container (`server.http_listen_port` in loki.yaml).
pub const API_PORT: u16 = 3100;
/// Answers 200 once Loki takes pushes and queries.
pub const READY_PATH: &str = "/ready";

/// How far back a query looks: the e2e's records are minutes old at most.
const LOOKBACK: Duration = Duration::from_secs(3600);

pub struct Loki {
    http: reqwest::Client,
    base_url: String,
}

#[derive(Debug, Deserialize)]
struct QueryResponse {
    status: String,
    data: Data,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    #[serde(default)]
    result: Vec<Stream>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    #[serde(default)]
    stream: HashMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

/// The third element of a categorized entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Categorized {
    #[serde(default)]
    structured_metadata: HashMap<String, String>,
}

impl Loki {
    pub fn new(http: reqwest::Client, base_url: String) -> Self {
        Self { http, base_url }
    }
}

#[async_trait::async_trait]
impl LogStore for Loki {
    async fn records(&self, trace_id: &str) -> anyhow::Result<Vec<LogRecord>> {
        let url = format!("{}/loki/api/v1/query_range", self.base_url);
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .saturating_sub(LOOKBACK);
        // A stream selector is mandatory; `=~".+"` matches every service, the filter does the work.
        let query = format!(r#"{{service_name=~".+"}} | trace_id="{trace_id}""#);
        let request = self
            .http
            .get(&url)
            .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
            .query(&[
                ("query", query.as_str()),
                ("start", &start.as_nanos().to_string()),
                ("limit", "100"),
                ("direction", "backward"),
            ]);
        let what = format!("GET {url} ({query})");
        let body = fetch(request, &what)
            .await?
            .with_context(|| format!("{what}: 404 Not Found"))?;
        parse(&body).with_context(|| format!("GET {url}: unexpected body: {}", excerpt(&body)))
    }
}

fn parse(body: &str) -> anyhow::Result<Vec<LogRecord>> {
    let response: QueryResponse = serde_json::from_str(body)?;
    anyhow::ensure!(response.status == "success", "status {:?}", response.status);
    anyhow::ensure!(
        response.data.result_type == "streams",
        "resultType {:?}, not streams",
        response.data.result_type
    );
    let mut records = Vec::new();
    for stream in response.data.result {
        for value in stream.values {
            let body = value
                .get(1)
                .and_then(|line| line.as_str())
                .unwrap_or_default();
            let metadata = value
                .get(2)
                .map(|extra| serde_json::from_value::<Categorized>(extra.clone()))
                .transpose()?
                .unwrap_or_default()
                .structured_metadata;
            let label = |key: &str| {
                metadata
                    .get(key)
                    .or_else(|| stream.stream.get(key))
                    .cloned()
                    .unwrap_or_default()
            };
            records.push(LogRecord {
                service: label("service_name"),
                trace_id: label("trace_id"),
                body: body.to_owned(),
            });
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    /// A categorized `query_range` answer: the service from the stream labels, the trace id from
    /// each entry's structured metadata.
    #[test]
    fn reads_categorized_structured_metadata() {
        let records = super::parse(include_str!("../fixtures/loki_query_range.json")).unwrap();
        assert_eq!(records.len(), 2);
        assert!(
            records
                .iter()
                .all(|record| record.service == "ampel-worker")
        );
        assert!(
            records
                .iter()
                .all(|record| record.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(records[0].body, "job finished");
    }

    /// Without the header Loki folds structured metadata into the stream labels; that reads too.
    #[test]
    fn reads_folded_structured_metadata() {
        let body = r#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"service_name":"ampel-worker","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"},
             "values":[["1764121200020000000","pull requests stored"]]}]}}"#;
        let records = super::parse(body).unwrap();
        assert_eq!(records[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(records[0].service, "ampel-worker");
    }

    /// A metric query's answer is refused rather than read as "no logs".
    #[test]
    fn refuses_a_matrix_answer() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(super::parse(body).is_err());
    }
}
