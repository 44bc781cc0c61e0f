//! What the browser gets from the api: the built page at `/`, and the OTLP relay to the
//! collector with its limits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};

use crate::helpers::{Setup, TestApp, assert_json_error, spawn, spawn_app};

/// One request the stub collector received.
#[derive(Debug, Clone)]
struct Export {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A stand-in collector: records every request and answers with `status` and a body of its own,
/// so a test sees exactly what the relay sent and what it passed back.
struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Export>>>,
}

/// The stub's answer body, in the JSON encoding of OTLP's ExportTraceServiceResponse.
const ANSWER: &str = r#"{"partialSuccess":{}}"#;

impl Collector {
    async fn start(status: StatusCode) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(
                move |State(received): State<Arc<Mutex<Vec<Export>>>>,
                      uri: Uri,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    received.lock().unwrap().push(Export {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                    });
                    (status, [("content-type", "application/json")], ANSWER)
                },
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, received }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Export> {
        self.received.lock().unwrap().clone()
    }
}

async fn with_collector(collector: &Collector) -> TestApp {
    spawn(Setup {
        collector: Some(collector.url()),
        ..Setup::default()
    })
    .await
}

/// `POST path` with `content_type` and `body`.
async fn export(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// With `AMPEL_WEB_DIR`, `/` is the page's index.html (revalidated each load) and `/assets/*`
/// its hashed files (cached a year), metered under two fixed routes and without a server span
/// (no `traceparent` in the answer, which every traced route has); a missing asset is a 404
/// JSON that is not cached. Without it, `/` is the usual 404 JSON.
#[tokio::test]
async fn the_page_is_served_from_the_web_dir() {
    let dir = tempfile::tempdir().unwrap();
    let index = "<!doctype html><title>Ampel</title><div id=\"root\"></div>";
    std::fs::write(dir.path().join("index.html"), index).unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/index-Abc123.js"), "console.log(1)").unwrap();
    let app = spawn(Setup {
        web_dir: Some(dir.path().to_owned()),
        ..Setup::default()
    })
    .await;

    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers()
    );
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(!page.headers().contains_key("traceparent"));
    assert_eq!(page.text().await.unwrap(), index);

    let asset = app.get("/assets/index-Abc123.js").await;
    assert_eq!(asset.status(), 200);
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(asset.text().await.unwrap(), "console.log(1)");

    let missing = app.get("/assets/index-Gone99.js").await;
    assert!(!missing.headers().contains_key("cache-control"));
    assert_json_error(missing, 404).await;
    let deleted = app.client.delete(app.url("/")).send().await.unwrap();
    assert_json_error(deleted, 405).await;
    // The api's own routes are still there, and traced.
    let list = app.get("/api/repositories").await;
    assert_eq!(list.status(), 200);
    assert!(list.headers().contains_key("traceparent"));

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&format!(r#"endpoint="{}""#, ampel_api::page::ASSETS)),
        "{metrics}"
    );
    assert!(
        !metrics.contains("index-Abc123"),
        "a file name became a label"
    );

    let without = spawn_app().await;
    assert_json_error(without.get("/").await, 404).await;
}

/// An export reaches the collector's `/v1/traces` or `/v1/logs` byte for byte, with its content
/// type and without the browser's cookies or credentials; the collector's answer comes back
/// (2xx as 200, with its body; an error status as it is), and the relay adds no span of its own.
#[tokio::test]
async fn otlp_exports_reach_the_collector_unchanged() {
    let collector = Collector::start(StatusCode::ACCEPTED).await;
    let app = with_collector(&collector).await;
    let spans = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ampel-web"}}]},"scopeSpans":[]}]}"#;
    let response = app
        .client
        .post(app.url("/otlp/v1/traces"))
        .header("content-type", "application/json")
        .header("cookie", "session=secret")
        .header("authorization", "Bearer secret")
        .body(spans)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("traceparent"));
    assert_eq!(response.text().await.unwrap(), ANSWER);
    // Not valid protobuf on purpose: the relay must not look inside.
    let records: &[u8] = &[0x0a, 0x03, 0xff, 0x00, 0x7f];
    let response = export(&app, "/otlp/v1/logs", "application/x-protobuf", records).await;
    assert_eq!(response.status(), 200);

    let received = collector.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let (traces, logs) = (&received[0], &received[1]);
    assert_eq!(traces.path, "/v1/traces");
    assert_eq!(traces.body, spans.as_bytes());
    assert_eq!(traces.headers["content-type"], "application/json");
    for secret in ["cookie", "authorization"] {
        assert!(
            !traces.headers.contains_key(secret),
            "{secret} was forwarded: {:?}",
            traces.headers
        );
    }
    assert_eq!(logs.path, "/v1/logs");
    assert_eq!(logs.body, records);
    assert_eq!(logs.headers["content-type"], "application/x-protobuf");

    let refusing = Collector::start(StatusCode::BAD_REQUEST).await;
    let app = with_collector(&refusing).await;
    let response = export(&app, "/otlp/v1/traces", "application/json", "{}").await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), ANSWER);
}

/// Other content types are 415, bodies over the limit 413, both before anything is forwarded;
/// a collector that is down is a 502 and none configured a 503; all JSON.
#[tokio::test]
async fn bad_otlp_exports_are_refused_with_json() {
    let collector = Collector::start(StatusCode::OK).await;
    let app = with_collector(&collector).await;
    let text = export(&app, "/otlp/v1/traces", "text/plain", "{}").await;
    assert_json_error(text, 415).await;
    let missing_type = app.post("/otlp/v1/logs").await;
    assert_json_error(missing_type, 415).await;
    let huge = vec![b'x'; ampel_api::BODY_LIMIT_BYTES + 1];
    let too_large = export(&app, "/otlp/v1/traces", "application/x-protobuf", huge).await;
    assert_json_error(too_large, 413).await;
    let wrong_method = app.get("/otlp/v1/traces").await;
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_json_error(wrong_method, 405).await;
    assert!(
        collector.received().is_empty(),
        "{:?}",
        collector.received()
    );

    // A port that was just free: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn(Setup {
        collector: Some(down),
        ..Setup::default()
    })
    .await;
    let unreachable = export(&app, "/otlp/v1/traces", "application/json", "{}").await;
    assert_json_error(unreachable, 502).await;

    let app = spawn_app().await;
    let none = export(&app, "/otlp/v1/logs", "application/json", "{}").await;
    let body = assert_json_error(none, 503).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(ampel_api::config::COLLECTOR_VAR),
        "{body}"
    );
}

/// One client past its burst gets 429 JSON with `Retry-After`, on either route, and what was
/// refused never reaches the collector.
#[tokio::test]
async fn a_client_past_its_burst_is_refused() {
    let collector = Collector::start(StatusCode::OK).await;
    let app = with_collector(&collector).await;
    let burst = ampel_api::routes::otlp::BURST.get() as usize;
    let mut statuses = Vec::new();
    // Sent back to back, far faster than the bucket refills; the two routes share it.
    for n in 0..burst * 3 {
        let path = if n % 2 == 0 {
            "/otlp/v1/traces"
        } else {
            "/otlp/v1/logs"
        };
        let response = export(&app, path, "application/json", "{}").await;
        let status = response.status().as_u16();
        statuses.push(status);
        if status == 429 {
            assert!(response.headers().contains_key("retry-after"));
            assert_json_error(response, 429).await;
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let accepted = statuses.iter().filter(|status| **status == 200).count();
    assert!(accepted >= burst, "{statuses:?}");
    assert_eq!(collector.received().len(), accepted);
}
