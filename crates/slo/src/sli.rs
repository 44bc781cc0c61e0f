//! An SLI held to the families of its service: each selector parsed as PromQL, naming a family
//! the service declares, only its labels and, for labels with a closed set of values, values it
//! takes; a latency threshold must be a bucket bound of the histogram, since a ratio at any
//! other bound cannot be read from the buckets.

use std::fmt;

use promql_parser::label::{METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};

use crate::spec::Sli;
use crate::{Family, Kind, Service};

/// Labels Prometheus adds to every scraped series, which a selector may use besides the family's.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// The error ratio of an SLI, as selectors the generator puts into `rate(...)`.
#[derive(Debug)]
pub(crate) enum ErrorRatio {
    Events { errors: String, total: String },
    Slower { fast: String, all: String },
}

/// The SLI as selectors, held to the families of `service` (`services`: all, for messages).
pub(crate) fn ratio(
    sli: &Sli,
    service: &Service,
    services: &[Service],
) -> Result<ErrorRatio, Vec<String>> {
    match sli {
        Sli::ErrorRatio { errors, total } => {
            let errors = Selector::read("errors", errors, service, services);
            let total = Selector::read("total", total, service, services);
            let mut problems = Vec::new();
            for selector in [&errors, &total].into_iter().flatten() {
                if selector.family.kind != Kind::Counter {
                    problems.push(format!(
                        "{} selects {}, a {}; an error ratio needs a counter (for a histogram, use the `latency` SLI)",
                        selector.role,
                        selector.family.name,
                        selector.family.kind.as_str()
                    ));
                }
            }
            match (errors, total) {
                (Ok(errors), Ok(total)) if problems.is_empty() => Ok(ErrorRatio::Events {
                    errors: errors.to_string(),
                    total: total.to_string(),
                }),
                (errors, total) => {
                    problems.extend(errors.err().into_iter().flatten());
                    problems.extend(total.err().into_iter().flatten());
                    Err(problems)
                }
            }
        }
        Sli::Latency {
            histogram,
            threshold,
        } => {
            let histogram = Selector::read("histogram", histogram, service, services)?;
            let Kind::Histogram { buckets } = &histogram.family.kind else {
                return Err(vec![format!(
                    "histogram selects {}, a {}; name a histogram family (without `_bucket`)",
                    histogram.family.name,
                    histogram.family.kind.as_str()
                )]);
            };
            if !buckets.contains(threshold) {
                let bounds: Vec<String> = buckets.iter().map(ToString::to_string).collect();
                return Err(vec![format!(
                    "threshold {threshold} is no bucket bound of {} (its buckets: {}), so the share of faster events cannot be read from it; use one of those bounds, or add the bound to the histogram's declaration",
                    histogram.family.name,
                    bounds.join(", ")
                )]);
            }
            Ok(ErrorRatio::Slower {
                fast: histogram.bucket(&le_matcher(*threshold)),
                all: histogram.bucket("le=\"+Inf\""),
            })
        }
    }
}

/// Selects the bucket of bound `le`. An exporter may write `le="1"` (Rust's
/// metrics-exporter-prometheus does), Prometheus 3 stores
/// `le="1.0"` (it normalises bounds to floats), so a whole-number bound matches both.
fn le_matcher(le: f64) -> String {
    if le.fract() == 0.0 {
        format!("le=~\"{le}(\\\\.0)?\"")
    } else {
        format!("le=\"{le}\"")
    }
}

/// A selector of the spec, parsed, naming a family of its service.
struct Selector<'a> {
    /// Which field of the SLI it is, for messages.
    role: &'static str,
    family: &'a Family,
    /// Its matchers, without the metric name.
    matchers: Vec<Matcher>,
}

impl<'a> Selector<'a> {
    fn read(
        role: &'static str,
        text: &str,
        service: &'a Service,
        services: &[Service],
    ) -> Result<Self, Vec<String>> {
        let selector = match promql_parser::parser::parse(text) {
            Ok(Expr::VectorSelector(selector))
                if selector.offset.is_none()
                    && selector.at.is_none()
                    && selector.matchers.or_matchers.is_empty() =>
            {
                selector
            }
            Ok(_) => {
                return Err(vec![format!(
                    "{role} {text:?} is not a plain selector such as metric{{label=\"value\"}}; the generator adds rate() and the windows"
                )]);
            }
            Err(err) => {
                return Err(vec![format!(
                    "{role} {text:?} does not parse as PromQL ({}); fix it",
                    err.trim()
                )]);
            }
        };
        let family = Self::family(role, &selector, service, services).map_err(|p| vec![p])?;
        let matchers: Vec<Matcher> = (selector.matchers.matchers.into_iter())
            .filter(|matcher| matcher.name != METRIC_NAME)
            .collect();
        let problems: Vec<String> = matchers
            .iter()
            .filter_map(|matcher| Self::label_problem(role, family, matcher))
            .collect();
        if problems.is_empty() {
            Ok(Self {
                role,
                family,
                matchers,
            })
        } else {
            Err(problems)
        }
    }

    /// The family the selector names, which `service` must declare.
    fn family(
        role: &str,
        selector: &VectorSelector,
        service: &'a Service,
        services: &[Service],
    ) -> Result<&'a Family, String> {
        let name = selector.name.clone().or_else(|| {
            let named = selector.matchers.find_matchers(METRIC_NAME).into_iter();
            named
                .filter(|matcher| matcher.op == MatchOp::Equal)
                .map(|matcher| matcher.value)
                .next()
        });
        let Some(name) = name else {
            return Err(format!(
                "{role} names no metric; start it with a family's name"
            ));
        };
        if let Some(family) = service.families.iter().find(|f| f.name == name) {
            return Ok(family);
        }
        let others: Vec<&str> = (services.iter())
            .filter(|other| other.families.iter().any(|f| f.name == name))
            .map(|other| other.name.as_str())
            .collect();
        if others.is_empty() {
            let known: Vec<&str> = service.families.iter().map(|f| f.name.as_str()).collect();
            Err(format!(
                "{role} selects {name}, which is no metric family {} declares (its families: {}); use one of those, or declare it where it is recorded",
                service.name,
                known.join(", ")
            ))
        } else {
            Err(format!(
                "{role} selects {name}, which {} exports, not {}; change the service or the metric",
                others.join(" and "),
                service.name
            ))
        }
    }

    /// What is wrong with one matcher: a label the family does not have, or a value it never takes.
    fn label_problem(role: &str, family: &Family, matcher: &Matcher) -> Option<String> {
        if TARGET_LABELS.contains(&matcher.name.as_str()) {
            return None;
        }
        let Some(label) = family.labels.iter().find(|l| l.name == matcher.name) else {
            let labels: Vec<&str> = family.labels.iter().map(|l| l.name.as_str()).collect();
            return Some(format!(
                "{role} matches label {}, which {} does not have (its labels: {}); use one of those",
                matcher.name,
                family.name,
                labels.join(", ")
            ));
        };
        let values = label.values.as_ref()?;
        let known = match matcher.op {
            MatchOp::Equal | MatchOp::NotEqual => values.contains(&matcher.value),
            MatchOp::Re(_) | MatchOp::NotRe(_) => values.iter().any(|v| matcher.is_match(v)),
        };
        (!known).then(|| {
            format!(
                "{role}: {matcher} matches none of the values {} declares for {} ({}); use those",
                family.name,
                label.name,
                values.join(", ")
            )
        })
    }

    /// The `_bucket` series of the histogram with one more matcher, `le`.
    fn bucket(&self, le: &str) -> String {
        let mut matchers: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        matchers.push(le.to_owned());
        format!("{}_bucket{{{}}}", self.family.name, matchers.join(","))
    }
}

impl fmt::Display for Selector<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let matchers: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        if matchers.is_empty() {
            write!(f, "{}", self.family.name)
        } else {
            write!(f, "{}{{{}}}", self.family.name, matchers.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole-number bound selects the bucket as the exporter writes it (`1`) and as
    /// Prometheus 3 stores it (`1.0`), and no other bucket.
    #[test]
    fn whole_number_bounds_match_both_spellings() {
        let selector = format!("x{{{}}}", le_matcher(1.0));
        let Ok(Expr::VectorSelector(selector)) = promql_parser::parser::parse(&selector) else {
            panic!("{selector} does not parse");
        };
        let le = &selector.matchers.matchers[0];
        let matched: Vec<&str> = ["1", "1.0", "10", "0.1", "1.5"]
            .into_iter()
            .filter(|bound| le.is_match(bound))
            .collect();
        assert_eq!(matched, ["1", "1.0"]);
        assert_eq!(le_matcher(0.25), "le=\"0.25\"");
    }
}
