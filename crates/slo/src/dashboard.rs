//! The dashboard (Grafana's JSON model): per SLO a row with the error budget left over the SLO's
//! window, the burn rate over each alert window (with the alerts' factors as threshold lines) and
//! the error ratio against the budget. It reads the recording rules of `rules.rs`, so it shows
//! what the alerts see.

use serde_json::{Value, json};

use crate::rules::{self, ALERTS};
use crate::{Objective, Output};

/// The dashboard's text.
pub fn file(objectives: &[Objective], output: &Output) -> String {
    let dashboard = &output.dashboard;
    // The data source every panel uses.
    let prometheus = json!({ "type": "prometheus", "uid": dashboard.datasource_uid });
    let mut panels = Vec::new();
    let mut y = 0;
    for slo in objectives {
        panels.push(json!({
            "type": "row",
            "title": format!("{} ({}): {} over {}", slo.name, slo.service, slo.percent(), slo.window.range()),
            "collapsed": false,
            "gridPos": { "h": 1, "w": 24, "x": 0, "y": y },
            "panels": []
        }));
        y += 1;
        panels.push(budget_left(slo, y, &prometheus));
        panels.push(burn_rate(slo, y, &prometheus));
        panels.push(error_ratio(slo, y, &prometheus));
        y += 8;
    }
    for (id, panel) in panels.iter_mut().enumerate() {
        panel["id"] = json!(id + 1);
    }
    let dashboard = json!({
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": dashboard.tags,
        "timezone": "browser",
        "editable": false,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 41,
        "version": 1,
        "time": { "from": "now-24h", "to": "now" },
        "timepicker": { "refresh_intervals": ["10s", "30s", "1m", "5m", "15m"] },
        "templating": { "list": [] },
        "annotations": { "list": [] },
        "links": dashboard.links,
        "panels": panels
    });
    let mut text = serde_json::to_string_pretty(&dashboard).expect("JSON serialises");
    text.push('\n');
    text
}

/// One query of a panel.
fn target(ref_id: usize, expr: String, legend: &str, datasource: &Value) -> Value {
    let ref_id = char::from(b'A' + u8::try_from(ref_id).expect("few queries per panel"));
    json!({
        "refId": ref_id.to_string(),
        "datasource": datasource,
        "expr": expr,
        "legendFormat": legend
    })
}

/// The recorded error ratio of `slo` over `window`, as a selector.
fn ratio(slo: &Objective, window: &str) -> String {
    format!("{}{{slo=\"{}\"}}", rules::ratio_name(window), slo.name)
}

fn budget_left(slo: &Objective, y: usize, datasource: &Value) -> Value {
    let window = slo.window.range();
    json!({
        "type": "stat",
        "title": format!("{}: error budget left ({window})", slo.name),
        "description": format!("Share of the {window} error budget not yet spent: 1 - error ratio over {window} / (1 - objective). Below 0 the objective is missed. Good events: {}", slo.description),
        "datasource": datasource,
        "gridPos": { "h": 8, "w": 6, "x": 0, "y": y },
        "targets": [target(0, format!("1 - {} / {}", ratio(slo, window), slo.budget()), "__auto", datasource)],
        "fieldConfig": {
            "defaults": {
                "unit": "percentunit",
                "decimals": 1,
                "color": { "mode": "thresholds" },
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        { "color": "red", "value": null },
                        { "color": "orange", "value": 0 },
                        { "color": "green", "value": 0.25 }
                    ]
                }
            },
            "overrides": []
        },
        "options": {
            "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto"
        }
    })
}

fn burn_rate(slo: &Objective, y: usize, datasource: &Value) -> Value {
    let targets: Vec<Value> = rules::windows()
        .into_iter()
        .enumerate()
        .map(|(i, window)| {
            target(
                i,
                format!("{} / {}", ratio(slo, window), slo.budget()),
                window,
                datasource,
            )
        })
        .collect();
    // A line at each alert's factors: critical ones red, the ticket's orange.
    let mut burns: Vec<(f64, &str)> = ALERTS
        .iter()
        .flat_map(|alert| {
            let color = if alert.severity == "critical" {
                "red"
            } else {
                "orange"
            };
            alert.burns.iter().map(move |burn| (burn.factor, color))
        })
        .collect();
    burns.sort_by(|a, b| a.0.total_cmp(&b.0));
    let factors: Vec<String> = ALERTS
        .iter()
        .map(|alert| {
            let burns: Vec<String> = (alert.burns.iter())
                .map(|burn| format!("{}x over {} and {}", burn.factor, burn.long, burn.short))
                .collect();
            format!(
                "{} ({}): {}",
                rules::alert_name(slo, alert),
                alert.severity,
                burns.join(" or ")
            )
        })
        .collect();
    timeseries(
        format!("{}: burn rate per window", slo.name),
        format!(
            "Error ratio / (1 - objective): 1 spends the budget exactly over {}. {}.",
            slo.window.range(),
            factors.join("; ")
        ),
        json!({ "h": 8, "w": 12, "x": 6, "y": y }),
        "none",
        targets,
        &burns,
        datasource,
    )
}

fn error_ratio(slo: &Objective, y: usize, datasource: &Value) -> Value {
    let windows = ["5m", "1h", slo.window.range()];
    let targets: Vec<Value> = windows
        .into_iter()
        .enumerate()
        .map(|(i, window)| target(i, ratio(slo, window), window, datasource))
        .chain([target(
            windows.len(),
            format!("vector{}", slo.budget()),
            "budget",
            datasource,
        )])
        .collect();
    timeseries(
        format!("{}: error ratio", slo.name),
        format!(
            "Share of bad events over 5m, 1h and {}, and the share the budget allows (1 - objective). Good events: {}",
            slo.window.range(),
            slo.description
        ),
        json!({ "h": 8, "w": 6, "x": 18, "y": y }),
        "percentunit",
        targets,
        &[],
        datasource,
    )
}

/// A time series panel of `targets` in `unit`, green below a line at each `(value, color)`.
fn timeseries(
    title: String,
    description: String,
    grid_pos: Value,
    unit: &str,
    targets: Vec<Value>,
    lines: &[(f64, &str)],
    datasource: &Value,
) -> Value {
    let steps: Vec<Value> = std::iter::once(json!({ "color": "green", "value": null }))
        .chain(
            lines
                .iter()
                .map(|(value, color)| json!({ "color": color, "value": value })),
        )
        .collect();
    let thresholds_style = if lines.is_empty() { "off" } else { "line" };
    json!({
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": datasource,
        "gridPos": grid_pos,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": { "mode": "palette-classic" },
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 0,
                    "showPoints": "never",
                    "spanNulls": false,
                    "stacking": { "mode": "none", "group": "A" },
                    "thresholdsStyle": { "mode": thresholds_style }
                },
                "thresholds": { "mode": "absolute", "steps": steps },
                "min": 0
            },
            "overrides": []
        },
        "options": {
            "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
            "tooltip": { "mode": "multi", "sort": "desc" }
        }
    })
}
