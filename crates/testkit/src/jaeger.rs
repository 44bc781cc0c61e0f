//! Jaeger v2: traces by id through the api_v3 HTTP gateway, and a preset to run it.
//!
//! `GET /api/v3/traces/{id}` answers `{"result": <OTLP TracesData>}` with hex ids and numeric
//! kinds, or 404 while the trace is unknown. The all-in-one image keeps traces in memory: a
//! trace is queryable as soon as it arrives.

use anyhow::Context as _;
use serde::Deserialize;

use crate::http::{excerpt, fetch};
use crate::model::{Trace, TraceStore};
use crate::otlp_json::TracesData;

/// The upstream image this kit is tested against.
pub const IMAGE: &str = "jaegertracing/jaeger:2.13.0";
/// Overrides [`IMAGE`] for [`image`] (a mirror, or a local build where no registry is reachable).
pub const IMAGE_ENV: &str = "OTEL_TESTKIT_JAEGER_IMAGE";
/// The query API's (and UI's) port.
pub const API_PORT: u16 = 16686;
/// OTLP receivers.
pub const OTLP_GRPC_PORT: u16 = 4317;
pub const OTLP_HTTP_PORT: u16 = 4318;
/// The healthcheckv2 extension of the embedded all-in-one config (`GET /status`).
pub const HEALTH_PORT: u16 = 13133;

/// [`IMAGE_ENV`] when set, else [`IMAGE`].
pub fn image() -> String {
    crate::image_from_env(IMAGE_ENV, IMAGE)
}

/// The all-in-one with in-memory storage; query API and OTLP/HTTP published; ready when its
/// health extension says so (checked inside the container).
#[cfg(feature = "containers")]
pub fn spec(image: &str) -> crate::container::ContainerSpec {
    crate::container::ContainerSpec::new(image)
        .port(API_PORT)
        .port(OTLP_HTTP_PORT)
        .name_prefix("otel-testkit-jaeger")
        .readiness(crate::container::Readiness::http_inside(
            HEALTH_PORT,
            "/status",
        ))
}

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
    /// `base_url`: the query API, e.g. `http://127.0.0.1:16686`.
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self {
            http,
            base_url: base_url.into(),
        }
    }
}

#[async_trait::async_trait]
impl TraceStore for Jaeger {
    async fn trace(&self, trace_id: &str) -> anyhow::Result<Trace> {
        let url = format!("{}/api/v3/traces/{trace_id}", self.base_url);
        let Some(body) = fetch(self.http.get(&url), &format!("GET {url}")).await? else {
            return Ok(Trace::default());
        };
        serde_json::from_str::<GetTraceResponse>(&body)
            .map_err(anyhow::Error::from)
            .and_then(|response| response.result.into_trace())
            .with_context(|| format!("GET {url}: unexpected body: {}", excerpt(&body)))
    }
}
