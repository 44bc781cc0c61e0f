//! Rules on Grafana: every data source a dashboard names by uid is provisioned.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Problem, Sources};

const DATASOURCES: &str = "observability/grafana/provisioning/datasources";
const DASHBOARDS: &str = "observability/grafana/dashboards";

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

/// Every provisioned data source, with its file and that file's text.
pub fn datasources(sources: &Sources) -> Vec<(&str, &str, Datasource)> {
    sources
        .in_folder(DATASOURCES, &[".yaml", ".yml"])
        .filter_map(|(file, text)| {
            Some((file, text, serde_yaml::from_str::<Provisioning>(text).ok()?))
        })
        .flat_map(|(file, text, provisioning)| {
            provisioning
                .datasources
                .into_iter()
                .map(move |datasource| (file, text, datasource))
        })
        .collect()
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
    for (file, text) in sources.in_folder(DASHBOARDS, &[".json"]) {
        // Invalid JSON is reported by the PromQL rules, which read the same files.
        let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        let mut used = BTreeSet::new();
        datasource_uids(&json, &mut used);
        for uid in used.difference(&uids) {
            if BUILT_IN.contains(&uid.as_str()) {
                continue;
            }
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

/// The uid of every `"datasource"` value: `{"type": …, "uid": …}` or a bare uid string.
fn datasource_uids(json: &serde_json::Value, used: &mut BTreeSet<String>) {
    match json {
        serde_json::Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("datasource", serde_json::Value::String(uid)) => {
                        used.insert(uid.clone());
                    }
                    ("datasource", serde_json::Value::Object(reference)) => {
                        if let Some(uid) = reference.get("uid").and_then(|uid| uid.as_str()) {
                            used.insert(uid.to_owned());
                        }
                    }
                    _ => datasource_uids(value, used),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                datasource_uids(item, used);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVISIONING: &str = "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    uid: prometheus\n    url: http://prometheus:9090\n";

    fn problems_of(dashboard: &str) -> Vec<String> {
        let sources = Sources::from_files(&[
            (
                "observability/grafana/provisioning/datasources/datasources.yaml",
                PROVISIONING,
            ),
            ("observability/grafana/dashboards/api.json", dashboard),
        ]);
        let mut problems = Vec::new();
        check(&sources, &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    /// Provisioned and built-in uids pass, in objects and as strings, nested at any depth.
    #[test]
    fn provisioned_uids_pass() {
        let dashboard = r#"{"panels": [{"datasource": {"type": "prometheus", "uid": "prometheus"},
            "panels": [{"datasource": "prometheus"}]}],
            "annotations": {"list": [{"datasource": {"uid": "-- Grafana --"}}]}}"#;
        assert_eq!(problems_of(dashboard), Vec::<String>::new());
    }

    /// A uid nothing provisions.
    #[test]
    fn unknown_uid() {
        let dashboard =
            "{\"panels\": [\n  {\"datasource\": {\"type\": \"prometheus\", \"uid\": \"prom\"}}]}";
        assert_eq!(
            problems_of(dashboard),
            [
                "observability/grafana/dashboards/api.json:2: uses data source uid \"prom\", which observability/grafana/provisioning/datasources/ does not provision (uids: prometheus); use one of those"
            ]
        );
    }

    /// A provisioning file that is not one.
    #[test]
    fn unparsable_provisioning() {
        let sources = Sources::from_files(&[(
            "observability/grafana/provisioning/datasources/datasources.yaml",
            "datasources: {uid: 3}\n",
        )]);
        let mut problems = Vec::new();
        check(&sources, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .message
                .starts_with("not a Grafana data-source provisioning file")
        );
    }
}
