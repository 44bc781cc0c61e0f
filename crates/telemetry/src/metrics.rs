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

/// How often histogram samples are folded into the rendered state, so memory stays flat between
/// scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The global recorder's handle, installing the recorder on first use. `metrics` allows one global
/// recorder per process, so every caller (api router, worker listener, tests building several
/// apps) shares this one.
///
/// # Panics
/// When another recorder was installed first, which would be a wiring bug.
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
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
