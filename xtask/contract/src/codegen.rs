//! `cargo xtask codegen`: writes the files that are generated from code, today `docs/metrics.md`
//! from the metric families the binaries declare (`EXPORTED_METRIC_FAMILIES` of `ampel-api` and
//! `ampel-worker`).
//!
//! ```text
//! cargo xtask codegen [--check]
//! ```
//!
//! Like rust-analyzer's `ensure_file_contents`: the `metrics_doc_is_fresh` test regenerates the
//! file and fails when it differs, writing the new one (except under `CI`), so a declaration
//! changed without `cargo xtask codegen` cannot pass `cargo test`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use telemetry::{Kind, LabelValues, MetricFamily};

use crate::binaries::{self, Binary};
use xtask::flags;

/// The metric contract of the two binaries, generated.
pub const METRICS_DOC: &str = "docs/metrics.md";

/// A binary and every metric family it exports.
pub struct BinaryMetrics {
    pub binary: &'static Binary,
    pub families: &'static [&'static [MetricFamily]],
}

/// Both binaries' metric families, as their crates declare them.
pub const BINARY_METRICS: [BinaryMetrics; 2] = [
    BinaryMetrics {
        binary: &binaries::API,
        families: ampel_api::EXPORTED_METRIC_FAMILIES,
    },
    BinaryMetrics {
        binary: &binaries::WORKER,
        families: ampel_worker::EXPORTED_METRIC_FAMILIES,
    },
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
    let mut exported: Vec<Exported> = Vec::new();
    for BinaryMetrics { binary, families } in &BINARY_METRICS {
        for family in families.iter().copied().flatten() {
            match exported.iter_mut().find(|e| e.family.name == family.name) {
                Some(known) => {
                    anyhow::ensure!(
                        known.family == family,
                        "two different declarations of {}: give one of them another name, or share one declaration",
                        family.name
                    );
                    known.binaries.push(binary.name);
                }
                None => exported.push(Exported {
                    family,
                    binaries: vec![binary.name],
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
(`EXPORTER_METRICS` in `xtask/contract/src/check/promql.rs`).\n",
    );
    Ok(doc)
}

/// A table cell: a `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Every generated file: its path from the workspace root and what it must hold.
fn generated() -> anyhow::Result<[(&'static str, String); 1]> {
    Ok([(METRICS_DOC, metrics_doc()?)])
}

impl crate::Run for flags::Codegen {
    fn run(self) -> anyhow::Result<()> {
        let root = xtask::util::project_root();
        let mut stale = Vec::new();
        for (path, contents) in generated()? {
            let file = root.join(path);
            if read(&file)? == contents {
                continue;
            }
            if self.check {
                stale.push(path);
            } else {
                std::fs::write(&file, contents).with_context(|| format!("write {path}"))?;
                eprintln!("codegen: wrote {path}");
            }
        }
        anyhow::ensure!(
            stale.is_empty(),
            "{} not what the code declares: run `cargo xtask codegen` and commit the result",
            stale.join(", ")
        );
        Ok(())
    }
}

/// The file's text, empty when it does not exist yet.
fn read(file: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(err).with_context(|| format!("read {}", file.display())),
    }
}

/// rust-analyzer's `ensure_file_contents`: fails when `path` does not hold `contents`, and writes
/// them there so the next run passes, except under `CI`, where `cargo test` must not change files.
#[cfg(test)]
fn ensure_file_contents(path: &str, contents: &str) {
    let file = xtask::util::project_root().join(path);
    if read(&file).expect("read the generated file") == contents {
        return;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} is not what the code declares: run `cargo xtask codegen` and commit it");
    }
    std::fs::write(&file, contents).expect("write the generated file");
    panic!(
        "{path} was not what the code declares and has been rewritten: commit it, then test again"
    );
}

/// `docs/metrics.md` is what the declarations generate.
#[test]
fn metrics_doc_is_fresh() {
    ensure_file_contents(
        METRICS_DOC,
        &metrics_doc().expect("generate docs/metrics.md"),
    );
}

/// Families every binary exports are listed once, with both binaries.
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
}
