//! The rules file: per SLO one group with the error ratio over each window the alerts read
//! (recording rules `slo:sli_error:ratio_rate<window>`) and over the SLO's window, then the two
//! burn-rate alerts of the SRE workbook ("Alerting on SLOs", multiwindow, multi-burn-rate): page
//! when the budget burns 14.4x over 1h and 5m or 6x over 6h and 30m, ticket when it burns 3x over
//! 1d and 2h or 1x over 3d and 6h. The short window makes an alert resolve soon after the errors
//! stop.

use std::fmt::Write as _;

use crate::{Objective, Output};

/// One condition of an alert: the budget burns faster than `factor` over both windows.
pub struct Burn {
    pub factor: f64,
    pub long: &'static str,
    pub short: &'static str,
}

/// One alert per SLO: its name's suffix, its severity, how long it must hold, its conditions.
pub struct BurnAlert {
    pub suffix: &'static str,
    pub severity: &'static str,
    /// What the severity does to a human, for the description.
    pub action: &'static str,
    pub wait: &'static str,
    pub burns: [Burn; 2],
}

/// The workbook's table; `for:` as it suggests, so a spike of one evaluation does not page.
pub const ALERTS: [BurnAlert; 2] = [
    BurnAlert {
        suffix: "FastBurn",
        severity: "critical",
        action: "Pages",
        wait: "2m",
        burns: [
            Burn {
                factor: 14.4,
                long: "1h",
                short: "5m",
            },
            Burn {
                factor: 6.0,
                long: "6h",
                short: "30m",
            },
        ],
    },
    BurnAlert {
        suffix: "SlowBurn",
        severity: "info",
        action: "Opens a ticket",
        wait: "15m",
        burns: [
            Burn {
                factor: 3.0,
                long: "1d",
                short: "2h",
            },
            Burn {
                factor: 1.0,
                long: "3d",
                short: "6h",
            },
        ],
    },
];

/// Every window an alert reads, shortest first.
pub fn windows() -> Vec<&'static str> {
    let mut windows: Vec<&'static str> = ALERTS
        .iter()
        .flat_map(|alert| &alert.burns)
        .flat_map(|burn| [burn.long, burn.short])
        .collect();
    windows.sort_by_key(|window| {
        promql_parser::util::parse_duration(window).expect("the table's windows are durations")
    });
    windows.dedup();
    windows
}

/// The recorded error ratio over `window`.
pub fn ratio_name(window: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// The alert's name, e.g. `SloApiAvailabilityFastBurn`.
pub fn alert_name(slo: &Objective, alert: &BurnAlert) -> String {
    format!("Slo{}{}", slo.camel_name(), alert.suffix)
}

/// A YAML scalar in double quotes: a JSON string is one.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The rules file's text (Prometheus' rule file format).
pub fn file(objectives: &[Objective], output: &Output) -> String {
    let mut out = String::new();
    for line in &output.rules_header {
        writeln!(out, "# {line}").unwrap();
    }
    out.push_str("groups:\n");
    for slo in objectives {
        let labels = [
            ("slo", slo.name.as_str()),
            ("service", slo.service.as_str()),
        ];
        writeln!(out, "  - name: slo-{}", slo.name).unwrap();
        out.push_str("    rules:\n");
        let windows = windows();
        for window in windows.iter().copied().chain([slo.window.range()]) {
            writeln!(out, "      - record: {}", ratio_name(window)).unwrap();
            out.push_str("        expr: |\n");
            for line in slo.error_ratio(window) {
                writeln!(out, "          {line}").unwrap();
            }
            out.push_str("        labels:\n");
            for (key, value) in labels {
                writeln!(out, "          {key}: {value}").unwrap();
            }
        }
        for alert in &ALERTS {
            out.push('\n');
            alert_rule(&mut out, slo, alert, output);
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

fn alert_rule(out: &mut String, slo: &Objective, alert: &BurnAlert, output: &Output) {
    let name = alert_name(slo, alert);
    let budget = slo.budget();
    writeln!(out, "      - alert: {name}").unwrap();
    out.push_str("        expr: |\n");
    for (i, burn) in alert.burns.iter().enumerate() {
        if i > 0 {
            out.push_str("          or\n");
        }
        out.push_str("          (\n");
        for (j, window) in [burn.long, burn.short].into_iter().enumerate() {
            if j > 0 {
                out.push_str("            and\n");
            }
            writeln!(
                out,
                "              {}{{slo=\"{}\"}} / {budget} > {}",
                ratio_name(window),
                slo.name,
                burn.factor
            )
            .unwrap();
        }
        out.push_str("          )\n");
    }
    writeln!(out, "        for: {}", alert.wait).unwrap();
    out.push_str("        labels:\n");
    writeln!(out, "          severity: {}", alert.severity).unwrap();
    writeln!(out, "          service: {}", slo.service).unwrap();
    writeln!(out, "          slo: {}", slo.name).unwrap();
    let conditions: Vec<String> = alert
        .burns
        .iter()
        .map(|burn| format!("{}x over {} and {}", burn.factor, burn.long, burn.short))
        .collect();
    let fastest = &alert.burns[0];
    let days = promql_parser::util::parse_duration(slo.window.range())
        .expect("a window is a duration")
        .as_secs_f64()
        / 86_400.0;
    let long: Vec<&str> = alert.burns.iter().map(|burn| burn.long).collect();
    let summary = format!(
        "SLO {}: the error budget burns {{{{ $value | printf \"%.1f\" }}}}x too fast",
        slo.name
    );
    let description = format!(
        "SLO {}, {} over {}, good events: {} Over the last {} bad events spend the budget {{{{ $value | printf \"%.1f\" }}}}x as fast as the objective allows; at {}x the {}-day budget is gone in {:.1} days. {} at {}. The dashboard \"{}\" shows the burn rate per window.",
        slo.name,
        slo.percent(),
        slo.window.range(),
        slo.description,
        long.join(" or "),
        fastest.factor,
        days,
        days / fastest.factor,
        alert.action,
        conditions.join(", or "),
        output.dashboard.title
    );
    out.push_str("        annotations:\n");
    writeln!(out, "          summary: {}", quoted(&summary)).unwrap();
    writeln!(out, "          description: {}", quoted(&description)).unwrap();
    writeln!(
        out,
        "          runbook_url: {}",
        quoted(&format!("{}{}", output.runbook_url, name.to_lowercase()))
    )
    .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windows the workbook's table reads, in order; the SLO window is added per SLO.
    #[test]
    fn windows_come_from_the_table() {
        assert_eq!(windows(), ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]);
    }
}
