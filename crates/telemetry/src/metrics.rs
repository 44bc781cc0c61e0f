//! The process-wide Prometheus recorder, built from the metric families the binary declares, and
//! telemetry's own family, `ampel_build_info`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::family::{Kind, Label, LabelValues, MetricFamily};

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
        start_counters_at_zero(families);
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

/// Registers every series of each counter whose labels all have closed value sets, at 0: a
/// series that first appears at 1 is invisible to `rate()` and `increase()`, so the first error
/// after a start would go unseen, and a panel of an error that has not happened would show no
/// data rather than 0. Counters with an open label (a route, a status code) start with their
/// first sample as before.
fn start_counters_at_zero(families: &[&[MetricFamily]]) {
    for family in families.iter().copied().flatten() {
        for labels in closed_label_sets(family) {
            metrics::counter!(family.name, labels).increment(0);
        }
    }
}

/// Every combination of `family`'s label values, when it is a counter whose labels are all
/// [`LabelValues::OneOf`]; none otherwise.
fn closed_label_sets(family: &MetricFamily) -> Vec<Vec<metrics::Label>> {
    if family.kind != Kind::Counter {
        return Vec::new();
    }
    family.labels.iter().fold(vec![Vec::new()], |sets, label| {
        let LabelValues::OneOf(values) = label.values else {
            return Vec::new();
        };
        sets.iter()
            .flat_map(|set| {
                values.iter().map(move |value| {
                    let mut set = set.clone();
                    set.push(metrics::Label::new(label.name, *value));
                    set
                })
            })
            .collect()
    })
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

    /// A counter whose labels are all closed starts with every series at 0; one with an open
    /// label, and other kinds, start with their first sample.
    #[test]
    fn closed_counters_start_at_zero() {
        const CLOSED: MetricFamily = MetricFamily::counter(
            "closed_total",
            "Closed.",
            &[
                Label::one_of("status", &["ok", "failed"]),
                Label::one_of("kind", &["a", "b", "c"]),
            ],
        );
        const OPEN: MetricFamily = MetricFamily::counter(
            "open_total",
            "Open.",
            &[
                Label::one_of("status", &["ok"]),
                Label::open("route", "a route"),
            ],
        );
        const GAUGE: MetricFamily =
            MetricFamily::gauge("closed_gauge", "Gauge.", &[Label::one_of("state", &["x"])]);
        let families: &[&[MetricFamily]] = &[&[CLOSED, OPEN, GAUGE]];
        let recorder = super::builder(families).build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || super::start_counters_at_zero(families));
        let scrape = handle.render();
        let series: Vec<&str> = scrape
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .collect();
        assert_eq!(series.len(), 6, "{scrape}");
        for line in [
            r#"closed_total{status="ok",kind="a"} 0"#,
            r#"closed_total{status="failed",kind="c"} 0"#,
        ] {
            assert!(series.contains(&line), "{line} not in\n{scrape}");
        }
    }

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
