//! Grafana Tempo: traces by id through the v2 API, and a preset to run it.
//!
//! `GET /api/v2/traces/{id}` answers `{"trace": <OTLP TracesData>, "status": …}` (404 while the
//! trace is unknown), documented at <https://grafana.com/docs/tempo/latest/api_docs/#query-v2> and
//! in Tempo's `pkg/tempopb/tempo.proto` (`TraceByIDResponse`); ids come base64-encoded (jsonpb).

use anyhow::Context as _;
use serde::Deserialize;

use crate::http::{excerpt, fetch};
use crate::model::{Trace, TraceStore};
use crate::otlp_json::TracesData;

/// The upstream image.
pub const IMAGE: &str = "grafana/tempo:2.10.8";
/// Overrides [`IMAGE`] for [`image`].
pub const IMAGE_ENV: &str = "OTEL_TESTKIT_TEMPO_IMAGE";
/// The HTTP API's port (`server.http_listen_port` of [`CONFIG`]).
pub const API_PORT: u16 = 3200;
pub const OTLP_GRPC_PORT: u16 = 4317;
pub const OTLP_HTTP_PORT: u16 = 4318;
/// Where [`spec`] puts the configuration; copy your own there to replace [`CONFIG`].
pub const CONFIG_FILE: &str = "/etc/tempo/tempo.yaml";
/// A single-binary configuration for tests: local storage, OTLP receivers on all interfaces,
/// no usage reports. The image ships none.
pub const CONFIG: &str = include_str!("../fixtures/tempo.yaml");

/// [`IMAGE_ENV`] when set, else [`IMAGE`].
pub fn image() -> String {
    crate::image_from_env(IMAGE_ENV, IMAGE)
}

/// Tempo with [`CONFIG`]; API and OTLP/HTTP published; ready when `/ready` answers from the
/// host (the image is distroless: nothing can run a check inside). Its ring takes ~20 s.
#[cfg(feature = "containers")]
pub fn spec(image: &str) -> crate::container::ContainerSpec {
    crate::container::ContainerSpec::new(image)
        .port(API_PORT)
        .port(OTLP_HTTP_PORT)
        .copy_bytes(CONFIG, CONFIG_FILE)
        .cmd([format!("-config.file={CONFIG_FILE}")])
        .name_prefix("otel-testkit-tempo")
        .readiness(crate::container::Readiness::Http {
            port: API_PORT,
            path: "/ready".to_owned(),
        })
}

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
    /// `base_url`: the HTTP API, e.g. `http://127.0.0.1:3200`.
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self {
            http,
            base_url: base_url.into(),
        }
    }
}

#[async_trait::async_trait]
impl TraceStore for Tempo {
    async fn trace(&self, trace_id: &str) -> anyhow::Result<Trace> {
        let url = format!("{}/api/v2/traces/{trace_id}", self.base_url);
        let Some(body) = fetch(self.http.get(&url), &format!("GET {url}")).await? else {
            return Ok(Trace::default());
        };
        parse(&body).with_context(|| format!("GET {url}: unexpected body: {}", excerpt(&body)))
    }
}

fn parse(body: &str) -> anyhow::Result<Trace> {
    serde_json::from_str::<TraceByIdResponse>(body)?
        .trace
        .into_trace()
}

#[cfg(test)]
mod tests {
    use crate::model::SpanKind;

    /// A v2 trace-by-id answer, shaped as Tempo documents it, reads into spans with hex ids,
    /// kinds, parents, attributes and each resource's service name.
    #[test]
    fn reads_a_v2_trace_by_id_response() {
        let trace = super::parse(include_str!("../fixtures/tempo_trace_v2.json")).unwrap();
        assert_eq!(trace.spans.len(), 3);
        let server = &trace.spans[0];
        assert_eq!(server.service, "shop-api");
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(server.name, "POST /api/orders/{id}/ship");
        assert_eq!(server.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(server.span_id, "00f067aa0ba902b7");
        assert_eq!(server.parent_span_id, None);
        let task = &trace.spans[1];
        assert_eq!(task.service, "shop-worker");
        assert_eq!(task.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(trace.descends_from(&trace.spans[2], server));
        assert_eq!(trace.spans[2].kind, SpanKind::Client);
    }

    /// An answer without a trace is no spans, not an error.
    #[test]
    fn an_empty_answer_is_no_spans() {
        assert!(super::parse(r#"{"status":"complete"}"#).unwrap().is_empty());
    }
}
