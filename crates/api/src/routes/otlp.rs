//! The page's OpenTelemetry exports, relayed to the collector: `POST /otlp/v1/traces` and
//! `POST /otlp/v1/logs` forward the body unchanged to [`crate::config::COLLECTOR_VAR`]'s
//! `/v1/traces` and `/v1/logs`.
//!
//! Why a relay: the page and its telemetry share the api's origin, so no CORS anywhere, and on
//! Fly the collector stays private (no public endpoint to harden). What a browser may send is
//! bounded here: OTLP/HTTP's two content types, [`crate::BODY_LIMIT_BYTES`] per request, and
//! [`PER_SECOND`] requests per client (burst [`BURST`]), a token bucket per client address that
//! both routes share. Only the content type (and encoding) goes on: never cookies or
//! credentials.
//!
//! The relay has no server span and no HTTP metrics (`lib.rs` routes it apart): a span per
//! export would be a span about exporting spans, and a collector outage would count against the
//! api's own error budget. Its forwarding request is plain reqwest, untraced for the same
//! reason; a failed one is a warn line ([`ApiError::BadGateway`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest as _, Request, State},
    http::{
        HeaderMap, HeaderName, HeaderValue, StatusCode,
        header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER},
    },
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock as _, DefaultClock},
};

use crate::{AppState, error::ApiError};

/// Where the page exports its spans.
pub const TRACES: &str = "/otlp/v1/traces";
/// Where the page exports its log records.
pub const LOGS: &str = "/otlp/v1/logs";

/// Requests per second a client's bucket refills by: a page exports at most every 500 ms per
/// signal, so twice that leaves room for several tabs behind one address.
pub const PER_SECOND: NonZeroU32 = NonZeroU32::new(10).unwrap();
/// Requests a client may send at once (a page leaving flushes both signals, from every tab).
pub const BURST: NonZeroU32 = NonZeroU32::new(20).unwrap();

/// The content types of OTLP/HTTP: JSON (what the browser SDK sends) and protobuf.
const CONTENT_TYPES: [&str; 2] = ["application/json", "application/x-protobuf"];

/// The header Fly's proxy sets to the client's address (the peer is the proxy there).
const FLY_CLIENT_IP: HeaderName = HeaderName::from_static("fly-client-ip");

/// Past this many tracked clients, buckets that are full again are dropped, so the map of
/// buckets stays as small as the clients of the last few seconds.
const TRACKED_CLIENTS: usize = 4096;

/// One forward's limit, under [`crate::REQUEST_TIMEOUT`], so a hung collector gets a 502 rather
/// than the timeout's 503.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The relay's collector, HTTP client and rate limiter; cheap to clone.
#[derive(Clone)]
pub struct Relay(Arc<Inner>);

struct Inner {
    /// The collector's base URL, without a trailing `/`; `None`: nothing to forward to.
    collector: Option<String>,
    client: reqwest::Client,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl Relay {
    /// A relay to `collector` (the base URL, e.g. `http://otel-collector:4318`); `None` makes
    /// the routes answer 503.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(collector: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(Self(Arc::new(Inner {
            collector: collector.map(|url| url.trim_end_matches('/').to_owned()),
            client,
            limiter: RateLimiter::keyed(Quota::per_second(PER_SECOND).allow_burst(BURST)),
        })))
    }
}

/// `POST /otlp/v1/traces`.
pub(crate) async fn traces(State(state): State<AppState>, request: Request) -> Response {
    forward(&state.relay, "/v1/traces", request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /otlp/v1/logs`.
pub(crate) async fn logs(State(state): State<AppState>, request: Request) -> Response {
    forward(&state.relay, "/v1/logs", request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Checks, in order of cost: the client's bucket (429), the content type (415), the body's size
/// (413); then forwards and passes the collector's answer back (2xx as 200).
async fn forward(relay: &Relay, path: &str, request: Request) -> Result<Response, ApiError> {
    let relay = &relay.0;
    let client = client_address(&request);
    let checked = relay.limiter.check_key(&client);
    if relay.limiter.len() > TRACKED_CLIENTS {
        relay.limiter.retain_recent();
    }
    if let Err(not_until) = checked {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let retry_after = wait.as_secs_f64().ceil().max(1.0).to_string();
        let error = ApiError::TooManyRequests(format!(
            "more than {BURST} telemetry exports at once or {PER_SECOND} per second; retry later"
        ));
        return Ok(([(RETRY_AFTER, retry_after)], error).into_response());
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .filter(|value| {
            let essence = value
                .to_str()
                .ok()
                .and_then(|value| value.split(';').next())
                .map(str::trim)
                .unwrap_or_default();
            CONTENT_TYPES
                .iter()
                .any(|known| known.eq_ignore_ascii_case(essence))
        })
        .cloned()
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType(format!(
                "expected `Content-Type: {}` (OTLP/HTTP)",
                CONTENT_TYPES.join("` or `")
            ))
        })?;
    let encoding = request.headers().get(CONTENT_ENCODING).cloned();
    // Within the body limit layer, so an oversized body is our JSON 413.
    let body = Bytes::from_request(request, &()).await?;
    let Some(collector) = &relay.collector else {
        return Err(ApiError::Unavailable(format!(
            "no collector to forward to: set {}",
            crate::config::COLLECTOR_VAR
        )));
    };
    let mut outgoing = relay
        .client
        .post(format!("{collector}{path}"))
        .header(CONTENT_TYPE, content_type);
    if let Some(encoding) = encoding {
        outgoing = outgoing.header(CONTENT_ENCODING, encoding);
    }
    let answer = outgoing
        .body(body)
        .send()
        .await
        .map_err(|err| ApiError::BadGateway(format!("forward to {collector}{path}: {err}")))?;
    let status = if answer.status().is_success() {
        StatusCode::OK
    } else {
        answer.status()
    };
    let mut headers = HeaderMap::new();
    for name in [CONTENT_TYPE, RETRY_AFTER] {
        if let Some(value) = answer.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let body = answer.bytes().await.map_err(|err| {
        ApiError::BadGateway(format!("read the answer of {collector}{path}: {err}"))
    })?;
    Ok((status, headers, body).into_response())
}

/// Whose bucket a request draws from: Fly's client address header, else the peer's address
/// (`serve` records it), else one shared bucket. Fly's proxy overwrites the header; elsewhere a
/// client can choose its bucket with it, which the collector's own memory limiter still bounds.
fn client_address(request: &Request) -> IpAddr {
    request
        .headers()
        .get(FLY_CLIENT_IP)
        .and_then(|value: &HeaderValue| value.to_str().ok()?.trim().parse().ok())
        .or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}
