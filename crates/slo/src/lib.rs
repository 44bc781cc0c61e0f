#![doc = include_str!("../README.md")]

mod family;
mod sli;
mod spec;

pub mod dashboard;
pub mod rules;

pub use family::{Family, Kind, Label, Service};
pub use spec::{Invalid, Objective, Window, parse};

/// What the generated files say of themselves and link to: the caller's conventions.
#[derive(Debug, Clone)]
pub struct Output {
    /// Comment lines at the head of the rules file, without `# `: where it is generated from,
    /// how to regenerate it, where its runbook and its tests are.
    pub rules_header: Vec<String>,
    /// What each alert's `runbook_url` starts with; the alert's name in lower case follows
    /// (e.g. `https://example.com/runbook#` gives `...#sloapiavailabilityfastburn`).
    pub runbook_url: String,
    pub dashboard: Dashboard,
}

/// The error-budget dashboard's own fields.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub uid: String,
    /// Also what the alerts' descriptions call it.
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Grafana's `links` of the dashboard, as its JSON model has them.
    pub links: Vec<serde_json::Value>,
    /// The uid of the Prometheus data source every panel queries.
    pub datasource_uid: String,
}
