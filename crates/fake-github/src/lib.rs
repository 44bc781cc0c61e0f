//! A fake of GitHub's REST API for tests. It stands in for the real one, which CI cannot reach
//! (and which would make tests depend on someone else's uptime and rate limits), and answers the
//! calls a pull-request poller makes in GitHub's response shape: `GET /repos/{owner}/{repo}/pulls`.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let github = fake_github::FakeGithub::start(fake_github::Mode::Ok).await?;
//! // point the client at github.base_url(), then:
//! assert_eq!(github.call_count(), 0);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde::Serialize;
use tokio::sync::watch;

/// The login of every pull request's author.
pub const AUTHOR: &str = "octocat";

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the repository's [`pull_requests`].
    Ok,
    /// 500 every time.
    Fail,
    /// Holds each request until the mode changes: a caller stuck mid-call.
    Hang,
}

/// One request, recorded as it arrives (before the mode is applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub owner: String,
    pub repo: String,
    /// The W3C trace context the caller sent, if any.
    pub traceparent: Option<String>,
}

/// A pull request in GitHub's shape (the fields a poller reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub number: i32,
    pub title: String,
    pub user: User,
    pub state: &'static str,
    pub draft: bool,
    pub html_url: String,
    pub created_at: &'static str,
    pub updated_at: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub login: &'static str,
}

/// What [`Mode::Ok`] serves for a repository: two open pull requests, the second a draft. The
/// titles name the repository, so a test can tell that what it reads back came from here.
pub fn pull_requests(owner: &str, repo: &str) -> Vec<PullRequest> {
    let pull = |number: i32, ordinal: &str, draft: bool, created_at, updated_at| PullRequest {
        number,
        title: format!("{owner}/{repo}: {ordinal}"),
        user: User { login: AUTHOR },
        state: "open",
        draft,
        html_url: format!("https://github.com/{owner}/{repo}/pull/{number}"),
        created_at,
        updated_at,
    };
    vec![
        pull(
            1,
            "first",
            false,
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
        ),
        pull(
            2,
            "second",
            true,
            "2026-01-03T00:00:00Z",
            "2026-01-04T00:00:00Z",
        ),
    ]
}

struct Shared {
    mode: watch::Sender<Mode>,
    calls: Mutex<Vec<Call>>,
    /// `owner/repo` of the repositories that answer 404, whatever the mode.
    missing: Mutex<Vec<String>>,
}

impl Shared {
    fn calls(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        // A panicking test thread cannot leave the list half-written: push is the only writer.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake, on a free loopback port; stops when dropped.
pub struct FakeGithub {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeGithub {
    /// Starts serving on `127.0.0.1:0`, answering as `mode` says.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(mode: Mode) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the fake GitHub on 127.0.0.1")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mode: watch::Sender::new(mode),
            calls: Mutex::default(),
            missing: Mutex::default(),
        });
        let app = Router::new()
            .route("/repos/{owner}/{repo}/pulls", get(pulls))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("the fake GitHub on {address} stopped: {err}");
            }
        });
        Ok(Self {
            address,
            shared,
            server,
        })
    }

    /// Where to point the client, like `https://api.github.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Applies to the requests that arrive from now on and to those held by [`Mode::Hang`].
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// From now on `owner/repo` answers 404 with GitHub's body, as a repository that does not
    /// exist (or that the token cannot see) does.
    pub fn remove(&self, owner: &str, repo: &str) {
        self.shared
            .missing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{owner}/{repo}"));
    }

    /// Requests received so far, answered or not.
    pub fn call_count(&self) -> usize {
        self.shared.calls().len()
    }

    /// Every request received so far, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls().clone()
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn pulls(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let traceparent = headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    shared.calls().push(Call {
        owner: owner.clone(),
        repo: repo.clone(),
        traceparent,
    });
    let missing = shared
        .missing
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&format!("{owner}/{repo}"));
    if missing {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#list-pull-requests",
                "status": "404"
            })),
        )
            .into_response();
    }
    let mut mode = shared.mode.subscribe();
    // The sender lives in `shared`, which this handler holds, so the wait cannot fail.
    let answer = *mode
        .wait_for(|mode| *mode != Mode::Hang)
        .await
        .expect("the mode's sender outlives its handlers");
    match answer {
        Mode::Fail => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "message": "Server Error" })),
        )
            .into_response(),
        Mode::Ok | Mode::Hang => Json(pull_requests(&owner, &repo)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::*;

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    async fn get(github: &FakeGithub) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!(
                "{}/repos/rust-lang/cargo/pulls?state=open&per_page=100",
                github.base_url()
            ))
            .header("traceparent", TRACEPARENT)
            .send()
            .await
            .expect("the fake answers")
    }

    #[tokio::test]
    async fn ok_serves_the_pull_requests_and_records_the_call() {
        let github = FakeGithub::start(Mode::Ok).await.unwrap();
        let response = get(&github).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::to_value(pull_requests("rust-lang", "cargo")).unwrap()
        );
        assert_eq!(body[0]["user"]["login"], AUTHOR, "{body}");
        assert_eq!(
            github.calls(),
            [Call {
                owner: "rust-lang".into(),
                repo: "cargo".into(),
                traceparent: Some(TRACEPARENT.into()),
            }]
        );
    }

    #[tokio::test]
    async fn fail_answers_500_and_still_counts() {
        let github = FakeGithub::start(Mode::Fail).await.unwrap();
        assert_eq!(get(&github).await.status(), 500);
        assert_eq!(github.call_count(), 1);
    }

    #[tokio::test]
    async fn a_removed_repository_answers_404_and_others_still_200() {
        let github = FakeGithub::start(Mode::Ok).await.unwrap();
        github.remove("rust-lang", "cargo");
        let response = get(&github).await;
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], "Not Found", "{body}");
        let other = reqwest::get(format!("{}/repos/rust-lang/rust/pulls", github.base_url()))
            .await
            .unwrap();
        assert_eq!(other.status(), 200);
        assert_eq!(github.call_count(), 2);
    }

    #[tokio::test]
    async fn hang_holds_the_request_until_the_mode_changes() {
        let github = Arc::new(FakeGithub::start(Mode::Hang).await.unwrap());
        let mut request = tokio::spawn({
            let github = github.clone();
            async move { get(&github).await.status() }
        });
        // Bounded: shows the answer is held, not just late.
        let held = tokio::time::timeout(Duration::from_millis(300), &mut request).await;
        assert!(held.is_err(), "answered while hanging: {held:?}");
        assert_eq!(github.call_count(), 1, "recorded on arrival");
        github.set_mode(Mode::Ok);
        assert_eq!(request.await.unwrap(), 200);
    }
}
