//! Rules on Grafana: the data-source provisioning files and the dashboards parse, and every data
//! source a dashboard names by uid is provisioned.

use std::collections::BTreeSet;

use otel_testkit::queries::Dashboard;
use serde::Deserialize;
use xtask::queries::DASHBOARDS;

use super::{Problem, Sources};

const DATASOURCES: &str = "observability/grafana/provisioning/datasources";

/// Uids Grafana defines itself.
const BUILT_IN: [&str; 4] = ["-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"];

/// A data-source provisioning file.
#[derive(Debug, Deserialize)]
struct Provisioning {
    #[serde(default)]
    datasources: Vec<Datasource>,
}

#[derive(Debug, Deserialize)]
pub struct Datasource {
    pub uid: Option<String>,
    pub url: Option<String>,
}

/// Each dashboard with its text, read.
fn dashboards(
    sources: &Sources,
) -> impl Iterator<Item = (&str, &str, serde_json::Result<Dashboard>)> {
    sources
        .in_folder(DASHBOARDS, &[".json"])
        .map(|(file, text)| (file, text, Dashboard::parse(text)))
}

/// Every provisioned data source, with its file and that file's text.
pub fn datasources(sources: &Sources) -> Vec<(&str, &str, Datasource)> {
    let mut all = Vec::new();
    for (file, text) in sources.in_folder(DATASOURCES, &[".yaml", ".yml"]) {
        if let Ok(provisioning) = serde_yaml::from_str::<Provisioning>(text) {
            all.extend(
                provisioning
                    .datasources
                    .into_iter()
                    .map(|d| (file, text, d)),
            );
        }
    }
    all
}

pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    for (file, text) in sources.in_folder(DATASOURCES, &[".yaml", ".yml"]) {
        if let Err(err) = serde_yaml::from_str::<Provisioning>(text) {
            problems.push(Problem::new(
                file,
                err.location().map(|location| location.line()),
                format!("not a Grafana data-source provisioning file ({err}); fix the YAML"),
            ));
        }
    }
    let uids: BTreeSet<String> = datasources(sources)
        .into_iter()
        .filter_map(|(_, _, datasource)| datasource.uid)
        .collect();
    for (file, text, dashboard) in dashboards(sources) {
        let dashboard = match dashboard {
            Ok(dashboard) => dashboard,
            Err(err) => {
                problems.push(Problem::new(
                    file,
                    Some(err.line()),
                    format!("not valid JSON ({err}); fix the dashboard"),
                ));
                continue;
            }
        };
        let unknown = dashboard.uids.difference(&uids);
        for uid in unknown.filter(|uid| !BUILT_IN.contains(&uid.as_str())) {
            problems.push(Problem::near(
                file,
                text,
                &format!("\"uid\": \"{uid}\""),
                format!(
                    "uses data source uid {uid:?}, which {DATASOURCES}/ does not provision (uids: {}); use one of those",
                    uids.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "observability/grafana/dashboards/api.json";
    const PROVISIONED: &str = "observability/grafana/provisioning/datasources/datasources.yaml";
    /// Provisioned and built-in uids, in objects and as strings, nested at any depth.
    const FIXTURE: [(&str, &str); 2] = [
        (
            PROVISIONED,
            "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    uid: prometheus\n    url: http://prometheus:9090\n",
        ),
        (
            AT,
            r#"{"panels": [{"datasource": {"type": "prometheus", "uid": "prometheus"},
                "panels": [{"datasource": "prometheus"}]}],
                "annotations": {"list": [{"datasource": {"uid": "-- Grafana --"}}]}}"#,
        ),
    ];

    /// Each edit of the clean fixture makes one problem, which says what to change; a
    /// provisioning file that does not parse also provisions nothing.
    #[test]
    fn each_rule_fires_on_its_break() {
        let edits = [
            (AT, r#""uid": "prometheus""#, r#""uid": "prom""#),
            (AT, "[{", "[,{"),
            (PROVISIONED, "  - name", "  name"),
        ];
        let found = Sources::found_after_edits(&FIXTURE, &edits, check);
        assert_eq!(
            found,
            [
                "observability/grafana/dashboards/api.json:1: uses data source uid \"prom\", which observability/grafana/provisioning/datasources/ does not provision (uids: prometheus); use one of those",
                "observability/grafana/dashboards/api.json:1: not valid JSON (expected value at line 1 column 13); fix the dashboard",
                "observability/grafana/provisioning/datasources/datasources.yaml:3: not a Grafana data-source provisioning file (datasources: invalid type: map, expected a sequence at line 3 column 3); fix the YAML",
                "observability/grafana/dashboards/api.json:1: uses data source uid \"prometheus\", which observability/grafana/provisioning/datasources/ does not provision (uids: ); use one of those",
            ]
        );
    }
}
