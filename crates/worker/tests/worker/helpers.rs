//! A stack for one test: api (in process), worker (child process), own database and queue; the
//! worker calls a `fake_github::FakeGithub` the test starts.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use fake_github::FakeGithub;
use otel_testkit::eventually;
use serde_json::{Value, json};

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start PostgreSQL and Redis with `bash .ci/services.sh` and export DATABASE_URL=postgres://ampel:ampel@127.0.0.1:5432/ampel REDIS_URL=redis://127.0.0.1:6379 (or run `cargo xtask test`)")
    })
}

/// The api in this process, on its own database and queue.
pub struct Stack {
    pub api: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub queue: String,
    pub redis: redis::aio::ConnectionManager,
}

pub async fn spawn_stack() -> Stack {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let guard = telemetry::init_with_writer(
            "ampel-api-test",
            ampel_api::EXPORTED_METRIC_FAMILIES,
            std::io::sink,
        )
        .expect("install telemetry");
        std::mem::forget(guard);
    });
    let (db, database_url) = store::testing::fresh_database(&env("DATABASE_URL"))
        .await
        .unwrap();
    let queue = format!("ampel-test:{}", uuid::Uuid::new_v4());
    let (jobs_queue, redis) = jobs::open(&env("REDIS_URL"), &queue).await.unwrap();
    let metrics_app = ampel_api::metrics_app(db.clone());
    let app = ampel_api::app(
        ampel_api::AppState {
            db,
            queue: jobs_queue,
            redis: redis.clone(),
            // The worker's tests send no browser telemetry.
            relay: ampel_api::Relay::new(None).unwrap(),
        },
        None,
    )
    .merge(metrics_app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ampel_api::serve(listener, app, std::future::pending()));
    Stack {
        api,
        client: reqwest::Client::new(),
        database_url,
        queue,
        redis,
    }
}

impl Stack {
    pub async fn create_repository(&self, owner: &str, name: &str) -> i64 {
        let response = self
            .client
            .post(format!("{}/api/repositories", self.api))
            .json(&json!({ "owner": owner, "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// `POST …/poll`; returns (job id, trace id).
    pub async fn poll(&self, id: i64) -> (String, String) {
        let response = self
            .client
            .post(format!("{}/api/repositories/{id}/poll", self.api))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        (
            body["job_id"].as_str().unwrap().to_owned(),
            body["trace_id"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn pull_requests(&self, id: i64) -> Vec<Value> {
        self.client
            .get(format!("{}/api/repositories/{id}/pull-requests", self.api))
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }

    /// Waits up to `deadline` until the fake's two pull requests are stored and served; a
    /// time-out shows what `worker` said.
    pub async fn served_pulls(
        &self,
        id: i64,
        worker: &Worker,
        deadline: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let what = "the pull requests are served";
        let served = eventually(what, Instant::now(), deadline, || async {
            let pulls = self.pull_requests(id).await;
            let output = worker.raw_output();
            anyhow::ensure!(pulls.len() == 2, "{pulls:?}; worker said:\n{output}");
            Ok(pulls)
        });
        Ok(served.await?.value)
    }

    /// Starts the real `ampel-worker` binary against this stack.
    pub fn spawn_worker(&self, github: &FakeGithub, max_attempts: usize) -> Worker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ampel-worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", env("REDIS_URL"))
            .env("JOB_QUEUE", &self.queue)
            .env("PROVIDER_BASE_URL", github.base_url())
            .env("PROVIDER_TOKEN", "test-token-never-logged")
            .env("JOB_MAX_ATTEMPTS", max_attempts.to_string())
            .env("WORKER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ampel-worker");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Worker {
            child,
            lines,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }
}

/// A running worker process and its captured stdout.
pub struct Worker {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub metrics_url: String,
}

impl Worker {
    /// Stdout lines that parse as JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn raw_output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub async fn metrics(&self) -> String {
        match reqwest::get(&self.metrics_url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits up to `deadline` until `/metrics` counts a poll job with `status`; returns the
    /// scrape.
    pub async fn counted(&self, status: &str, deadline: Duration) -> anyhow::Result<String> {
        let series =
            format!(r#"worker_jobs_total{{job_type="poll_repository",status="{status}"}}"#);
        let what = format!("a {status} job is counted");
        let counted = eventually(&what, Instant::now(), deadline, || async {
            let metrics = self.metrics().await;
            let counted = sample(&metrics, &series).is_some_and(|count| count >= 1.0);
            anyhow::ensure!(counted, "{metrics}\nworker said:\n{}", self.raw_output());
            Ok(metrics)
        });
        Ok(counted.await?.value)
    }

    /// Waits until the worker has called `github`: with `Mode::Hang` it stays mid-job.
    pub async fn mid_job(&self, github: &FakeGithub) -> anyhow::Result<()> {
        let what = "the worker is mid-job";
        let called = eventually(what, Instant::now(), Duration::from_secs(20), || async {
            anyhow::ensure!(github.call_count() > 0, "{}", self.raw_output());
            Ok(())
        });
        called.await?;
        Ok(())
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the first sample line starting with `series`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}
