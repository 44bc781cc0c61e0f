//! `spawn_app()`: the real router on a real socket, with its own database and queue.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Once;

use ampel_api::AppState;

/// A running api and what a test needs to talk to it and look behind it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub queue: String,
    pub redis: redis::aio::ConnectionManager,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `POST path` without a body.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.unwrap()
    }

    /// `POST path` with `body` as JSON.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// `POST /api/repositories` and the new repository's id.
    pub async fn create_repository(&self, owner: &str, name: &str) -> i64 {
        let response = self
            .post_json(
                "/api/repositories",
                serde_json::json!({ "owner": owner, "name": name }),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        body["id"].as_i64().unwrap()
    }
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start PostgreSQL and Redis with `bash .ci/services.sh` and export DATABASE_URL=postgres://ampel:ampel@127.0.0.1:5432/ampel REDIS_URL=redis://127.0.0.1:6379 (or run `cargo xtask test`)")
    })
}

/// Telemetry is process-wide: install it once, logs to a sink unless `TEST_LOG` is set.
fn init_telemetry() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let families = ampel_api::EXPORTED_METRIC_FAMILIES;
        let guard = if std::env::var_os("TEST_LOG").is_some() {
            telemetry::init_with_writer("ampel-api-test", families, std::io::stdout)
        } else {
            telemetry::init_with_writer("ampel-api-test", families, std::io::sink)
        };
        // The guard lives as long as the test process.
        std::mem::forget(guard.expect("install telemetry"));
    });
}

/// What a test can change about the api it starts; the default is [`spawn_app`]'s.
#[derive(Default)]
pub struct Setup {
    /// The pool, else a fresh database.
    pub db: Option<store::PgPool>,
    /// The built page's folder (`AMPEL_WEB_DIR`), else no page.
    pub web_dir: Option<PathBuf>,
    /// The collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`), else the relay has none.
    pub collector: Option<String>,
}

/// Starts the api on `127.0.0.1:0` with a fresh database and a queue of its own.
pub async fn spawn_app() -> TestApp {
    spawn(Setup::default()).await
}

/// As [`spawn_app`], with a given pool (e.g. one that cannot connect).
pub async fn spawn_app_with(db: store::PgPool) -> TestApp {
    spawn(Setup {
        db: Some(db),
        ..Setup::default()
    })
    .await
}

/// As [`spawn_app`], set up as `setup` says.
pub async fn spawn(setup: Setup) -> TestApp {
    let db = match setup.db {
        Some(db) => db,
        None => {
            store::testing::fresh_database(&env("DATABASE_URL"))
                .await
                .unwrap()
                .0
        }
    };
    init_telemetry();
    let queue = format!("ampel-test:{}", uuid::Uuid::new_v4());
    let (jobs_queue, redis) = jobs::open(&env("REDIS_URL"), &queue).await.unwrap();
    let metrics_app = ampel_api::metrics_app(db.clone());
    let app = ampel_api::app(
        AppState {
            db,
            queue: jobs_queue,
            redis: redis.clone(),
            relay: ampel_api::Relay::new(setup.collector).unwrap(),
        },
        setup.web_dir.as_deref(),
    )
    .merge(metrics_app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ampel_api::serve(listener, app, std::future::pending()));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        queue,
        redis,
    }
}

/// Asserts `response` is a JSON error (`{"error", "detail"}`) with `status`, and returns its body.
pub async fn assert_json_error(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        response.headers()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}
