//! `ampel-api`: the pull-request dashboard's HTTP API, on PostgreSQL, enqueueing poll jobs on Redis.
//!
//! ```text
//! DATABASE_URL=postgres://ampel:ampel@127.0.0.1:5432/ampel REDIS_URL=redis://127.0.0.1:6379 cargo run -p ampel-api
//! ```
//!
//! Layout: [`app`] builds the router (tests drive it without a socket); [`serve`] runs it until a
//! shutdown future resolves and drains in-flight requests; `routes/` holds one file per resource;
//! `error.rs` turns every failure into a JSON error; `config.rs` reads the environment;
//! `page.rs` serves the dashboard's built page and `routes/otlp.rs` relays its telemetry to the
//! collector, both on this origin.
//!
//! Middleware, outermost first: request id (`x-request-id`, generated or propagated) -> one
//! OpenTelemetry server span per request, named by the matched route, with its access log line
//! (`request_span.rs`) -> HTTP metrics keyed by the matched route (axum-prometheus; not on the
//! probes) -> timeout -> panic to 500 JSON -> body size limit -> handler. `AMPEL_TELEMETRY=off`
//! leaves out the span and the metrics. The page has the metrics but no span (`page.rs` says
//! why); the OTLP relay has neither (`routes/otlp.rs`). A known route asked with a method it
//! does not take answers 405 JSON with `Allow`.

pub mod config;
pub mod error;
mod http_metrics;
pub mod page;
mod request_span;
pub mod routes;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderName, StatusCode, header::CONTENT_TYPE},
    response::IntoResponse,
    routing::{get, post},
};
use telemetry::MetricFamily;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
};

use crate::error::error_response;
pub use crate::routes::otlp::Relay;

/// The `service.name` the api's telemetry carries, unless `OTEL_SERVICE_NAME` overrides it:
/// the stores, the dashboards and the e2e find the api's spans and logs by it.
pub const SERVICE_NAME: &str = "ampel-api";

/// Largest accepted request body. Beacons and repository payloads are a few hundred bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// A request that takes longer than this gets a 503 and its handler is dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The argument that makes the binary only migrate the schema and exit (Fly's release command).
pub const MIGRATE_COMMAND: &str = "migrate";

/// How long `serve` waits for in-flight requests after the shutdown signal. Together with the
/// telemetry flush ([`telemetry::FLUSH_TIMEOUT`], traces and logs side by side) it stays under
/// Fly's `kill_timeout`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The `endpoint` label of requests that match no route: one series for all of them, so a
/// scanner probing thousands of paths cannot blow up the metric cardinality.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// The families the api records.
pub const METRIC_FAMILIES: &[MetricFamily] = &[
    http_metrics::HTTP_REQUESTS_TOTAL,
    http_metrics::HTTP_REQUESTS_DURATION_SECONDS,
    http_metrics::HTTP_REQUESTS_PENDING,
    routes::repositories::API_JOBS_ENQUEUED_TOTAL,
    routes::vitals::WEB_VITALS_VALUE,
];

/// Every family the `ampel-api` binary exports: its own, the store's and telemetry's.
pub const EXPORTED_METRIC_FAMILIES: &[&[MetricFamily]] = &[
    METRIC_FAMILIES,
    store::METRIC_FAMILIES,
    telemetry::METRIC_FAMILIES,
];

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL pool.
    pub db: sqlx::PgPool,
    /// The poll job queue.
    pub queue: jobs::PollQueue,
    /// A Redis connection for `/ready`.
    pub redis: redis::aio::ConnectionManager,
    /// Forwards the page's OTLP exports to the collector.
    pub relay: Relay,
}

/// The API, its probes, the OTLP relay and, with `web_dir` (a built page,
/// [`config::WEB_DIR_VAR`]), the page, as a router with their middleware (`/metrics` is
/// [`metrics_app`]); no socket, so tests can call it directly.
pub fn app(state: AppState, web_dir: Option<&Path>) -> Router {
    // `AMPEL_TELEMETRY=off` (the benchmark's baseline) leaves the span, log line and metrics out.
    let telemetry_on = telemetry::enabled();
    // Next to every handler, metered or not: timeout, panic to 500 JSON, body size limit.
    // Inside the HTTP metrics, so timeouts and panics are counted as the 503s and 500s they
    // become.
    let handling = || {
        ServiceBuilder::new()
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                REQUEST_TIMEOUT,
            ))
            .layer(CatchPanicLayer::custom(|_panic| {
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the handler panicked; the server logs have the details",
                )
            }))
            .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
    };
    // The probes would drown the real traffic in the HTTP metrics. They are left out by being
    // routed apart, not by axum-prometheus' ignore patterns, with which it clones its pattern
    // matcher for every request (docs/performance.md).
    let metrics = telemetry_on.then(http_metrics::layer);
    let api = Router::new()
        .route(
            routes::REPOSITORIES,
            post(routes::repositories::create).get(routes::repositories::list),
        )
        .route("/api/repositories/{id}", get(routes::repositories::get))
        .route(
            "/api/repositories/{id}/poll",
            post(routes::repositories::poll),
        )
        .route(
            "/api/repositories/{id}/pull-requests",
            get(routes::repositories::pull_requests),
        )
        .route("/api/vitals", post(routes::vitals::record))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(handling());
    let api = match metrics {
        Some(metrics) => api.layer(metrics),
        None => api,
    };
    let probes = Router::new()
        .route(routes::HEALTH, get(routes::health::health))
        .route(routes::READY, get(routes::health::ready))
        .route(routes::VERSION, get(routes::health::version))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(handling());
    let relay = Router::new()
        .route(routes::otlp::TRACES, post(routes::otlp::traces))
        .route(routes::otlp::LOGS, post(routes::otlp::logs))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(handling())
        .with_state(state.clone());
    let page = web_dir.map(|dir| {
        let page = page::router(dir)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(handling());
        match telemetry_on.then(http_metrics::layer) {
            Some(metrics) => page.layer(metrics),
            None => page,
        }
    });
    let traced = api.merge(probes).with_state(state).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .option_layer(telemetry_on.then_some(request_span::RequestSpanLayer)),
    );
    // Merged after the span layer, which wraps only the routes it was given.
    let untraced = relay.merge(page.unwrap_or_default());
    traced.merge(untraced)
}

/// `GET /metrics` alone, without the API's middleware: a scrape every few seconds should make
/// no spans, logs or request metrics of its own. `main` merges it into the API's router, or
/// serves it on `API_METRICS_LISTEN_ADDR` so the public port does not expose it. Each scrape
/// samples `db`'s pool first.
pub fn metrics_app(db: sqlx::PgPool) -> Router {
    let prometheus = telemetry::prometheus_handle();
    Router::new().route(
        routes::METRICS,
        get(move || {
            store::record_pool(&db);
            std::future::ready((
                [(CONTENT_TYPE, telemetry::PROMETHEUS_CONTENT_TYPE)],
                prometheus.render(),
            ))
        }),
    )
}

async fn not_found(State(_): State<AppState>) -> impl IntoResponse {
    error_response(StatusCode::NOT_FOUND, "no such route")
}

/// axum adds the `Allow` header to whatever this answers.
async fn method_not_allowed() -> impl IntoResponse {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method; the Allow header lists those it takes",
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting connections and
/// waits up to [`DRAIN_TIMEOUT`] for in-flight requests. Each request carries its peer's address
/// (`ConnectInfo`), which the OTLP relay's rate limit is keyed by off Fly.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (drain_started, drain_deadline) = tokio::sync::oneshot::channel::<()>();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = drain_started.send(());
    });
    let deadline = async {
        if drain_deadline.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(Into::into),
        () = deadline => {
            tracing::warn!(timeout_secs = DRAIN_TIMEOUT.as_secs(), "requests still running at the drain deadline; stopping anyway");
            Ok(())
        }
    }
}
