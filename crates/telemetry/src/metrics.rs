//! The process-wide Prometheus recorder, built from the metric families the binary declares, and
//! telemetry's own family, `ampel_build_info`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::family::{Kind, Label, MetricFamily};

/// Request, query and outbound-call latencies: 1 ms to 10 s. Shared by the api, the store and the
/// worker.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `Content-Type` of a `/metrics` response: Prometheus 3 refuses a scrape whose type it
/// does not recognise, and this is the classic text format's.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `service`: who runs.
const SERVICE: Label = Label::open("service", "the service name given to `telemetry::init`");
/// `version`: the build.
const VERSION: Label = Label::open("version", "the crate version of the build");

/// `ampel_build_info{service, version} 1`, so dashboards and deploy checks can see what runs.
pub const BUILD_INFO: MetricFamily = MetricFamily::gauge(
    "ampel_build_info",
    "Always 1; carries the build's version.",
    &[SERVICE, VERSION],
);

/// The families telemetry itself records.
pub const METRIC_FAMILIES: &[MetricFamily] = &[BUILD_INFO];

/// How often histogram samples are folded into the rendered state, so memory stays flat between
/// scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's one recorder for `families` (each histogram with the buckets its
/// declaration gives, each family with its help text) on first call; later calls keep the first
/// recorder. `metrics` allows one global recorder per process, so every caller (api router,
/// worker listener, tests building several apps) shares this one.
///
/// With telemetry switched off ([`crate::enabled`]) the recorder is built but not installed: the
/// `metrics::*!` calls then go nowhere and `/metrics` renders nothing.
///
/// # Panics
/// When another recorder was installed first, which would be a wiring bug.
pub(crate) fn install(families: &[&[MetricFamily]]) {
    HANDLE.get_or_init(|| {
        let builder = builder(families);
        if !crate::enabled() {
            return builder.build_recorder().handle();
        }
        let handle = builder.install_recorder().expect(
            "install the Prometheus recorder: another metrics recorder was installed first",
        );
        describe(families);
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
    });
}

/// The recorder's handle, for `/metrics` to render.
///
/// # Panics
/// When [`crate::init`] has not run yet: the recorder is built from the families it is given.
pub fn prometheus_handle() -> PrometheusHandle {
    HANDLE
        .get()
        .expect("telemetry::init installs the metrics recorder: call it before building /metrics")
        .clone()
}

fn builder(families: &[&[MetricFamily]]) -> PrometheusBuilder {
    families
        .iter()
        .copied()
        .flatten()
        .filter_map(|family| match family.kind {
            Kind::Histogram { buckets } => Some((family.name, buckets)),
            Kind::Counter | Kind::Gauge => None,
        })
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("histogram buckets are non-empty")
        })
}

/// Gives every family its `# HELP` line.
fn describe(families: &[&[MetricFamily]]) {
    for family in families.iter().copied().flatten() {
        match family.kind {
            Kind::Counter => metrics::describe_counter!(family.name, family.help),
            Kind::Gauge => metrics::describe_gauge!(family.name, family.help),
            Kind::Histogram { .. } => metrics::describe_histogram!(family.name, family.help),
        }
    }
}

/// Sets [`BUILD_INFO`] for `service`.
pub(crate) fn record_build_info(service: &'static str) {
    metrics::gauge!(BUILD_INFO.name, SERVICE.name => service, VERSION.name => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

#[cfg(test)]
mod tests {
    use crate::family::{Label, MetricFamily};

    const WAIT: MetricFamily = MetricFamily::histogram(
        "wait_seconds",
        "Time waited.",
        &[Label::open("queue", "the queue's name")],
        &[0.5, 7.0],
    );

    /// A declared histogram gets its own buckets and its help text.
    #[test]
    fn the_recorder_follows_the_declarations() {
        let recorder = super::builder(&[&[WAIT]]).build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            super::describe(&[&[WAIT]]);
            metrics::histogram!(WAIT.name, "queue" => "a").record(0.3);
        });
        let scrape = handle.render();
        for line in [
            "# HELP wait_seconds Time waited.",
            r#"wait_seconds_bucket{queue="a",le="0.5"} 1"#,
            r#"wait_seconds_bucket{queue="a",le="7"} 1"#,
        ] {
            assert!(scrape.contains(line), "{line} not in\n{scrape}");
        }
    }
}
