//! Grafana Loki: log records by trace id through `query_range`, and a preset to run it.
//!
//! Loki's OTLP endpoint turns `service.name` into the stream label `service_name` and keeps
//! `trace_id`/`span_id` as structured metadata
//! (<https://grafana.com/docs/loki/latest/send-data/otel/>). `GET /loki/api/v1/query_range` answers
//! `{"status":"success","data":{"resultType":"streams","result":[{"stream":{…},"values":[[ns, line, …]]}]}}`
//! (<https://grafana.com/docs/loki/latest/reference/loki-http-api/#query-logs-within-a-range-of-time>).
//! With the request header `X-Loki-Response-Encoding-Flags: categorize-labels` each value gets a
//! third element `{"structuredMetadata": {…}, "parsed": {…}}` and `stream` keeps only the stream
//! labels; without it (or from an older Loki) structured metadata is folded into `stream`. Both
//! are read.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Deserialize;

use crate::http::{excerpt, fetch};
use crate::model::{LogRecord, LogStore};

/// The upstream image.
pub const IMAGE: &str = "grafana/loki:3.7.8";
/// Overrides [`IMAGE`] for [`image`].
pub const IMAGE_ENV: &str = "OTEL_TESTKIT_LOKI_IMAGE";
/// The HTTP API's port; OTLP logs arrive on it too, at [`OTLP_LOGS_PATH`].
pub const API_PORT: u16 = 3100;
pub const OTLP_LOGS_PATH: &str = "/otlp/v1/logs";
/// The configuration the image ships (schema v13, so OTLP's structured metadata is kept); mount
/// or copy your own and pass `-config.file=` in the command to replace it.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/loki/local-config.yaml";

/// How far back a query looks: a test's records are minutes old at most.
const LOOKBACK: Duration = Duration::from_secs(3600);

/// [`IMAGE_ENV`] when set, else [`IMAGE`].
pub fn image() -> String {
    crate::image_from_env(IMAGE_ENV, IMAGE)
}

/// Loki with the image's own configuration and usage reports off; API published; ready when
/// `loki -health` (which asks `/ready`) passes inside the container (the image is distroless).
#[cfg(feature = "containers")]
pub fn spec(image: &str) -> crate::container::ContainerSpec {
    crate::container::ContainerSpec::new(image)
        .port(API_PORT)
        .cmd([
            format!("-config.file={DEFAULT_CONFIG_FILE}"),
            "-reporting.enabled=false".to_owned(),
        ])
        .name_prefix("otel-testkit-loki")
        .readiness(crate::container::Readiness::Exec(vec![
            "/usr/bin/loki".to_owned(),
            "-health".to_owned(),
        ]))
}

#[derive(Clone)]
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
    /// `base_url`: the HTTP API, e.g. `http://127.0.0.1:3100`.
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self {
            http,
            base_url: base_url.into(),
        }
    }

    /// `GET /loki/api/v1/query_range` over the last hour, newest first, at `step` (Loki's
    /// default when `None`); what was asked (for messages) and the body. `categorize`:
    /// structured metadata apart from the stream labels.
    async fn query_range(
        &self,
        query: &str,
        step: Option<Duration>,
        categorize: bool,
    ) -> anyhow::Result<(String, String)> {
        let url = format!("{}/loki/api/v1/query_range", self.base_url);
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .saturating_sub(LOOKBACK);
        let mut request = self.http.get(&url).query(&[
            ("query", query),
            ("start", &start.as_nanos().to_string()),
            ("limit", "100"),
            ("direction", "backward"),
        ]);
        if let Some(step) = step {
            request = request.query(&[("step", format!("{}s", step.as_secs_f64()))]);
        }
        if categorize {
            request = request.header("X-Loki-Response-Encoding-Flags", "categorize-labels");
        }
        let what = format!("GET {url} ({query})");
        let body = fetch(request, &what)
            .await?
            .with_context(|| format!("{what}: 404 Not Found"))?;
        Ok((what, body))
    }

    /// How many streams (a log query) or series (a metric query such as `count_over_time`)
    /// `query` returns over the last hour: for "does this LogQL find data", whatever its type.
    /// A metric query is evaluated every `step`: its range windows (`[5s]`) must be at least that
    /// long to cover the hour, as Grafana's `$__interval` is. A query Loki refuses (a LogQL
    /// syntax error, say) is an error naming Loki's reason.
    pub async fn series_count(&self, query: &str, step: Duration) -> anyhow::Result<usize> {
        #[derive(Deserialize)]
        struct Counted {
            status: String,
            data: CountedData,
        }
        #[derive(Deserialize)]
        struct CountedData {
            #[serde(default)]
            result: Vec<serde::de::IgnoredAny>,
        }
        let (what, body) = self.query_range(query, Some(step), false).await?;
        let counted: Counted = serde_json::from_str(&body)
            .with_context(|| format!("{what}: unexpected body: {}", excerpt(&body)))?;
        anyhow::ensure!(
            counted.status == "success",
            "{what}: status {:?}",
            counted.status
        );
        Ok(counted.data.result.len())
    }
}

#[async_trait::async_trait]
impl LogStore for Loki {
    async fn records(&self, trace_id: &str) -> anyhow::Result<Vec<LogRecord>> {
        // A stream selector is mandatory; `=~".+"` matches every service, the filter does the work.
        let query = format!(r#"{{service_name=~".+"}} | trace_id="{trace_id}""#);
        let (what, body) = self.query_range(&query, None, true).await?;
        parse(&body).with_context(|| format!("{what}: unexpected body: {}", excerpt(&body)))
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
            };
            let attributes = metadata
                .iter()
                .filter(|(key, _)| !["service_name", "trace_id", "span_id"].contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            records.push(LogRecord {
                service: label("service_name").unwrap_or_default(),
                trace_id: label("trace_id").unwrap_or_default(),
                span_id: label("span_id"),
                body: body.to_owned(),
                attributes,
            });
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    /// A categorized `query_range` answer: the service from the stream labels, trace and span
    /// ids from each entry's structured metadata.
    #[test]
    fn reads_categorized_structured_metadata() {
        let records = super::parse(include_str!("../fixtures/loki_query_range.json")).unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|record| record.service == "shop-worker"));
        assert!(
            records
                .iter()
                .all(|record| record.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(records[0].span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(records[0].body, "job finished");
    }

    /// Without the header Loki folds structured metadata into the stream labels; that reads too.
    #[test]
    fn reads_folded_structured_metadata() {
        let body = r#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"service_name":"shop-worker","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"},
             "values":[["1764121200020000000","order shipped"]]}]}}"#;
        let records = super::parse(body).unwrap();
        assert_eq!(records[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(records[0].service, "shop-worker");
        assert_eq!(records[0].span_id, None);
    }

    /// `series_count` counts streams and series alike at the step it is given, and reports what
    /// Loki says of a query it refuses.
    #[cfg(feature = "sink")]
    #[tokio::test]
    async fn series_count_counts_streams_and_series_and_reports_refusals() {
        use axum::{Router, extract::Query, http::StatusCode, routing::get};
        use std::collections::BTreeMap;
        let answers = Router::new().route(
            "/loki/api/v1/query_range",
            get(|query: Query<BTreeMap<String, String>>| async move {
                // The step is asked for: without it Loki picks one wider than the windows.
                if query.get("step").map(String::as_str) != Some("5s") {
                    return (StatusCode::BAD_REQUEST, "no step=5s");
                }
                match query["query"].as_str() {
                    "{a=\"1\"}" => (StatusCode::OK, r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[]},{"stream":{},"values":[]}]}}"#),
                    "count_over_time({a=\"1\"}[1m])" => (StatusCode::OK, r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[]}]}}"#),
                    _ => (StatusCode::BAD_REQUEST, "parse error at line 1, col 2: syntax error"),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, answers).await });
        let loki = super::Loki::new(reqwest::Client::new(), url);
        let step = std::time::Duration::from_secs(5);
        assert_eq!(loki.series_count("{a=\"1\"}", step).await.unwrap(), 2);
        let metric = "count_over_time({a=\"1\"}[1m])";
        assert_eq!(loki.series_count(metric, step).await.unwrap(), 1);
        let refused = format!("{:#}", loki.series_count("{a=", step).await.unwrap_err());
        assert!(
            refused.contains("400 Bad Request: parse error"),
            "{refused}"
        );
    }

    /// A metric query's answer is refused rather than read as "no logs".
    #[test]
    fn refuses_a_matrix_answer() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(super::parse(body).is_err());
    }
}
