//! The Git provider's HTTP API (GitHub's REST shape), called with the job's trace context.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use serde::Deserialize;
use telemetry::{Label, MetricFamily};

/// A provider call that takes longer than this fails the attempt (and is retried); a job running
/// at shutdown finishes within it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The `provider` label's one value: the worker speaks GitHub's REST API only
/// (`PROVIDER_BASE_URL` may point at GitHub Enterprise or a fake of the same shape).
pub const GITHUB: &str = "github";

/// `status`: the HTTP status code of the provider's answer.
const STATUS: Label = Label::open(
    "status",
    "the HTTP status code, or `error` when no response arrived",
);

pub const PROVIDER_REQUESTS_TOTAL: MetricFamily = MetricFamily::counter(
    "provider_requests_total",
    "Calls to the Git provider's HTTP API.",
    &[STATUS],
);

pub const PROVIDER_REQUEST_DURATION_SECONDS: MetricFamily = MetricFamily::histogram(
    "provider_request_duration_seconds",
    "Time of one call to the Git provider.",
    &[STATUS],
    telemetry::DURATION_BUCKETS,
);

/// Client for `GET {base}/repos/{owner}/{repo}/pulls`.
#[derive(Clone)]
pub struct Provider {
    http: ClientWithMiddleware,
    base_url: String,
    token: Option<String>,
}

impl std::fmt::Debug for Provider {
    // The token must never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A pull request as GitHub's REST API returns it (only the fields we keep).
#[derive(Debug, Deserialize)]
struct PullRequest {
    number: i32,
    title: String,
    user: Option<User>,
    state: store::PullRequestState,
    #[serde(default)]
    draft: bool,
    html_url: String,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
}

impl Provider {
    /// `base_url` like `https://api.github.com`; `token` sent as a bearer token when set.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS set-up).
    pub fn new(base_url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("ampel-worker/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("build the provider HTTP client")?;
        // reqwest-tracing makes the client span; it speaks an older OpenTelemetry than ours, so
        // the `traceparent` header is injected by our own middleware, inside that span.
        let http = ClientBuilder::new(client)
            .with(reqwest_tracing::TracingMiddleware::default())
            .with(InjectTraceContext)
            .build();
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The repository's open pull requests (first page, up to 100).
    ///
    /// # Errors
    /// When the provider cannot be reached, answers with a non-2xx status, or sends a body that
    /// is not a list of pull requests.
    pub async fn pull_requests(
        &self,
        owner: &str,
        repo: &str,
    ) -> anyhow::Result<Vec<store::NewPullRequest>> {
        let url = format!(
            "{}/repos/{owner}/{repo}/pulls?state=open&per_page=100",
            self.base_url
        );
        let mut request = self
            .http
            .get(&url)
            .header(http::header::ACCEPT, "application/vnd.github+json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = request.send().await;
        let status = match &response {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "error".to_owned(),
        };
        metrics::counter!(PROVIDER_REQUESTS_TOTAL.name, STATUS.name => status.clone()).increment(1);
        metrics::histogram!(PROVIDER_REQUEST_DURATION_SECONDS.name, STATUS.name => status)
            .record(started.elapsed().as_secs_f64());
        let response = response
            .with_context(|| format!("GET {url}"))?
            .error_for_status()
            .with_context(|| format!("GET {url}"))?;
        let pulls: Vec<PullRequest> = response
            .json()
            .await
            .with_context(|| format!("GET {url}: the body is not a list of pull requests"))?;
        Ok(pulls
            .into_iter()
            .map(|pr| store::NewPullRequest {
                number: pr.number,
                title: pr.title,
                author: pr.user.map(|user| user.login).unwrap_or_default(),
                state: pr.state,
                draft: pr.draft,
                url: pr.html_url,
                created_at: pr.created_at,
                updated_at: pr.updated_at,
            })
            .collect())
    }
}

/// Adds `traceparent` (W3C) for the current span — the client span reqwest-tracing opened — so
/// the provider's side of the call joins the trace.
struct InjectTraceContext;

#[async_trait::async_trait]
impl Middleware for InjectTraceContext {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(
                &context,
                &mut opentelemetry_http::HeaderInjector(request.headers_mut()),
            );
        });
        next.run(request, extensions).await
    }
}
