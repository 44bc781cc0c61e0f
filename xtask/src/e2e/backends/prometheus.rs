//! Prometheus: instant queries (through prometheus-http-query) and the scrape targets' health.

use anyhow::Context as _;
use prometheus_http_query::response::Data;

/// The compose service that runs it.
pub const SERVICE: &str = "prometheus";
/// Its HTTP API's port inside the container.
pub const API_PORT: u16 = 9090;
/// Answers 200 once Prometheus serves queries.
pub const READY_PATH: &str = "/-/ready";

pub struct Prometheus {
    client: prometheus_http_query::Client,
    http: reqwest::Client,
    base_url: String,
}

impl Prometheus {
    pub fn new(http: reqwest::Client, base_url: String) -> anyhow::Result<Self> {
        let client = prometheus_http_query::Client::from(http.clone(), &base_url)
            .with_context(|| format!("Prometheus client for {base_url}"))?;
        Ok(Self {
            client,
            http,
            base_url,
        })
    }

    /// The sum of an instant vector query's samples; `None` when it returns no series.
    pub async fn value(&self, query: &str) -> anyhow::Result<Option<f64>> {
        let result = self
            .client
            .query(query)
            .get()
            .await
            .with_context(|| format!("query {query}"))?;
        match result.data() {
            Data::Vector(samples) if samples.is_empty() => Ok(None),
            Data::Vector(samples) => Ok(Some(
                samples.iter().map(|sample| sample.sample().value()).sum(),
            )),
            other => anyhow::bail!("query {query}: expected an instant vector, got {other:?}"),
        }
    }

    /// One line per active target of `job` (with label `e2e_run="{run}"`): its health and last
    /// scrape error, for messages about why a target is not up.
    pub async fn targets(&self, job: &str, run: &str) -> anyhow::Result<String> {
        let targets = self
            .client
            .targets(None)
            .await
            .context("GET /api/v1/targets")?;
        let lines: Vec<String> = targets
            .active()
            .iter()
            .filter(|target| {
                target.labels().get("job").map(String::as_str) == Some(job)
                    && target.labels().get("e2e_run").map(String::as_str) == Some(run)
            })
            .map(|target| {
                format!(
                    "{} {:?} (last error: {:?})",
                    target.scrape_url(),
                    target.health(),
                    target.last_error()
                )
            })
            .collect();
        Ok(if lines.is_empty() {
            format!("no target of job {job:?} for this run is configured")
        } else {
            lines.join("; ")
        })
    }

    /// Asks Prometheus to read its configuration file again (needs `--web.enable-lifecycle`).
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
            "POST {url}: {status}: {} (the compose command must keep --web.enable-lifecycle)",
            body.trim()
        );
        Ok(())
    }
}
