//! `cargo xtask codegen`: writes the files that are generated from code: `docs/metrics.md` from
//! the metric families the binaries declare (`EXPORTED_METRIC_FAMILIES` of `ampel-api` and
//! `ampel-worker`), and the SLO rules and dashboard from `observability/slo.yaml` (`slo.rs`).
//!
//! ```text
//! cargo xtask codegen [--check]
//! ```
//!
//! Like rust-analyzer's `ensure_file_contents`: the `metrics_doc_is_fresh` test (and
//! `slo_files_are_fresh` in `slo.rs`) regenerates the files and fails when one differs, writing
//! the new one (except under `CI`), so a declaration or spec changed without `cargo xtask
//! codegen` cannot pass `cargo test`.

use std::fmt::Write as _;

use anyhow::Context as _;
use telemetry::{Kind, LabelValues, MetricFamily};

use crate::binaries;
use xtask::flags;

/// The metric contract of the two binaries, generated.
pub const METRICS_DOC: &str = "docs/metrics.md";

/// Each binary and the families it exports.
type BinaryMetrics = [(&'static str, &'static [&'static [MetricFamily]])];

/// Both binaries' metric families, as their crates declare them.
const BINARY_METRICS: &BinaryMetrics = &[
    (binaries::API.name, ampel_api::EXPORTED_METRIC_FAMILIES),
    (
        binaries::WORKER.name,
        ampel_worker::EXPORTED_METRIC_FAMILIES,
    ),
];

/// One family and the binaries that export it.
pub struct Exported {
    pub family: &'static MetricFamily,
    pub binaries: Vec<&'static str>,
}

/// Every family of [`BINARY_METRICS`] once: those of one binary first, then the shared ones.
///
/// # Errors
/// When two declarations share a name but differ.
pub fn exported_families() -> anyhow::Result<Vec<Exported>> {
    merge(BINARY_METRICS)
}

fn merge(binaries: &BinaryMetrics) -> anyhow::Result<Vec<Exported>> {
    let mut exported: Vec<Exported> = Vec::new();
    for (binary, families) in binaries {
        for family in families.iter().copied().flatten() {
            match exported.iter_mut().find(|e| e.family.name == family.name) {
                Some(known) => {
                    anyhow::ensure!(
                        known.family == family,
                        "two different declarations of {}: give one of them another name, or share one declaration",
                        family.name
                    );
                    known.binaries.push(binary);
                }
                None => exported.push(Exported {
                    family,
                    binaries: vec![binary],
                }),
            }
        }
    }
    exported.sort_by_key(|e| e.binaries.len());
    Ok(exported)
}

/// `docs/metrics.md`, as the declarations say it.
///
/// # Errors
/// As [`exported_families`].
pub fn metrics_doc() -> anyhow::Result<String> {
    let exported = exported_families()?;
    let mut doc = String::new();
    doc.push_str(
        "<!-- Written by `cargo xtask codegen` (xtask/contract/src/codegen.rs) from the MetricFamily\n\
declarations in the crates. Do not edit: change the declaration next to where the metric is\n\
recorded, then run `cargo xtask codegen`. -->\n\n",
    );
    doc.push_str(
        "# Metrics\n\n\
Every metric the two binaries export on `GET /metrics`, in the Prometheus text format.\n\
This list is the contract for dashboards, alert rules and the e2e. Each family is declared once,\n\
as a `MetricFamily` next to the code that records it. A binary's list\n\
(`ampel_api::EXPORTED_METRIC_FAMILIES`, `ampel_worker::EXPORTED_METRIC_FAMILIES`) builds its\n\
recorder; `cargo xtask check` holds rules and dashboards to both lists; each binary's scrape test\n\
fails unless `/metrics` has every family of its list, no other, and only declared labels and\n\
values.\n\n\
| metric | type | labels | binaries | meaning |\n\
|---|---|---|---|---|\n",
    );
    for Exported { family, binaries } in &exported {
        let labels: Vec<String> = family
            .labels
            .iter()
            .map(|label| match label.values {
                LabelValues::OneOf(values) => {
                    let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
                    format!("`{}`: {}", label.name, values.join(", "))
                }
                LabelValues::Open(holds) => format!("`{}`: {holds}", label.name),
            })
            .collect();
        let labels = if labels.is_empty() {
            "none".to_owned()
        } else {
            labels.join("; ")
        };
        writeln!(
            doc,
            "| `{}` | {} | {} | {} | {} |",
            family.name,
            family.kind.as_str(),
            cell(&labels),
            binaries.join(", "),
            cell(family.help),
        )
        .expect("writing to a String cannot fail");
    }
    doc.push_str(
        "\n## Histogram buckets\n\n\
Upper bounds, in the histogram's unit (seconds; for `web_vitals_value` also the unitless CLS \
score); `+Inf` is implied. Each histogram's declaration gives them, and the recorder uses them.\n\n\
| histogram | buckets |\n\
|---|---|\n",
    );
    for Exported { family, .. } in &exported {
        if let Kind::Histogram { buckets } = family.kind {
            let bounds: Vec<String> = buckets.iter().map(ToString::to_string).collect();
            writeln!(doc, "| `{}` | {} |", family.name, bounds.join(", "))
                .expect("writing to a String cannot fail");
        }
    }
    doc.push_str(
        "\n## Exporters\n\n\
The compose stack adds the standard metrics of `postgres_exporter` (`pg_up`,\n\
`pg_stat_database_numbackends`, `pg_settings_max_connections`, ...) and `redis_exporter`\n\
(`redis_up`, `redis_connected_clients`, `redis_config_maxclients`, ...), and Prometheus' own `up`\n\
per scrape target. `cargo xtask check` knows the ones rules and dashboards may use\n\
(`EXPORTER_METRICS` in `xtask/src/queries.rs`).\n",
    );
    Ok(doc)
}

/// A table cell: a `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Of `files` (name and contents), those on disk that differ; when `write`, they are rewritten.
fn stale(files: Vec<(&'static str, String)>, write: bool) -> anyhow::Result<Vec<&'static str>> {
    let mut stale = Vec::new();
    for (name, contents) in files {
        let file = xtask::util::project_root().join(name);
        let current = match std::fs::read_to_string(&file) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            read => read.with_context(|| format!("read {name}"))?,
        };
        if current != contents {
            stale.push(name);
            if write {
                std::fs::write(&file, contents).with_context(|| format!("write {name}"))?;
            }
        }
    }
    Ok(stale)
}

impl crate::Run for flags::Codegen {
    fn run(self) -> anyhow::Result<()> {
        let mut files = vec![(METRICS_DOC, metrics_doc()?)];
        files.extend(crate::slo::generated()?);
        let stale = stale(files, !self.check)?;
        anyhow::ensure!(
            stale.is_empty() || !self.check,
            "{} not what its source declares: run `cargo xtask codegen` and commit the result",
            stale.join(", ")
        );
        for file in stale {
            eprintln!("codegen: wrote {file}");
        }
        Ok(())
    }
}

/// rust-analyzer's `ensure_file_contents`: generated files that are not what their source says
/// fail the test and are rewritten so the next run passes, except under `CI`, where `cargo test`
/// must not change files.
#[cfg(test)]
pub(crate) fn assert_fresh(files: anyhow::Result<Vec<(&'static str, String)>>) {
    let under_ci = std::env::var_os("CI").is_some();
    let what_next = if under_ci {
        "not what its source declares: run `cargo xtask codegen` and commit it"
    } else {
        "not what its source declares and rewritten: commit it, then test again"
    };
    let stale = stale(files.expect("generate the files"), !under_ci).expect("compare the files");
    assert!(stale.is_empty(), "{} {what_next}", stale.join(", "));
}

/// `docs/metrics.md` is what the declarations generate.
#[test]
fn metrics_doc_is_fresh() {
    assert_fresh(metrics_doc().map(|doc| vec![(METRICS_DOC, doc)]));
}

/// Families every binary exports are listed once, with both binaries; two declarations of one
/// name that differ are refused.
#[test]
fn shared_families_are_listed_once() {
    let exported = exported_families().unwrap();
    let build_info: Vec<&Exported> = exported
        .iter()
        .filter(|e| e.family.name == telemetry::BUILD_INFO.name)
        .collect();
    assert_eq!(build_info.len(), 1);
    assert_eq!(
        build_info[0].binaries,
        [binaries::API.name, binaries::WORKER.name]
    );
    const JOBS: &[MetricFamily] = &[MetricFamily::counter("jobs_total", "Jobs.", &[])];
    const OTHER: &[MetricFamily] = &[MetricFamily::gauge("jobs_total", "Jobs.", &[])];
    let err = merge(&[("a", &[JOBS]), ("b", &[OTHER])])
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("two different declarations of jobs_total")
    );
}
