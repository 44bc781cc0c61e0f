//! A fake Git provider for the worker. It stands in for GitHub's REST API, which CI cannot reach
//! (and which would make the e2e depend on someone else's uptime and rate limits); it answers
//! only what the worker calls, in GitHub's shape.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::{Json, Router, extract::Path, routing::get};
use serde_json::{Value, json};

/// The pull requests it serves for any repository. The titles name the repository, so the
/// scenario can tell that what the api serves came from here.
fn pull_requests(owner: &str, repo: &str) -> Value {
    json!([
        {
            "number": 1,
            "title": format!("{owner}/{repo}: first"),
            "user": { "login": "e2e" },
            "state": "open",
            "draft": false,
            "html_url": format!("https://github.com/{owner}/{repo}/pull/1"),
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-02T00:00:00Z"
        },
        {
            "number": 2,
            "title": format!("{owner}/{repo}: second"),
            "user": { "login": "e2e" },
            "state": "open",
            "draft": true,
            "html_url": format!("https://github.com/{owner}/{repo}/pull/2"),
            "created_at": "2026-01-03T00:00:00Z",
            "updated_at": "2026-01-04T00:00:00Z"
        }
    ])
}

/// The running fake; stops when dropped.
pub struct FakeProvider {
    pub address: SocketAddr,
    /// Requests served so far (`cargo xtask bench` times the worker by them).
    pub calls: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    /// Serves `GET /repos/{owner}/{repo}/pulls` on a free loopback port (the worker runs on the
    /// host, so loopback is enough).
    pub async fn start() -> anyhow::Result<Self> {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/repos/{owner}/{repo}/pulls",
            get(move |Path((owner, repo)): Path<(String, String)>| {
                counter.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Json(pull_requests(&owner, &repo)))
            }),
        );
        let (address, server) = crate::util::serve_on_loopback("the fake provider", app).await?;
        Ok(Self {
            address,
            calls,
            server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}
