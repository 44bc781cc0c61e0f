//! Rule files and alert expressions transformed for tests, through their YAML and PromQL syntax
//! trees (serde_yaml, promql-parser), never as text. [`compress`] divides a rule file's clock, so
//! an alert that needs 5 minutes of errors fires after 10 seconds of them; [`alert_parts`] is
//! what of an alert's expression must find series while nothing fires, so a healthy run proves
//! its metric names and labels.
//!
//! ```
//! # fn demo() -> anyhow::Result<()> {
//! use otel_testkit::prometheus::rules;
//! let file = "groups: [{name: g, rules: [{alert: Slow, expr: 'rate(x[5m]) > 1', for: 10m}]}]";
//! let fast = rules::compress(file, 30)?;
//! assert!(fast.contains("rate(x[10s]) > 1") && fast.contains("for: 20s"), "{fast}");
//! let parts = rules::alert_parts(promql_parser::parser::parse("a > 1 and b > 2").unwrap());
//! assert_eq!(parts.iter().map(ToString::to_string).collect::<Vec<_>>(), ["a", "b"]);
//! # Ok(()) }
//! ```

use std::time::Duration;

use anyhow::Context as _;
use promql_parser::parser::token::{T_LAND, T_LOR};
use promql_parser::parser::{self, BinaryExpr, Expr, Offset};
use promql_parser::util::visitor::{ExprVisitorMut, walk_expr_mut};
use serde_yaml::Value;

/// A rule file (`groups: [{rules: [...]}]`) on a compressed clock: each rule's `for:` and every
/// range, subquery window and step, and offset of its `expr` divided by `scale`, each at least
/// one second; thresholds and everything else untouched. Run it with a 1 s scrape and
/// evaluation interval to see alerts fire and resolve within a test's deadline.
pub fn compress(text: &str, scale: u32) -> anyhow::Result<String> {
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

/// What of an alert's expression must find series in a healthy run: each operand of a top-level
/// `and` or `or` (as multi-window burn-rate alerts are written), each [`without_threshold`].
/// `unless` stays whole: its right side is meant to be empty.
pub fn alert_parts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::Paren(paren) => alert_parts(*paren.expr),
        Expr::Binary(binary) if [T_LAND, T_LOR].contains(&binary.op.id()) => {
            let mut parts = alert_parts(*binary.lhs);
            parts.extend(alert_parts(*binary.rhs));
            parts
        }
        other => vec![without_threshold(other)],
    }
}

/// `expr` without a top-level comparison with a number (`x > 0.05`, `0 == x`): what the alert
/// compares, which has series whether or not the alert fires. Anything else as it is.
pub fn without_threshold(expr: Expr) -> Expr {
    match expr {
        Expr::Binary(binary) if binary.op.is_comparison_operator() => {
            match (*binary.lhs, *binary.rhs) {
                (Expr::NumberLiteral(_), side) | (side, Expr::NumberLiteral(_)) => side,
                (lhs, rhs) => Expr::Binary(BinaryExpr {
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                    ..binary
                }),
            }
        }
        other => other,
    }
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
        let compressed: Value = serde_yaml::from_str(&compress(file, 30).unwrap()).unwrap();
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
        assert!(compress("rules: []", 30).is_err());
    }

    /// A top-level comparison with a number goes, on either side, in each operand of a top-level
    /// `and`/`or`; any other expression stays.
    #[test]
    fn alerts_run_without_their_threshold() {
        let strip = |expr: &str| without_threshold(parser::parse(expr).unwrap()).to_string();
        assert_eq!(strip("up == 0"), "up");
        assert_eq!(
            strip("0.05 < sum(rate(x[5m])) / sum(rate(y[5m]))"),
            "sum(rate(x[5m])) / sum(rate(y[5m]))"
        );
        assert_eq!(strip("a > bool 1"), "a");
        assert_eq!(strip("a > b"), "a > b");
        assert_eq!(strip("a + 1"), "a + 1");
        let parts = |expr: &str| {
            let parts = alert_parts(parser::parse(expr).unwrap());
            parts.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert_eq!(
            parts("(a / 0.001 > 14.4 and b > 14.4) or c > 6"),
            ["a / 0.001", "b", "c"]
        );
        assert_eq!(parts("a > 1 unless b"), ["a > 1 unless b"]);
    }
}
