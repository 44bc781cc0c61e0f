//! Repositories, their pull requests, and polling them.

use axum::{Json, extract::State, http::StatusCode};
use opentelemetry::trace::TraceContextExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use telemetry::{Label, MetricFamily};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{
    AppState,
    error::{ApiError, JsonBody, PathParam},
};

/// `job_type`: which kind of job.
const JOB_TYPE: Label = Label::one_of("job_type", jobs::JOB_TYPES);

pub const API_JOBS_ENQUEUED_TOTAL: MetricFamily = MetricFamily::counter(
    "api_jobs_enqueued_total",
    "Jobs pushed onto the Redis queue.",
    &[JOB_TYPE],
);

/// Body of `POST /api/repositories`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRepository {
    owner: String,
    name: String,
}

/// GitHub's rules, roughly: letters, digits, `-`, `_`, `.`; at most 100 characters.
fn valid_slug(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 100
        && part
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// `POST /api/repositories`: follow `owner/name`. 201 with the repository, 409 if followed.
pub(crate) async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewRepository>,
) -> Result<(StatusCode, Json<store::Repository>), ApiError> {
    if !valid_slug(&body.owner) || !valid_slug(&body.name) {
        return Err(ApiError::Invalid(
            "owner and name must be 1-100 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let repository = store::insert_repository(&state.db, &body.owner, &body.name)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!("{}/{} is followed already", body.owner, body.name))
        })?;
    tracing::info!(repository_id = repository.id, "repository added");
    Ok((StatusCode::CREATED, Json(repository)))
}

/// `GET /api/repositories`.
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<store::Repository>>, ApiError> {
    Ok(Json(store::list_repositories(&state.db).await?))
}

/// `GET /api/repositories/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    PathParam(id): PathParam<i64>,
) -> Result<Json<store::Repository>, ApiError> {
    Ok(Json(find(&state, id).await?))
}

/// `POST /api/repositories/{id}/poll`: enqueue a poll job. 202 with the job id and the trace id
/// that follows the job through the worker.
pub(crate) async fn poll(
    State(state): State<AppState>,
    PathParam(id): PathParam<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let repository = find(&state, id).await?;
    let mut queue = state.queue.clone();
    let job = jobs::PollRepository {
        repository_id: repository.id,
        owner: repository.owner,
        name: repository.name,
    };
    let job_id = jobs::enqueue(&mut queue, job).await?;
    metrics::counter!(API_JOBS_ENQUEUED_TOTAL.name, JOB_TYPE.name => jobs::POLL_REPOSITORY)
        .increment(1);
    let trace_id = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string();
    tracing::info!(job_id, repository_id = id, "poll job enqueued");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job_id": job_id, "trace_id": trace_id })),
    ))
}

/// `GET /api/repositories/{id}/pull-requests`.
pub(crate) async fn pull_requests(
    State(state): State<AppState>,
    PathParam(id): PathParam<i64>,
) -> Result<Json<Vec<store::PullRequest>>, ApiError> {
    let repository = find(&state, id).await?;
    Ok(Json(
        store::list_pull_requests(&state.db, repository.id).await?,
    ))
}

async fn find(state: &AppState, id: i64) -> Result<store::Repository, ApiError> {
    store::get_repository(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no repository with id {id}")))
}
