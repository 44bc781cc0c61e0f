//! Per request: the server span, the `traceparent` response header and the access log line, in
//! one layer. The HTTP metrics are axum-prometheus' layer, next to this one (`lib.rs`).
//!
//! This replaces axum-tracing-opentelemetry's `OtelAxumLayer` and `OtelInResponseLayer`, whose
//! span carried a dozen attributes (protocol version, host, port, user agent, query, scheme...)
//! instead of the four the trace views and dashboards use: building and exporting them cost
//! several times what this span does (`cargo xtask bench`, docs/performance.md). The span name is
//! the one it had.
//!
//! - The span is named `{method} {route}` by the matched route template (`MatchedPath`), so
//!   `/api/repositories/1` and `/2` are one operation; an unmatched request is named by its
//!   method alone, as the semantic conventions ask. It carries method, route, path and status.
//! - An incoming W3C `traceparent` makes it a child of the caller's span.
//! - The response carries `traceparent` with this span's ids, so a client can find its trace.
//! - One access line is logged inside the span: `request finished` with method, route, status
//!   and duration, or `request cancelled` when the client went away before the response.
//!
//! It must be added with `Router::layer` (which wraps each route), so `MatchedPath` is known.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, Request, Response, header::HeaderName};
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Adds [`RequestSpan`] to each route.
#[derive(Clone, Copy, Default)]
pub struct RequestSpanLayer;

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan { inner }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct RequestSpan<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for RequestSpan<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let name = match &route {
            Some(route) => format!("{method} {}", route.as_str()),
            None => method.to_owned(),
        };
        let span = tracing::info_span!(
            "request",
            otel.name = name.as_str(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            http.route = route.as_ref().map(MatchedPath::as_str),
            url.path = request.uri().path(),
            http.response.status_code = Empty,
        );
        // Most requests come without a trace context; extracting from nothing still costs.
        if request.headers().contains_key(TRACEPARENT) {
            let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
            });
            // Fails only when the span is disabled by the filter: then there is nothing to link.
            let _ = span.set_parent(parent);
        }
        // Not entered for `call`: axum's handlers and our middleware do their work in the future,
        // which runs inside the span; entering costs as much as a poll.
        let future = self.inner.call(request);
        let recorded = span.clone();
        // Logs `request cancelled` if the future is dropped before the response is ready (the
        // client went away), polled or not: `Instrument` drops it inside the span, so there is
        // still one access line per span.
        let mut access = AccessLine {
            method,
            route,
            started,
            logged: false,
        };
        Box::pin(
            async move {
                let mut result = future.await;
                if let Ok(response) = &mut result {
                    access.finished(&recorded, response);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// What is known of a request until its access line is logged.
struct AccessLine {
    method: &'static str,
    route: Option<MatchedPath>,
    started: Instant,
    logged: bool,
}

impl AccessLine {
    fn endpoint(&self) -> &str {
        self.route
            .as_ref()
            .map_or(crate::UNMATCHED_ENDPOINT, MatchedPath::as_str)
    }

    /// Records the status on the span, adds `traceparent` to the response and logs the access
    /// line. Runs inside the span, so its OpenTelemetry context is current.
    fn finished<B>(&mut self, span: &tracing::Span, response: &mut Response<B>) {
        let status = response.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        if let Some(value) =
            telemetry::current_traceparent().and_then(|text| HeaderValue::try_from(text).ok())
        {
            response.headers_mut().insert(TRACEPARENT, value);
        }
        tracing::info!(
            http.request.method = self.method,
            http.route = self.endpoint(),
            http.response.status_code = status.as_u16(),
            duration_ms = self.started.elapsed().as_secs_f64() * 1e3,
            "request finished"
        );
        self.logged = true;
    }
}

impl Drop for AccessLine {
    fn drop(&mut self) {
        if !self.logged {
            tracing::info!(
                http.request.method = self.method,
                http.route = self.endpoint(),
                duration_ms = self.started.elapsed().as_secs_f64() * 1e3,
                "request cancelled"
            );
        }
    }
}

/// The method as a `&'static str`: the standard methods by name, anything else as `_OTHER`, as the
/// semantic conventions ask (a client must not be able to make up span names).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use axum::http::{Request, Response, StatusCode};
    use tower::{Layer as _, Service as _, service_fn};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// The `message` of every event, in order.
    #[derive(Clone, Default)]
    struct Messages(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Messages {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Message(Option<String>);
            impl tracing::field::Visit for Message {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "message" {
                        self.0 = Some(format!("{value:?}"));
                    }
                }
            }
            let mut message = Message(None);
            event.record(&mut message);
            self.0.lock().unwrap().extend(message.0);
        }
    }

    /// One access line per request: `request finished` when answered, `request cancelled` when
    /// the client went away first (the future dropped, never polled to the end).
    #[tokio::test]
    async fn every_request_gets_one_access_line() {
        let messages = Messages::default();
        let _default =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(messages.clone()));
        let mut answered = super::RequestSpanLayer.layer(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        let response = answered.call(Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut hanging = super::RequestSpanLayer.layer(service_fn(|_: Request<()>| {
            std::future::pending::<Result<Response<()>, Infallible>>()
        }));
        drop(hanging.call(Request::new(())));
        assert_eq!(
            *messages.0.lock().unwrap(),
            ["request finished", "request cancelled"]
        );
    }
}
