//! VictoriaLogs: log records by trace id through LogsQL, and a preset to run it.
//!
//! `GET /select/logsql/query?query=…` answers one JSON object per line, every field a string:
//! `_msg`, `_time`, `_stream`, and what the OTLP receiver made of the record (`trace_id`,
//! `span_id`, and the resource attributes under their own names, such as `service.name`).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;

use crate::http::{excerpt, fetch};
use crate::model::{LogRecord, LogStore};

/// The upstream image this kit is tested against.
pub const IMAGE: &str = "victoriametrics/victoria-logs:v1.52.1";
/// Overrides [`IMAGE`] for [`image`].
pub const IMAGE_ENV: &str = "OTEL_TESTKIT_VICTORIALOGS_IMAGE";
/// The HTTP API's port (`-httpListenAddr`); OTLP logs arrive on it too, at [`OTLP_LOGS_PATH`].
pub const API_PORT: u16 = 9428;
pub const OTLP_LOGS_PATH: &str = "/insert/opentelemetry/v1/logs";

/// [`IMAGE_ENV`] when set, else [`IMAGE`].
pub fn image() -> String {
    crate::image_from_env(IMAGE_ENV, IMAGE)
}

/// VictoriaLogs with the image's defaults; API published; ready when `/health` answers from
/// the host (the image is distroless from 1.52 on: nothing can run a check inside).
#[cfg(feature = "containers")]
pub fn spec(image: &str) -> crate::container::ContainerSpec {
    crate::container::ContainerSpec::new(image)
        .port(API_PORT)
        .name_prefix("otel-testkit-victorialogs")
        .readiness(crate::container::Readiness::Http {
            port: API_PORT,
            path: "/health".to_owned(),
        })
}

pub struct VictoriaLogs {
    http: reqwest::Client,
    base_url: String,
}

impl VictoriaLogs {
    /// `base_url`: the HTTP API, e.g. `http://127.0.0.1:9428`.
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self {
            http,
            base_url: base_url.into(),
        }
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
        parse(&body).with_context(|| format!("GET {url}: unexpected body: {}", excerpt(&body)))
    }
}

fn parse(body: &str) -> anyhow::Result<Vec<LogRecord>> {
    body.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields: HashMap<String, String> = serde_json::from_str(line)
                .with_context(|| format!("unexpected line: {}", excerpt(line)))?;
            let mut field = |key: &str| fields.remove(key);
            let record = LogRecord {
                service: field("service.name").unwrap_or_default(),
                trace_id: field("trace_id").unwrap_or_default(),
                span_id: field("span_id").filter(|id| !id.is_empty()),
                body: field("_msg").unwrap_or_default(),
                attributes: BTreeMap::new(),
            };
            // The rest, but VictoriaLogs' own fields (`_time`, `_stream`, ...).
            let attributes = fields.into_iter().filter(|(key, _)| !key.starts_with('_'));
            Ok(LogRecord {
                attributes: attributes.collect(),
                ..record
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// One JSON object per line, fields as strings; blank lines are no records.
    #[test]
    fn reads_one_record_per_line() {
        let body = concat!(
            r#"{"_msg":"order shipped","_time":"2026-01-01T00:00:00Z","service.name":"shop-worker","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"b7ad6b7169203331","exception.type":"Timeout"}"#,
            "\n\n",
            r#"{"_msg":"no span","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}"#,
            "\n"
        );
        let records = super::parse(body).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].service, "shop-worker");
        assert_eq!(records[0].span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(records[0].body, "order shipped");
        // VictoriaLogs' own fields are not attributes.
        assert_eq!(
            records[0].attributes,
            std::collections::BTreeMap::from([("exception.type".to_owned(), "Timeout".to_owned())])
        );
        assert_eq!(records[1].service, "");
        assert_eq!(records[1].span_id, None);
    }

    /// A line that is not an object of strings is an error, not a silent skip.
    #[test]
    fn refuses_a_malformed_line() {
        assert!(super::parse("not json\n").is_err());
    }
}
