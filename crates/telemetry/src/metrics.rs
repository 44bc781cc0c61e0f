//! The process-wide Prometheus recorder, with explicit histogram buckets per metric family.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request and query latencies: 1 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Job attempts, which include a call to the Git provider: 10 ms to 60 s.
pub const JOB_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Web vitals: the good/poor thresholds of every vital (CLS 0.1/0.25, INP 0.2/0.5 s, TTFB 0.8/1.8 s,
/// FCP 1.8/3 s, LCP 2.5/4 s) are bucket bounds, so the ratings can be read off the histogram.
pub const VITALS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.8, 1.0, 1.8, 2.5, 3.0, 4.0, 6.0, 10.0,
    30.0,
];

/// The `Content-Type` of a `/metrics` response: Prometheus 3 refuses a scrape whose type it
/// does not recognise, and this is the classic text format's.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded into the rendered state, so memory stays flat between
/// scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The global recorder's handle, installing the recorder on first use. `metrics` allows one global
/// recorder per process, so every caller (api router, worker listener, tests building several
/// apps) shares this one.
///
/// With telemetry switched off ([`crate::enabled`]) the recorder is built but not installed: the
/// `metrics::*!` calls then go nowhere and `/metrics` renders nothing.
///
/// # Panics
/// When another recorder was installed first, which would be a wiring bug.
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            if !crate::enabled() {
                return buckets().build_recorder().handle();
            }
            let handle = buckets().install_recorder().expect(
                "install the Prometheus recorder: another metrics recorder was installed first",
            );
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawn the metrics upkeep thread");
            handle
        })
        .clone()
}

fn buckets() -> PrometheusBuilder {
    let families: [(&str, &[f64]); 5] = [
        ("axum_http_requests_duration_seconds", DURATION_BUCKETS),
        ("db_query_duration_seconds", DURATION_BUCKETS),
        ("provider_request_duration_seconds", DURATION_BUCKETS),
        ("worker_job_duration_seconds", JOB_BUCKETS),
        ("web_vitals_value", VITALS_BUCKETS),
    ];
    families
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("histogram buckets are non-empty")
        })
}

/// `ampel_build_info{service, version} 1`, so dashboards and deploy checks can see what runs.
pub(crate) fn describe_build_info(service: &'static str) {
    let _ = prometheus_handle();
    metrics::gauge!("ampel_build_info", "service" => service, "version" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

/// `docs/metrics.md`, the list of every metric the binaries export: the contract that
/// dashboards, alerts and tests are checked against.
pub const METRICS_DOC: &str = include_str!("../../../docs/metrics.md");

/// One row of [`METRICS_DOC`]'s table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentedMetric {
    /// The family name, e.g. `worker_jobs_total`.
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    /// The binaries that export it (`api`, `worker`).
    pub binaries: Vec<String>,
}

/// The metrics [`METRICS_DOC`] lists for `binary` (`api` or `worker`).
#[must_use]
pub fn documented_metrics(binary: &str) -> Vec<DocumentedMetric> {
    METRICS_DOC
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `name` | type | labels | binary | meaning |
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some(DocumentedMetric {
                name: name.to_owned(),
                kind: (*cells.get(2)?).to_owned(),
                binaries: cells
                    .get(4)?
                    .split(',')
                    .map(|b| b.trim().to_owned())
                    .collect(),
            })
        })
        .filter(|metric| metric.binaries.iter().any(|b| b == binary))
        .collect()
}

/// The documented families for `binary` that a `/metrics` scrape lacks (histograms are looked
/// for by their `_bucket` series).
#[must_use]
pub fn missing_from_scrape(binary: &str, scrape: &str) -> Vec<String> {
    let present: std::collections::HashSet<&str> = scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    documented_metrics(binary)
        .into_iter()
        .filter(|metric| {
            let series = if metric.kind == "histogram" {
                format!("{}_bucket", metric.name)
            } else {
                metric.name.clone()
            };
            !present.contains(series.as_str())
        })
        .map(|metric| metric.name)
        .collect()
}

#[cfg(test)]
mod tests {
    /// The document lists both binaries' families, with a type for each.
    #[test]
    fn the_metric_list_parses() {
        let api = super::documented_metrics("api");
        let worker = super::documented_metrics("worker");
        assert!(
            api.iter().any(|m| m.name == "axum_http_requests_total"),
            "{api:?}"
        );
        assert!(
            worker
                .iter()
                .any(|m| m.name == "worker_jobs_total" && m.kind == "counter"),
            "{worker:?}"
        );
        assert!(
            api.iter()
                .chain(&worker)
                .all(|m| ["counter", "gauge", "histogram"].contains(&m.kind.as_str()))
        );
    }

    /// A scrape missing a documented family is reported; a complete one is not.
    #[test]
    fn missing_families_are_reported() {
        let scrape = "worker_jobs_total{status=\"success\"} 1\n";
        let missing = super::missing_from_scrape("worker", scrape);
        assert!(
            !missing.contains(&"worker_jobs_total".to_owned()),
            "{missing:?}"
        );
        assert!(
            missing.contains(&"worker_job_duration_seconds".to_owned()),
            "{missing:?}"
        );
    }
}
