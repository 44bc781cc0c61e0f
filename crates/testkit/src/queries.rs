//! The queries of Grafana dashboards and Prometheus rule files, read as data: each with its file,
//! its panel or rule, and its language, so a test can run every one against live stores (a wrong
//! metric name shows as a query that finds nothing instead of "No data" in Grafana) and a static
//! check can parse them. Grafana's built-in variables are substituted as Grafana does for the
//! last hour; [`Selectors`] are the metric names and jobs a PromQL expression selects.
//!
//! ```
//! use otel_testkit::queries::{self, Language};
//! let dashboard = r#"{"panels": [{"title": "Requests", "datasource": {"type": "prometheus"},
//!     "targets": [{"expr": "rate(http_requests_total[$__rate_interval])"}]}]}"#;
//! let found = queries::dashboard_queries("api.json", dashboard).unwrap();
//! assert_eq!(found[0].origin.to_string(), r#"panel "Requests""#);
//! assert_eq!(found[0].language(), Language::Promql);
//! let interval = std::time::Duration::from_secs(5);
//! let expr = queries::substitute(&found[0].expr, interval).unwrap();
//! assert_eq!(expr, "rate(http_requests_total[20s])");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use promql_parser::label::{METRIC_NAME, MatchOp};
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::Deserialize;
use serde_json::Value;

/// Grafana's built-in variables in dashboard queries, with the values Grafana gives them for a
/// dashboard's last hour at `interval` (the datasource's `timeInterval`, which `$__interval` is
/// never below): `$__interval` is `interval`, `$__rate_interval` four of it.
fn grafana_variables(interval: Duration) -> [(&'static str, String); 3] {
    let interval = interval.as_secs();
    [
        ("__rate_interval", format!("{}s", 4 * interval)),
        ("__interval", format!("{interval}s")),
        ("__range", "1h".to_owned()),
    ]
}

/// `expr` with Grafana's built-in variables replaced by the values Grafana gives them for the last
/// hour at `interval` (whole seconds); `Err` names the first variable it cannot replace (a `$`
/// before anything else is a regex anchor).
pub fn substitute(expr: &str, interval: Duration) -> Result<String, String> {
    let mut expr = expr.to_owned();
    for (variable, value) in grafana_variables(interval) {
        expr = expr
            .replace(&format!("${{{variable}}}"), &value)
            .replace(&format!("${variable}"), &value);
    }
    match expr.find('$') {
        Some(at)
            if expr[at + 1..]
                .starts_with(|c: char| c == '{' || c == '_' || c.is_ascii_alphabetic()) =>
        {
            Err(expr[at..]
                .chars()
                .take_while(|c| matches!(c, '$' | '{' | '}' | '_') || c.is_alphanumeric())
                .collect())
        }
        _ => Ok(expr),
    }
}

/// What is read of a dashboard, whatever panel or row nests it.
#[derive(Debug, Default)]
pub struct Dashboard {
    /// Each query's `expr`, with the panel around it.
    pub targets: Vec<Target>,
    /// The uid of every `"datasource"`: `{"type": …, "uid": …}` or a bare uid string.
    pub uids: BTreeSet<String>,
}

/// One query of a panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub title: String,
    /// The `type` of the nearest `"datasource"` object around the query (the target's own, else
    /// its panel's), e.g. `prometheus` or `loki`; `None` when none names one.
    pub datasource: Option<String>,
    pub expr: String,
}

impl Dashboard {
    pub fn parse(text: &str) -> serde_json::Result<Self> {
        let json: Value = serde_json::from_str(text)?;
        let mut dashboard = Dashboard::default();
        dashboard.walk(&json, "", None);
        Ok(dashboard)
    }

    fn walk(&mut self, json: &Value, title: &str, datasource: Option<&str>) {
        match json {
            Value::Object(object) => {
                let title = object.get("title").and_then(Value::as_str).unwrap_or(title);
                let datasource = object
                    .get("datasource")
                    .and_then(|reference| reference.get("type"))
                    .and_then(Value::as_str)
                    .or(datasource);
                for (key, value) in object {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => self.targets.push(Target {
                            title: title.to_owned(),
                            datasource: datasource.map(str::to_owned),
                            expr: expr.clone(),
                        }),
                        ("datasource", Value::String(uid)) => {
                            self.uids.insert(uid.clone());
                        }
                        ("datasource", Value::Object(reference)) => self.uids.extend(
                            reference
                                .get("uid")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        ),
                        _ => self.walk(value, title, datasource),
                    }
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|item| self.walk(item, title, datasource)),
            _ => {}
        }
    }
}

/// A Prometheus rule file.
#[derive(Debug, Deserialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
pub struct Group {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
pub struct Rule {
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// `("alert", name)`, `("record", name)`, or `("rule", "without a name")`.
    pub fn kind_and_name(&self) -> (&'static str, &str) {
        match (&self.alert, &self.record) {
            (Some(alert), _) => ("alert", alert),
            (None, Some(record)) => ("record", record),
            (None, None) => ("rule", "without a name"),
        }
    }
}

impl RuleFile {
    pub fn parse(text: &str) -> serde_yaml::Result<Self> {
        serde_yaml::from_str(text)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|group| &group.rules)
    }
}

/// Where a query is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A dashboard panel, by its title.
    Panel { title: String },
    /// A rule: `kind` is `alert` or `record` (see [`Rule::kind_and_name`]).
    Rule { kind: &'static str, name: String },
}

/// `panel "Title"` or `alert Name`.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Panel { title } => write!(f, "panel {title:?}"),
            Origin::Rule { kind, name } => write!(f, "{kind} {name}"),
        }
    }
}

/// One query of a dashboard or a rule file, as written (Grafana's variables not substituted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The file it is in, as the caller named it.
    pub file: String,
    pub origin: Origin,
    /// A panel's datasource type (see [`Target::datasource`]); `prometheus` for a rule.
    pub datasource: Option<String>,
    pub expr: String,
}

/// The language of a [`Query`], by its datasource's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Language {
    /// Prometheus, also for a panel that names no datasource (Grafana's default is Prometheus).
    Promql,
    /// Loki.
    Logql,
    /// Any other datasource type (`tempo`: TraceQL).
    Other(String),
}

impl Query {
    pub fn language(&self) -> Language {
        match self.datasource.as_deref() {
            None | Some("prometheus") => Language::Promql,
            Some("loki") => Language::Logql,
            Some(other) => Language::Other(other.to_owned()),
        }
    }
}

/// The queries of dashboard `file` (its text: `text`), one per target.
pub fn dashboard_queries(file: &str, text: &str) -> serde_json::Result<Vec<Query>> {
    Ok(Dashboard::parse(text)?
        .targets
        .into_iter()
        .map(|target| Query {
            file: file.to_owned(),
            origin: Origin::Panel {
                title: target.title,
            },
            datasource: target.datasource,
            expr: target.expr,
        })
        .collect())
}

/// The queries of rule file `file` (its text: `text`), one per rule with an `expr`.
pub fn rule_queries(file: &str, text: &str) -> serde_yaml::Result<Vec<Query>> {
    Ok(RuleFile::parse(text)?
        .rules()
        .filter_map(|rule| {
            let (kind, name) = rule.kind_and_name();
            Some(Query {
                file: file.to_owned(),
                origin: Origin::Rule {
                    kind,
                    name: name.to_owned(),
                },
                datasource: Some("prometheus".to_owned()),
                expr: rule.expr.clone()?,
            })
        })
        .collect())
}

/// Metric names and `job="…"` values of every selector in a PromQL expression.
#[derive(Debug, Default)]
pub struct Selectors {
    pub names: BTreeSet<String>,
    pub jobs: BTreeSet<String>,
}

impl Selectors {
    /// Those of `expr`.
    pub fn of(expr: &Expr) -> Self {
        let mut selectors = Self::default();
        walk_expr(&mut selectors, expr).expect("collecting selectors cannot fail");
        selectors
    }

    fn add(&mut self, selector: &VectorSelector) {
        let equal = |label: &str| {
            let matchers = selector.matchers.find_matchers(label).into_iter();
            matchers
                .filter(|matcher| matcher.op == MatchOp::Equal)
                .map(|matcher| matcher.value)
        };
        self.names
            .extend(selector.name.clone().into_iter().chain(equal(METRIC_NAME)));
        self.jobs.extend(equal("job"));
    }
}

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(selector) => self.add(selector),
            Expr::MatrixSelector(matrix) => self.add(&matrix.vs),
            _ => {}
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: Duration = Duration::from_secs(5);

    /// Each target is read with its panel's title and the nearest datasource type, nested in
    /// rows at any depth; uids come from objects and bare strings.
    #[test]
    fn targets_keep_their_panel_and_datasource() {
        let dashboard = Dashboard::parse(
            r#"{"panels": [{"title": "Row", "datasource": {"type": "prometheus", "uid": "prometheus"},
                "panels": [{"title": "Requests", "targets": [{"expr": "up"},
                    {"datasource": {"type": "loki", "uid": "loki"}, "expr": "{job=\"api\"}"}]},
                    {"title": "Bare", "datasource": "prometheus", "targets": [{"expr": "x"}]}]}]}"#,
        )
        .unwrap();
        let found: Vec<(&str, Option<&str>, &str)> = dashboard
            .targets
            .iter()
            .map(|t| (t.title.as_str(), t.datasource.as_deref(), t.expr.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("Requests", Some("prometheus"), "up"),
                ("Requests", Some("loki"), "{job=\"api\"}"),
                ("Bare", Some("prometheus"), "x"),
            ]
        );
        assert_eq!(
            dashboard.uids.into_iter().collect::<Vec<_>>(),
            ["loki", "prometheus"]
        );
    }

    /// Rules without an `expr` give no query; each query says which rule it is.
    #[test]
    fn rules_name_their_queries() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n      - record: job:up\n        expr: sum(up)\n      - alert: Empty\n";
        let origins: Vec<String> = rule_queries("r.yml", text)
            .unwrap()
            .iter()
            .map(|query| format!("{}: {}", query.origin, query.expr))
            .collect();
        assert_eq!(origins, ["alert Down: up == 0", "record job:up: sum(up)"]);
    }

    /// Names come from bare names and `__name__="…"`; jobs only from `job="…"`, not from regexes.
    #[test]
    fn selectors_name_metrics_and_jobs() {
        let expr = promql_parser::parser::parse(
            r#"rate(a_total{job="api"}[5m]) / on() {__name__="b", job=~"w.*"}"#,
        )
        .unwrap();
        let selectors = Selectors::of(&expr);
        assert_eq!(
            selectors.names.into_iter().collect::<Vec<_>>(),
            ["a_total", "b"]
        );
        assert_eq!(selectors.jobs.into_iter().collect::<Vec<_>>(), ["api"]);
    }

    /// Grafana's variables become values; another variable is named; a regex anchor stays.
    #[test]
    fn grafana_variables_are_substituted() {
        assert_eq!(
            substitute("rate(x[$__rate_interval]) + increase(x[${__range}])", FIVE).unwrap(),
            "rate(x[20s]) + increase(x[1h])"
        );
        assert_eq!(substitute("rate(x[$window])", FIVE).unwrap_err(), "$window");
        assert_eq!(
            substitute(r#"up{instance=~".+:8080$"}"#, FIVE).unwrap(),
            r#"up{instance=~".+:8080$"}"#
        );
    }
}
