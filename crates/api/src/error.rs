//! Errors as JSON: `{"error": "...", "detail": "..."}` with the status that says whose fault it
//! is. Client errors are not logged as errors; server errors are logged inside the request's
//! span (so the log line carries its trace id), with OpenTelemetry's `exception.type` and
//! `exception.message` as the browser's error reports have them, and the client gets a generic
//! message.

use axum::{
    Json,
    extract::rejection::{BytesRejection, JsonRejection, PathRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON the route expects, or a path parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed, but not acceptable (an unknown vital name, a repository name with spaces).
    #[error("{0}")]
    Invalid(String),
    /// The body is not JSON (by its `Content-Type`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Nothing by that id.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    Conflict(String),
    /// The client sends faster than its rate limit.
    #[error("{0}")]
    TooManyRequests(String),
    /// A dependency is down (`/ready`).
    #[error("{0}")]
    Unavailable(String),
    /// The service a request is forwarded to did not answer; the detail goes to the log.
    #[error("{0}")]
    BadGateway(String),
    /// Our fault; the detail goes to the log, not to the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(err) => {
                telemetry::error_with!(err, "request failed");
                "the server failed to handle the request; its logs have the details".to_owned()
            }
            // Not an error of ours: the upstream's outage has its own alerts.
            Self::BadGateway(err) => {
                tracing::warn!(error = err.as_str(), "upstream did not answer");
                "the upstream service did not answer; the server logs have the details".to_owned()
            }
            other => other.to_string(),
        };
        error_response(status, &detail)
    }
}

/// The JSON error body for `status`, also used by middleware (panics, timeouts, 404s).
pub fn error_response(status: StatusCode, detail: &str) -> Response {
    let error = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    (status, Json(json!({ "error": error, "detail": detail }))).into_response()
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected `Content-Type: application/json`".into())
            }
            JsonRejection::BytesRejection(bytes) => bytes.into(),
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge(format!(
                "the body is larger than {} bytes",
                crate::BODY_LIMIT_BYTES
            ))
        } else {
            Self::BadRequest(rejection.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database query"))
    }
}

/// `axum::Json`, with rejections turned into [`ApiError`] JSON.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// `axum::extract::Path`, with rejections turned into [`ApiError`] JSON.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParam<T>(pub T);
