//! Web-vitals beacons from the dashboard's front end.

use axum::{
    body::Bytes,
    extract::rejection::BytesRejection,
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
};
use serde::Deserialize;

use crate::error::ApiError;

/// One beacon, as the `web-vitals` library reports a metric (extra fields are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct Beacon {
    name: String,
    value: f64,
    rating: String,
}

const NAMES: &[&str] = &["LCP", "INP", "CLS", "FCP", "TTFB"];
const RATINGS: &[&str] = &["good", "needs-improvement", "poor"];

/// `POST /api/vitals`: record one beacon in `web_vitals_value{name, rating}`; 204.
///
/// `navigator.sendBeacon` posts a string as `text/plain`, so that is accepted besides JSON.
/// Time vitals arrive in milliseconds and are stored in seconds; CLS is a unitless score.
pub(crate) async fn record(
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    // Taken as a `Result` so an oversized body gets our JSON 413, not axum's plain-text one.
    let body = body?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json")
        && !essence.eq_ignore_ascii_case("text/plain")
    {
        return Err(ApiError::UnsupportedMediaType(
            "expected `Content-Type: application/json` or `text/plain` (sendBeacon)".into(),
        ));
    }
    let beacon: Beacon = serde_json::from_slice(&body).map_err(|err| {
        ApiError::BadRequest(format!("the body is not a web-vitals beacon: {err}"))
    })?;
    let Some(name) = NAMES.iter().find(|known| **known == beacon.name) else {
        return Err(ApiError::Invalid(format!(
            "unknown vital {:?}: expected one of {}",
            beacon.name,
            NAMES.join(", ")
        )));
    };
    let Some(rating) = RATINGS.iter().find(|known| **known == beacon.rating) else {
        return Err(ApiError::Invalid(format!(
            "unknown rating {:?}: expected one of {}",
            beacon.rating,
            RATINGS.join(", ")
        )));
    };
    if !beacon.value.is_finite() || beacon.value < 0.0 {
        return Err(ApiError::Invalid(
            "value must be a finite number >= 0".into(),
        ));
    }
    let value = if *name == "CLS" {
        beacon.value
    } else {
        beacon.value / 1000.0
    };
    metrics::histogram!("web_vitals_value", "name" => *name, "rating" => *rating).record(value);
    Ok(StatusCode::NO_CONTENT)
}
