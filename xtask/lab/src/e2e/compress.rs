//! The shipped rule files with time compressed, for the live alert test: every `for:` and every
//! range or subquery window of every expression divided by one scale, thresholds untouched, so
//! an alert that needs 5 minutes of 5xx fires after 10 seconds of them. The files are changed
//! through their YAML and PromQL syntax trees (serde_yaml, promql-parser), never as text.

use std::time::Duration;

use anyhow::Context as _;
use promql_parser::parser::{self, Expr, Offset};
use promql_parser::util::visitor::{ExprVisitorMut, walk_expr_mut};
use serde_yaml::Value;

/// A rule file (`groups: [{rules: [...]}]`) with each rule's `for:` and `expr` windows divided
/// by `scale`, each at least one second.
pub fn rule_file(text: &str, scale: u32) -> anyhow::Result<String> {
    let mut file: Value = serde_yaml::from_str(text).context("parse the rule file")?;
    let groups = file
        .get_mut("groups")
        .and_then(Value::as_sequence_mut)
        .context("a rule file has `groups:`")?;
    for group in groups {
        let Some(rules) = group.get_mut("rules").and_then(Value::as_sequence_mut) else {
            continue;
        };
        for rule in rules {
            if let Some(pending) = rule.get_mut("for") {
                let text = pending.as_str().context("`for:` is a duration")?;
                *pending = Value::from(duration(text, scale)?);
            }
            if let Some(expr) = rule.get_mut("expr") {
                let text = expr.as_str().context("`expr:` is PromQL")?;
                *expr = Value::from(expression(text, scale)?);
            }
        }
    }
    Ok(serde_yaml::to_string(&file)?)
}

/// A PromQL expression with every window divided by `scale`.
fn expression(text: &str, scale: u32) -> anyhow::Result<String> {
    let mut expr = parser::parse(text).map_err(|err| anyhow::anyhow!("{err}: {text}"))?;
    walk_expr_mut(&mut Scale(scale), &mut expr).map_err(|err: anyhow::Error| err)?;
    Ok(expr.to_string())
}

/// A Prometheus duration (`5m`, `1h30m`) divided by `scale`, as Prometheus writes durations.
fn duration(text: &str, scale: u32) -> anyhow::Result<String> {
    let parsed = promql_parser::util::parse_duration(text)
        .map_err(|err| anyhow::anyhow!("`{text}` is not a duration: {err}"))?;
    Ok(promql_parser::util::display_duration(&shorter(
        parsed, scale,
    )))
}

fn shorter(window: Duration, scale: u32) -> Duration {
    // Whole seconds: Prometheus' smallest sensible window at a 1 s scrape interval.
    Duration::from_secs((window / scale).as_secs().max(1))
}

struct Scale(u32);

impl ExprVisitorMut for Scale {
    type Error = anyhow::Error;

    fn pre_visit(&mut self, expr: &mut Expr) -> anyhow::Result<bool> {
        let scale = self.0;
        match expr {
            Expr::MatrixSelector(matrix) => {
                matrix.range = shorter(matrix.range, scale);
                scale_offset(&mut matrix.vs.offset, scale);
            }
            Expr::VectorSelector(vector) => scale_offset(&mut vector.offset, scale),
            Expr::Subquery(subquery) => {
                subquery.range = shorter(subquery.range, scale);
                subquery.step = subquery.step.map(|step| shorter(step, scale));
                scale_offset(&mut subquery.offset, scale);
            }
            _ => {}
        }
        Ok(true)
    }
}

fn scale_offset(offset: &mut Option<Offset>, scale: u32) {
    *offset = offset.take().map(|offset| match offset {
        Offset::Pos(by) => Offset::Pos(shorter(by, scale)),
        Offset::Neg(by) => Offset::Neg(shorter(by, scale)),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_pending_periods_shrink_and_thresholds_stay() {
        let file = r#"
groups:
  - name: g
    rules:
      - alert: Ratio
        expr: |
          sum by (job) (rate(errors_total{status=~"5.."}[5m]))
            / sum by (job) (rate(requests_total[5m] offset 10m)) > 0.05
        for: 10m
        labels: {severity: critical}
      - record: slo:ratio_rate3d
        expr: max_over_time(up[3d:1h])
"#;
        let compressed: Value = serde_yaml::from_str(&rule_file(file, 30).unwrap()).unwrap();
        let rules = &compressed["groups"][0]["rules"];
        assert_eq!(rules[0]["for"], Value::from("20s"));
        let expr = rules[0]["expr"].as_str().unwrap();
        assert!(
            expr.contains("[10s]") && expr.contains("offset 20s"),
            "{expr}"
        );
        assert!(
            expr.contains("> 0.05") && expr.contains(r#"status=~"5..""#),
            "{expr}"
        );
        assert_eq!(rules[0]["labels"]["severity"], Value::from("critical"));
        let record = rules[1]["expr"].as_str().unwrap();
        assert!(record.contains("[2h24m:2m]"), "{record}");
    }

    /// Every shipped rule file compresses into expressions that parse again.
    #[test]
    fn the_shipped_rules_compress() {
        let dir = xtask::util::project_root().join("observability/prometheus/rules");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let compressed: Value = serde_yaml::from_str(&rule_file(&text, 30).unwrap()).unwrap();
            for group in compressed["groups"].as_sequence().unwrap() {
                for rule in group["rules"].as_sequence().unwrap() {
                    let expr = rule["expr"].as_str().unwrap();
                    if let Err(err) = parser::parse(expr) {
                        panic!("{}: {expr}: {err}", path.display());
                    }
                }
            }
        }
    }

    #[test]
    fn a_window_never_drops_below_one_second() {
        assert_eq!(duration("15s", 30).unwrap(), "1s");
        assert!(
            duration("soon", 30)
                .unwrap_err()
                .to_string()
                .contains("soon")
        );
        assert!(expression("rate(x[5m]", 30).is_err());
    }
}
