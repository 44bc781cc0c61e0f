//! The HTTP metric families, which axum-prometheus records: declared here so the recorder gives
//! them our buckets and the metric contract lists them.

use axum_prometheus::{
    AXUM_HTTP_REQUESTS_DURATION_SECONDS, AXUM_HTTP_REQUESTS_PENDING, AXUM_HTTP_REQUESTS_TOTAL,
    EndpointLabel, PrometheusMetricLayer, PrometheusMetricLayerBuilder,
};
use telemetry::{Label, MetricFamily};

use crate::UNMATCHED_ENDPOINT;

/// `method`: the request's method.
const METHOD: Label = Label::open("method", "the HTTP method");
/// `status`: the response's status.
const STATUS: Label = Label::open("status", "the HTTP status code");
/// `endpoint`: the route, never the raw path.
const ENDPOINT: Label = Label::open(
    "endpoint",
    "the matched route template (`/api/repositories/{id}`), or `unmatched`",
);

pub const HTTP_REQUESTS_TOTAL: MetricFamily = MetricFamily::counter(
    AXUM_HTTP_REQUESTS_TOTAL,
    "HTTP requests served. Requests that match no route share `endpoint=\"unmatched\"`; `/health`, `/ready`, `/version`, `/metrics` and the page's OTLP relay (`/otlp/v1/*`) are not counted.",
    &[METHOD, STATUS, ENDPOINT],
);

pub const HTTP_REQUESTS_DURATION_SECONDS: MetricFamily = MetricFamily::histogram(
    AXUM_HTTP_REQUESTS_DURATION_SECONDS,
    "Time from request to response head, per route.",
    &[METHOD, STATUS, ENDPOINT],
    telemetry::DURATION_BUCKETS,
);

pub const HTTP_REQUESTS_PENDING: MetricFamily = MetricFamily::gauge(
    AXUM_HTTP_REQUESTS_PENDING,
    "Requests in flight.",
    &[METHOD, ENDPOINT],
);

/// The layer that records the HTTP families, keyed by the matched route, with one
/// [`UNMATCHED_ENDPOINT`] series for every request that matches none, so a scanner probing
/// thousands of paths cannot blow up the metric cardinality.
pub(crate) fn layer() -> PrometheusMetricLayer<'static> {
    PrometheusMetricLayerBuilder::new()
        .with_endpoint_label_type(EndpointLabel::MatchedPathWithFallbackFn(|_| {
            UNMATCHED_ENDPOINT.to_owned()
        }))
        .build()
}
