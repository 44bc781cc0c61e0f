//! Prometheus: instant queries as typed samples, exemplars, scrape targets, configuration
//! reloads, a preset to run it, and a [`ScrapeConfig`] to point it at the test's own processes;
//! [`scrape`], to read any `/metrics` endpoint without a Prometheus; and, with the `rules`
//! feature, [`rules`]: rule files on a compressed clock and alerts without their thresholds.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context as _;
use prometheus_http_query::response::Data;

use crate::model::Sample;

#[cfg(feature = "rules")]
pub mod rules;
#[cfg(feature = "containers")]
mod scrape_config;
#[cfg(feature = "containers")]
pub use scrape_config::ScrapeConfig;

/// The upstream image.
pub const IMAGE: &str = "prom/prometheus:v3.16.0";
/// Overrides [`IMAGE`] for [`image`].
pub const IMAGE_ENV: &str = "OTEL_TESTKIT_PROMETHEUS_IMAGE";
/// The HTTP API's port.
pub const API_PORT: u16 = 9090;
/// The folder [`spec`]'s command reads `prometheus.yml` from. Mount your own folder here
/// (`spec(..).mount_ro(dir, CONFIG_DIR)`) to scrape what you want; edit it and
/// [`Prometheus::reload`] while it runs.
pub const CONFIG_DIR: &str = "/etc/prometheus";

/// [`IMAGE_ENV`] when set, else [`IMAGE`].
pub fn image() -> String {
    crate::image_from_env(IMAGE_ENV, IMAGE)
}

/// Prometheus reading `CONFIG_DIR/prometheus.yml` (the image's own scrapes Prometheus itself,
/// job `prometheus`), with reloads over HTTP allowed; API published; ready when `/-/ready`
/// answers inside the container.
#[cfg(feature = "containers")]
pub fn spec(image: &str) -> crate::container::ContainerSpec {
    crate::container::ContainerSpec::new(image)
        .port(API_PORT)
        .cmd([
            format!("--config.file={CONFIG_DIR}/prometheus.yml"),
            "--storage.tsdb.path=/prometheus".to_owned(),
            "--web.enable-lifecycle".to_owned(),
        ])
        .name_prefix("otel-testkit-prometheus")
        .readiness(crate::container::Readiness::http_inside(
            API_PORT, "/-/ready",
        ))
}

pub struct Prometheus {
    client: prometheus_http_query::Client,
    http: reqwest::Client,
    base_url: String,
}

/// An active scrape target and how its last scrape went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub labels: BTreeMap<String, String>,
    pub scrape_url: String,
    /// `up`, `down` or `unknown`.
    pub health: String,
    /// "" after a good scrape.
    pub last_error: String,
}

/// The exemplars of one series, as `/api/v1/query_exemplars` returns them.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExemplarSeries {
    pub series_labels: BTreeMap<String, String>,
    pub exemplars: Vec<Exemplar>,
}

/// One exemplar: its labels (the trace id among them, under the name its producer gives it),
/// the value it was recorded with, and when (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Exemplar {
    pub labels: BTreeMap<String, String>,
    pub value: String,
    pub timestamp: f64,
}

/// `url health (last error: …)`, for messages about why a target is not up.
impl fmt::Display for ScrapeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.scrape_url, self.health)?;
        if !self.last_error.is_empty() {
            write!(f, " (last error: {})", self.last_error)?;
        }
        Ok(())
    }
}

impl Prometheus {
    /// `base_url`: the HTTP API, e.g. `http://127.0.0.1:9090`.
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> anyhow::Result<Self> {
        let base_url = base_url.into();
        let client = prometheus_http_query::Client::from(http.clone(), &base_url)
            .with_context(|| format!("Prometheus client for {base_url}"))?;
        Ok(Self {
            client,
            http,
            base_url,
        })
    }

    /// The samples of an instant-vector query (none when it matches no series); any other
    /// result type is an error.
    pub async fn query(&self, query: &str) -> anyhow::Result<Vec<Sample>> {
        let result = self
            .client
            .query(query)
            .get()
            .await
            .with_context(|| format!("query {query}"))?;
        match result.data() {
            Data::Vector(vector) => Ok(vector
                .iter()
                .map(|series| Sample {
                    labels: series
                        .metric()
                        .iter()
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect(),
                    value: series.sample().value(),
                })
                .collect()),
            other => anyhow::bail!("query {query}: expected an instant vector, got {other:?}"),
        }
    }

    /// How many series any query returns: the series of an instant vector or a range vector,
    /// 1 for a scalar. For "does this query find data" whatever its result type.
    pub async fn series_count(&self, query: &str) -> anyhow::Result<usize> {
        let result = self
            .client
            .query(query)
            .get()
            .await
            .with_context(|| format!("query {query}"))?;
        Ok(match result.data() {
            Data::Vector(vector) => vector.len(),
            Data::Matrix(matrix) => matrix.len(),
            Data::Scalar(_) => 1,
        })
    }

    /// The names of the alerts its rules hold firing (not those pending their `for:`), sorted.
    pub async fn firing_alerts(&self) -> anyhow::Result<Vec<String>> {
        let samples = self.query(r#"ALERTS{alertstate="firing"}"#).await?;
        let mut names: Vec<String> = samples
            .into_iter()
            .filter_map(|sample| sample.labels.get("alertname").cloned())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The sum of an instant-vector query's samples; `None` when it matches no series.
    pub async fn sum(&self, query: &str) -> anyhow::Result<Option<f64>> {
        let samples = self.query(query).await?;
        Ok((!samples.is_empty()).then(|| samples.iter().map(|sample| sample.value).sum()))
    }

    /// The exemplars of the series `query` selects between `start` and `end` (seconds since the
    /// epoch); none when there are none (or when exemplar storage is off: Prometheus answers
    /// the same then).
    pub async fn query_exemplars(
        &self,
        query: &str,
        start: f64,
        end: f64,
    ) -> anyhow::Result<Vec<ExemplarSeries>> {
        #[derive(serde::Deserialize)]
        struct Response {
            status: String,
            #[serde(default)]
            data: Vec<ExemplarSeries>,
            #[serde(default)]
            error: String,
        }
        let url = format!("{}/api/v1/query_exemplars", self.base_url);
        let what = format!("GET {url}?query={query}");
        let body = self
            .http
            .get(&url)
            .query(&[
                ("query", query.to_owned()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ])
            .send()
            .await
            .with_context(|| what.clone())?
            .text()
            .await
            .with_context(|| what.clone())?;
        let response: Response = serde_json::from_str(&body)
            .with_context(|| format!("{what}: not an API response: {body}"))?;
        anyhow::ensure!(
            response.status == "success",
            "{what}: {} {}",
            response.status,
            response.error
        );
        Ok(response.data)
    }

    /// The active targets whose labels include every `(name, value)` of `matching`.
    pub async fn targets(&self, matching: &[(&str, &str)]) -> anyhow::Result<Vec<ScrapeTarget>> {
        let targets = self
            .client
            .targets(None)
            .await
            .context("GET /api/v1/targets")?;
        Ok(targets
            .active()
            .iter()
            .filter(|target| {
                matching.iter().all(|(name, value)| {
                    target.labels().get(*name).map(String::as_str) == Some(value)
                })
            })
            .map(|target| ScrapeTarget {
                labels: target
                    .labels()
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
                scrape_url: target.scrape_url().to_string(),
                health: target.health().to_string(),
                last_error: target.last_error().to_owned(),
            })
            .collect())
    }

    /// Asks Prometheus to read its configuration again (needs `--web.enable-lifecycle`, which
    /// [`spec`] passes).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let url = format!("{}/-/reload", self.base_url);
        let response = self
            .http
            .post(&url)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "POST {url}: {status}: {} (is --web.enable-lifecycle in the command?)",
            body.trim()
        );
        Ok(())
    }
}

/// The counters, gauges and untyped samples of a `/metrics` endpoint in Prometheus' text
/// format (of histograms and summaries only `_sum` and `_count`), each labelled `__name__` as a query's
/// would be: for a process' own metrics where no Prometheus scrapes it.
pub async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Sample>> {
    let response = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?;
    let body = response
        .text()
        .await
        .with_context(|| format!("GET {url}"))?;
    parse_text(&body).with_context(|| format!("GET {url}: not Prometheus' text format"))
}

fn parse_text(body: &str) -> anyhow::Result<Vec<Sample>> {
    use prometheus_parse::Value;
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines)?;
    Ok(scrape
        .samples
        .into_iter()
        .filter_map(|sample| {
            let value = match sample.value {
                Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => value,
                Value::Histogram(_) | Value::Summary(_) => return None,
            };
            let mut labels: BTreeMap<String, String> = sample
                .labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            labels.insert("__name__".to_owned(), sample.metric);
            Some(Sample { labels, value })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape keeps each counter's and gauge's labels and value, named as a query names them,
    /// and of a histogram only its sum and count.
    #[test]
    fn text_format_samples_are_typed() {
        let body = "\
# HELP sampled_total Traces kept.
# TYPE sampled_total counter
sampled_total{policy=\"errors\",sampled=\"true\"} 5
sampled_total{policy=\"share\",sampled=\"false\"} 81
# TYPE on_memory gauge
on_memory 3
# TYPE latency histogram
latency_bucket{le=\"1\"} 2
latency_bucket{le=\"+Inf\"} 2
latency_sum 0.5
latency_count 2
";
        let samples = parse_text(body).unwrap();
        let found: Vec<(String, Option<String>, f64)> = samples
            .iter()
            .map(|sample| {
                let policy = sample.labels.get("policy").cloned();
                (sample.labels["__name__"].clone(), policy, sample.value)
            })
            .collect();
        assert_eq!(
            found,
            [
                ("sampled_total".to_owned(), Some("errors".to_owned()), 5.0),
                ("sampled_total".to_owned(), Some("share".to_owned()), 81.0),
                ("on_memory".to_owned(), None, 3.0),
                ("latency_sum".to_owned(), None, 0.5),
                ("latency_count".to_owned(), None, 2.0),
            ]
        );
    }

    /// A client of `answers`, served on a free port for the rest of the test.
    #[cfg(feature = "sink")]
    async fn stub(answers: axum::Router) -> Prometheus {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, answers).await });
        Prometheus::new(reqwest::Client::new(), url).unwrap()
    }

    /// `/api/v1/query_exemplars`'s answer becomes typed series, the trace id among the labels;
    /// an error answer says what Prometheus said.
    #[cfg(feature = "sink")]
    #[tokio::test]
    async fn exemplars_are_read_and_errors_reported() {
        use axum::{Json, Router, routing::get};
        let answers = Router::new().route(
            "/api/v1/query_exemplars",
            get(
                |query: axum::extract::Query<BTreeMap<String, String>>| async move {
                    if query["query"] == "bad{" {
                        return Json(serde_json::json!({
                            "status": "error", "errorType": "bad_data", "error": "parse error"
                        }));
                    }
                    assert_eq!(
                        (query["start"].as_str(), query["end"].as_str()),
                        ("1", "2.5")
                    );
                    Json(serde_json::json!({"status": "success", "data": [{
                        "seriesLabels": {"__name__": "duration_seconds_bucket", "le": "0.1"},
                        "exemplars": [{
                            "labels": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
                            "value": "0.05",
                            "timestamp": 1.5
                        }]
                    }]}))
                },
            ),
        );
        let prometheus = stub(answers).await;
        let series = prometheus
            .query_exemplars("duration_seconds_bucket", 1.0, 2.5)
            .await
            .unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].series_labels["le"], "0.1");
        let exemplar = &series[0].exemplars[0];
        assert_eq!(
            exemplar.labels["trace_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!((exemplar.value.as_str(), exemplar.timestamp), ("0.05", 1.5));
        let error = prometheus
            .query_exemplars("bad{", 1.0, 2.5)
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("error parse error"),
            "{error:#}"
        );
    }

    /// Each result type counts its series: vectors and range vectors by their series, a scalar
    /// as one, an empty vector as none; an error answer is an error.
    #[cfg(feature = "sink")]
    #[tokio::test]
    async fn series_are_counted_for_any_result_type() {
        use axum::{Json, Router, routing::get};
        let answers = Router::new().route(
            "/api/v1/query",
            get(
                |query: axum::extract::Query<BTreeMap<String, String>>| async move {
                    let series = serde_json::json!({"metric": {"job": "api"}, "value": [1.5, "1"]});
                    let range = serde_json::json!({"metric": {}, "values": [[1.5, "1"]]});
                    let data = match query["query"].as_str() {
                        "two" => {
                            serde_json::json!({"resultType": "vector", "result": [series, series]})
                        }
                        "none" => serde_json::json!({"resultType": "vector", "result": []}),
                        "range[1m]" => {
                            serde_json::json!({"resultType": "matrix", "result": [range]})
                        }
                        "1" => serde_json::json!({"resultType": "scalar", "result": [1.5, "1"]}),
                        _ => {
                            return Json(serde_json::json!({
                                "status": "error", "errorType": "bad_data", "error": "parse error"
                            }));
                        }
                    };
                    Json(serde_json::json!({"status": "success", "data": data}))
                },
            ),
        );
        let prometheus = stub(answers).await;
        for (query, count) in [("two", 2), ("none", 0), ("range[1m]", 1), ("1", 1)] {
            assert_eq!(
                prometheus.series_count(query).await.unwrap(),
                count,
                "{query}"
            );
        }
        let error = prometheus.series_count("bad{").await.unwrap_err();
        assert!(format!("{error:#}").contains("parse error"), "{error:#}");
    }

    /// A target prints its URL and health, and its last error only when there is one.
    #[test]
    fn a_target_says_why_it_is_down() {
        let mut target = ScrapeTarget {
            labels: BTreeMap::new(),
            scrape_url: "http://10.88.0.1:8080/metrics".to_owned(),
            health: "up".to_owned(),
            last_error: String::new(),
        };
        assert_eq!(target.to_string(), "http://10.88.0.1:8080/metrics up");
        target.health = "down".to_owned();
        target.last_error = "connection refused".to_owned();
        assert_eq!(
            target.to_string(),
            "http://10.88.0.1:8080/metrics down (last error: connection refused)"
        );
    }
}
