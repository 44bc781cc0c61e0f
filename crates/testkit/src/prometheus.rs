//! Prometheus: instant queries as typed samples, scrape targets, configuration reloads, a
//! preset to run it, and a [`ScrapeConfig`] to point it at the test's own processes.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context as _;
use prometheus_http_query::response::Data;

use crate::model::Sample;

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

    /// The sum of an instant-vector query's samples; `None` when it matches no series.
    pub async fn sum(&self, query: &str) -> anyhow::Result<Option<f64>> {
        let samples = self.query(query).await?;
        Ok((!samples.is_empty()).then(|| samples.iter().map(|sample| sample.value).sum()))
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

#[cfg(test)]
mod tests {
    use super::*;

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
