//! Tail sampling in the collector, run from compose's service and
//! observability/otel-collector/config.yaml at a 10 % share: of 100 traces (5 with an error
//! span, 5 slower than the threshold, 90 neither) every error and slow trace reaches the trace
//! store, and of the other 90 exactly those the collector's share policy kept.
//!
//! How many the share keeps is read from the collector's own decision counter
//! (`otelcol_processor_tail_sampling_count_traces_sampled`, policy `share`): the policy hashes
//! the trace id, so with the fixed ids below it is the same number on every run, but which
//! number is the collector's to say, not this test's to recompute. The test bounds it as well
//! (10 % of 90 is 9; [`SHARE_KEPT`] holds 99.99 % of that binomial), so a share that is not
//! applied (all 90 kept) or keeps nothing fails.
//!
//! Two more collectors run beside it with the `errors` or the `slow` policy taken out of the
//! config: their runs must fail, so the test shows that each policy is what keeps its traces.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Status, status::StatusCode};
use otel_testkit::container::{self, Running};
use otel_testkit::{Span, SpanKind, TraceStore, eventually, otlp, prometheus};
use xtask::compose::{self, COLLECTOR, ComposeFile};
use xtask::engine::Variant;
use xtask::flags::{self, LogBackend};

use super::stack;

/// The share of the other traces the test's collectors keep (OTELCOL_SAMPLING_PERCENTAGE).
const PERCENTAGE: &str = "10";
/// Slower than this (OTELCOL_SLOW_TRACE_MS) is slow; the slow traces last [`SLOW`].
const SLOW_THRESHOLD_MS: &str = "500";
const SLOW: Duration = Duration::from_millis(1000);
const NORMAL: usize = 90;
const ERRORS: usize = 5;
const SLOWS: usize = 5;
/// How many of the [`NORMAL`] traces a 10 % share may keep (binomial(90, 0.1): 99.99 %).
const SHARE_KEPT: RangeInclusive<f64> = 1.0..=20.0;
/// Decisions wait for the root span plus a tick; the exporter's batch follows.
const DEADLINE: Duration = Duration::from_secs(20);
pub(super) use super::stack::COLLECTOR_CONFIG as CONFIG;
/// The collector's counter of each policy's decisions.
const DECISIONS: &str = "otelcol_processor_tail_sampling_count_traces_sampled";
/// The OTLP/HTTP receiver's port (compose publishes it).
pub(super) const OTLP_HTTP_PORT: u16 = 4318;

/// Each collector of the test: its container's name, the policy taken out of its config, the
/// seed of its trace ids.
const COLLECTORS: [(&str, Option<&str>, u64); 3] = [
    ("collector", None, 1),
    ("collector-no-errors", Some("errors"), 2),
    ("collector-no-slow", Some("slow"), 3),
];

/// The three kinds of trace the test sends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Normal,
    Error,
    Slow,
}

/// The test's traces for the collector of `seed`: one root span each, with fixed ids that look
/// random, as real ones do (the share policy's FNV hash keeps ids that differ only in their
/// last digits all or none).
fn traces(seed: u64) -> Vec<(String, Kind)> {
    let kinds = [
        (Kind::Normal, NORMAL),
        (Kind::Error, ERRORS),
        (Kind::Slow, SLOWS),
    ];
    kinds
        .into_iter()
        .flat_map(|(kind, count)| std::iter::repeat_n(kind, count))
        .enumerate()
        .map(|(index, kind)| {
            let index = 2 * (seed << 32 | index as u64);
            let id = format!("{:016x}{:016x}", splitmix64(index), splitmix64(index + 1));
            (id, kind)
        })
        .collect()
}

/// SplitMix64: a fixed, well-spread 64-bit value for each input.
fn splitmix64(input: u64) -> u64 {
    let mut z = input.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One export request for `traces`: an error trace's span has status ERROR, a slow one lasts
/// [`SLOW`].
fn request(traces: &[(String, Kind)]) -> anyhow::Result<ExportTraceServiceRequest> {
    let spans: Vec<Span> = traces
        .iter()
        .map(|(trace_id, _)| Span {
            trace_id: trace_id.clone(),
            span_id: otlp::new_span_id(),
            parent_span_id: None,
            name: "GET /sampled".to_owned(),
            kind: SpanKind::Server,
            service: "sampling-test".to_owned(),
            attributes: Default::default(),
        })
        .collect();
    let kinds: HashMap<&str, Kind> = traces
        .iter()
        .map(|(id, kind)| (id.as_str(), *kind))
        .collect();
    let mut request = otlp::traces_request(&spans)?;
    for span in request
        .resource_spans
        .iter_mut()
        .flat_map(|resource| &mut resource.scope_spans)
        .flat_map(|scope| &mut scope.spans)
    {
        let id: String = span
            .trace_id
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        match kinds.get(id.as_str()) {
            Some(Kind::Error) => {
                span.status = Some(Status {
                    code: StatusCode::Error.into(),
                    message: "failed on purpose".to_owned(),
                });
            }
            Some(Kind::Slow) => {
                let slow = u64::try_from(SLOW.as_nanos()).context("a slow span's duration")?;
                span.end_time_unix_nano = span.start_time_unix_nano + slow;
            }
            Some(Kind::Normal) | None => {}
        }
    }
    Ok(request)
}

/// `config` with the tail-sampling policy `name` taken out.
fn without_policy(config: &str, name: &str) -> anyhow::Result<String> {
    let mut config: serde_yaml::Value = serde_yaml::from_str(config)?;
    let policies = config["processors"]["tail_sampling"]["policies"]
        .as_sequence_mut()
        .context("no processors.tail_sampling.policies")?;
    let before = policies.len();
    policies.retain(|policy| policy["name"].as_str() != Some(name));
    anyhow::ensure!(
        policies.len() < before,
        "no tail-sampling policy named {name}"
    );
    Ok(serde_yaml::to_string(&config)?)
}

/// Where compose mounts the collector's config inside its container.
pub(super) fn config_target(model: &ComposeFile) -> String {
    model.services[COLLECTOR]
        .bind_mounts(&compose::dir())
        .into_iter()
        .find(|mount| mount.source.ends_with("config.yaml"))
        .map(|mount| mount.target)
        .expect("compose mounts the collector's config")
}

/// How many traces the collector has decided on, and how many of them its `share` policy kept.
async fn share_decisions(http: &reqwest::Client, metrics: &str) -> anyhow::Result<(f64, f64)> {
    let samples = prometheus::scrape(http, metrics).await?;
    let share = samples.iter().filter(|sample| {
        sample.labels["__name__"] == DECISIONS
            && sample.labels.get("policy").map(String::as_str) == Some("share")
    });
    let (mut decided, mut kept) = (0.0, 0.0);
    for sample in share {
        decided += sample.value;
        if sample.labels.get("sampled").map(String::as_str) == Some("true") {
            kept += sample.value;
        }
    }
    Ok((decided, kept))
}

/// Sends one collector its traces and checks what reaches `store`; `Ok` says what was kept.
/// The others go first, alone: once the collector has decided on all of them, its share
/// policy's count is how many of them it kept. Then the error and slow ones.
async fn check(
    http: &reqwest::Client,
    collector: &Running,
    telemetry: u16,
    store: &dyn TraceStore,
    seed: u64,
) -> anyhow::Result<String> {
    let traces = traces(seed);
    let url = format!("{}{}", collector.url(OTLP_HTTP_PORT), otlp::TRACES_PATH);
    let metrics = format!("{}/metrics", collector.url(telemetry));
    let (normal, special): (Vec<_>, Vec<_>) = traces
        .iter()
        .cloned()
        .partition(|(_, kind)| *kind == Kind::Normal);
    otlp::send(http, &url, &request(&normal)?).await?;
    let sent = Instant::now();
    let kept = eventually("decisions on the other traces", sent, DEADLINE, || async {
        let (decided, kept) = share_decisions(http, &metrics).await?;
        anyhow::ensure!(decided == NORMAL as f64, "{decided} of {NORMAL} decided");
        Ok(kept)
    })
    .await
    .map_err(|timed_out| anyhow::anyhow!("{timed_out}"))?
    .value;
    anyhow::ensure!(
        SHARE_KEPT.contains(&kept),
        "the share policy kept {kept} of {NORMAL}; a {PERCENTAGE} % share keeps {SHARE_KEPT:?}"
    );
    otlp::send(http, &url, &request(&special)?).await?;
    let sent = Instant::now();
    let expected = kept as usize + ERRORS + SLOWS;
    let stored = eventually("the kept traces in the store", sent, DEADLINE, || async {
        let mut stored = Vec::new();
        for (id, kind) in &traces {
            if !store.trace(id).await?.is_empty() {
                stored.push(*kind);
            }
        }
        let count = |kind| stored.iter().filter(|stored| **stored == kind).count();
        let (errors, slow) = (count(Kind::Error), count(Kind::Slow));
        let seen = format!(
            "{} of {} stored ({errors} of {ERRORS} error traces, {slow} of {SLOWS} slow ones, {} of {NORMAL} others); the policy keeps {expected}: the error, the slow and the {kept} others the share kept",
            stored.len(),
            traces.len(),
            count(Kind::Normal)
        );
        anyhow::ensure!(
            errors == ERRORS && slow == SLOWS && stored.len() == expected,
            "{seen}"
        );
        Ok(seen)
    })
    .await
    .map_err(|timed_out| anyhow::anyhow!("{timed_out}"))?;
    Ok(format!(
        "{}; all there {:.1}s after the last send",
        stored.value,
        stored.after.as_secs_f64()
    ))
}

/// Tail sampling keeps every error and slow trace and exactly the share the collector says;
/// without the `errors` or the `slow` policy, those traces are lost (so each policy is what
/// keeps them). The collectors run from compose's service at a 10 % share, side by side, in
/// front of one trace store (AMPEL_E2E_TRACES picks it). Without an engine or an image it is
/// skipped, and under `CI=true` it fails.
#[test]
fn tail_sampling_keeps_errors_slow_traces_and_the_share() {
    use clap::Parser as _;
    let flags::Command::E2e(flags) = flags::Xtask::parse_from(["xtask", "e2e"]).command else {
        unreachable!("parsed the e2e command");
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let model = Variant::Peers.model().unwrap();
        let (store_service, store_port, store_client) = stack::trace_backend(flags.traces);
        let config = std::fs::read_to_string(xtask::util::project_root().join(CONFIG)).unwrap();
        let telemetry = stack::collector_metrics_port(&config).unwrap();
        let target = config_target(&model);
        let mut specs = vec![(store_service, stack::spec(&model, store_service, true).unwrap())];
        for (name, without, _) in COLLECTORS {
            let config = match without {
                Some(policy) => without_policy(&config, policy).unwrap(),
                None => config.clone(),
            };
            let spec = stack::spec(&model, COLLECTOR, false)
                .unwrap()
                .copy_bytes(config, target.clone())
                .port(telemetry)
                .env("OTELCOL_SAMPLING_PERCENTAGE", PERCENTAGE)
                .env("OTELCOL_SLOW_TRACE_MS", SLOW_THRESHOLD_MS);
            specs.push((name, stack::collector_env(spec, flags.traces, LogBackend::Victorialogs).unwrap()));
        }
        let images: Vec<String> = specs.iter().map(|(_, spec)| spec.image()).collect();
        let images: Vec<&str> = images.iter().map(String::as_str).collect();
        let test = "tail_sampling_keeps_errors_slow_traces_and_the_share (local images: `source .ci/images.env`; AMPEL_E2E_TRACES picks the store)";
        if container::require_engine(test, &images).await.is_none() {
            return;
        }
        let group = stack::start_containers(specs).await.unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let store = store_client(http.clone(), group.url(store_service, store_port).unwrap());
        let runs = COLLECTORS.iter().map(|(name, _, seed)| {
            let collector = group.get(name).expect("started");
            check(&http, collector, telemetry, store.as_ref(), *seed)
        });
        let outcomes = futures::future::join_all(runs).await;
        group.stop().await;
        let mut wrong = Vec::new();
        for ((name, without, _), outcome) in COLLECTORS.iter().zip(outcomes) {
            eprintln!("{name}: {}", match &outcome { Ok(found) => found.clone(), Err(err) => format!("{err:#}") });
            match (without, outcome) {
                (None, Err(err)) => wrong.push(format!("{name}: {err:#}")),
                (Some(policy), Ok(found)) => wrong.push(format!("{name}: without the {policy} policy the check still passed: {found}")),
                (Some(policy), Err(err)) => {
                    let lost = if *policy == "errors" { "error traces" } else { "slow ones" };
                    let detail = format!("{err:#}");
                    if !detail.contains(&format!("of {} {lost}", if *policy == "errors" { ERRORS } else { SLOWS })) {
                        wrong.push(format!("{name}: should fail on its {lost}: {detail}"));
                    }
                }
                (None, Ok(_)) => {}
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    });
}
