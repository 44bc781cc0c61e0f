//! Web-vitals beacons from the dashboard's front end.

use axum::{
    body::Bytes,
    extract::rejection::BytesRejection,
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
};
use serde::Deserialize;
use telemetry::{Label, MetricFamily};

use crate::error::ApiError;

/// One beacon, as the `web-vitals` library reports a metric (extra fields are ignored). The
/// page sends `id`, `navigationType` and `attribution` too; older senders did not.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Beacon {
    name: String,
    value: f64,
    rating: String,
    id: Option<String>,
    navigation_type: Option<String>,
    attribution: Option<Attribution>,
}

/// What the attribution build says the metric is about.
#[derive(Debug, Deserialize)]
pub(crate) struct Attribution {
    /// A CSS selector of the element (LCP's element, INP's target, CLS's largest shift).
    target: Option<String>,
}

/// How much of a client's string goes into the log line: selectors can be arbitrarily long.
pub const LOGGED_CHARS: usize = 100;

/// `text`'s first [`LOGGED_CHARS`] characters.
fn bounded(text: &str) -> &str {
    text.char_indices()
        .nth(LOGGED_CHARS)
        .map_or(text, |(end, _)| &text[..end])
}

const NAMES: &[&str] = &["LCP", "INP", CLS, "FCP", "TTFB"];
const RATINGS: &[&str] = &["good", "needs-improvement", "poor"];

/// The one vital that is a unitless score, not a time.
const CLS: &str = "CLS";

/// Web vitals: the good/poor thresholds of every vital (CLS 0.1/0.25, INP 0.2/0.5 s, TTFB 0.8/1.8 s,
/// FCP 1.8/3 s, LCP 2.5/4 s) are bucket bounds, so the ratings can be read off the histogram.
const VITALS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.8, 1.0, 1.8, 2.5, 3.0, 4.0, 6.0, 10.0,
    30.0,
];

/// `name`: which vital.
const NAME: Label = Label::one_of("name", NAMES);
/// `rating`: the beacon's own rating of the value.
const RATING: Label = Label::one_of("rating", RATINGS);

pub const WEB_VITALS_VALUE: MetricFamily = MetricFamily::histogram(
    "web_vitals_value",
    "Web-vitals beacons. Time vitals in seconds (the beacon's milliseconds / 1000); `CLS` is the unitless layout-shift score.",
    &[NAME, RATING],
    VITALS_BUCKETS,
);

/// `POST /api/vitals`: record one beacon in [`WEB_VITALS_VALUE`]; 204.
///
/// `navigator.sendBeacon` posts a string as `text/plain`, so that is accepted besides JSON.
/// Time vitals arrive in milliseconds and are stored in seconds; CLS is a unitless score.
/// One `web vital` log line per beacon carries what may not be a label: the metric's id, the
/// navigation type and the attribution's selector, each cut to [`LOGGED_CHARS`].
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
    let value = if *name == CLS {
        beacon.value
    } else {
        beacon.value / 1000.0
    };
    metrics::histogram!(WEB_VITALS_VALUE.name, NAME.name => *name, RATING.name => *rating)
        .record(value);
    tracing::info!(
        vital.name = *name,
        vital.rating = *rating,
        vital.value = value,
        vital.id = beacon.id.as_deref().map(bounded),
        vital.navigation_type = beacon.navigation_type.as_deref().map(bounded),
        vital.target = beacon
            .attribution
            .as_ref()
            .and_then(|attribution| attribution.target.as_deref())
            .map(bounded),
        "web vital"
    );
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    /// Up to the limit a string is kept whole; past it, cut at a character boundary.
    #[test]
    fn logged_strings_are_bounded() {
        let short = "main > img.hero";
        assert_eq!(super::bounded(short), short);
        let long = "é".repeat(super::LOGGED_CHARS + 50);
        let cut = super::bounded(&long);
        assert_eq!(cut.chars().count(), super::LOGGED_CHARS);
        assert!(long.starts_with(cut));
    }
}
