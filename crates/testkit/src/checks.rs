//! The checks of one run as a table: what each looked for and where, whether and how soon it
//! was found, then what was found or what was seen instead.
//!
//! ```
//! use std::time::Duration;
//! use otel_testkit::checks::{Check, Checks};
//! use otel_testkit::{TimedOut, Visible};
//! let checks = Checks {
//!     title: "run one".to_owned(),
//!     checks: vec![
//!         Check {
//!             label: "traces",
//!             backend: "jaeger".to_owned(),
//!             outcome: Ok(Visible { value: "trace 4bf9…: 3 spans".to_owned(), after: Duration::from_millis(500) }),
//!         },
//!         Check {
//!             label: "logs",
//!             backend: "loki".to_owned(),
//!             outcome: Err(TimedOut { what: "logs".to_owned(), waited: Duration::from_secs(30), last_seen: "0 records".to_owned() }),
//!         },
//!     ],
//! };
//! assert_eq!(checks.failed(), ["logs"]);
//! println!("{checks}");
//! ```

use std::fmt;

use crate::eventually::{TimedOut, Visible};

/// One check: a probe polled with [`crate::eventually()`] until it passed or timed out.
#[derive(Debug)]
pub struct Check<L> {
    /// What the check is about (a signal, say).
    pub label: L,
    /// Where it looked (a backend).
    pub backend: String,
    /// What was found and how soon after the signal was produced; or what was seen instead.
    pub outcome: Result<Visible<String>, TimedOut>,
}

impl<L> Check<L> {
    /// What was found (on success) or what was seen instead (on failure).
    pub fn detail(&self) -> String {
        match &self.outcome {
            Ok(found) => found.value.clone(),
            Err(timed_out) => timed_out.to_string(),
        }
    }
}

/// The checks of one run, under a title.
#[derive(Debug)]
pub struct Checks<L> {
    pub title: String,
    pub checks: Vec<Check<L>>,
}

impl<L: Copy> Checks<L> {
    /// The labels of the checks that failed, in order.
    pub fn failed(&self) -> Vec<L> {
        self.checks
            .iter()
            .filter(|check| check.outcome.is_err())
            .map(|check| check.label)
            .collect()
    }
}

impl<L: fmt::Display> fmt::Display for Checks<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Columns as wide as their longest entry (a `Display` impl may ignore the width, so
        // labels are padded as text).
        let labels: Vec<String> = self
            .checks
            .iter()
            .map(|check| check.label.to_string())
            .collect();
        let label_width = labels.iter().map(String::len).max().unwrap_or(0).max(8);
        let backend_width = self
            .checks
            .iter()
            .map(|check| check.backend.len() + 1)
            .max()
            .unwrap_or(0)
            .max(13);
        writeln!(f, "{}:", self.title)?;
        writeln!(
            f,
            "  {:<label_width$} {:<backend_width$} found  time-to-visible",
            "signal", "backend"
        )?;
        for (check, label) in self.checks.iter().zip(&labels) {
            let (found, time) = match &check.outcome {
                Ok(found) => ("yes", format!("{:.1}s", found.after.as_secs_f64())),
                Err(_) => ("no", "-".to_owned()),
            };
            writeln!(
                f,
                "  {label:<label_width$} {:<backend_width$} {found:<6} {time}",
                check.backend
            )?;
        }
        for check in &self.checks {
            let verdict = if check.outcome.is_ok() {
                "found"
            } else {
                "FAILED"
            };
            writeln!(f, "  {} {verdict}: {}", check.label, check.detail())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The table lists every check with its time to visible, then each one's detail; only the
    /// failed ones are named by `failed`.
    #[test]
    fn prints_a_table_then_the_details() {
        let checks = Checks {
            title: "e2e run control".to_owned(),
            checks: vec![
                Check {
                    label: "traces",
                    backend: "jaeger".to_owned(),
                    outcome: Ok(Visible {
                        value: "trace 4bf9: 3 spans".to_owned(),
                        after: Duration::from_millis(450),
                    }),
                },
                Check {
                    label: "logs",
                    backend: "victorialogs".to_owned(),
                    outcome: Err(TimedOut {
                        what: "[control] logs".to_owned(),
                        waited: Duration::from_secs(30),
                        last_seen: "0 records".to_owned(),
                    }),
                },
            ],
        };
        assert_eq!(checks.failed(), ["logs"]);
        assert_eq!(
            checks.to_string(),
            "e2e run control:\n\
             \x20 signal   backend       found  time-to-visible\n\
             \x20 traces   jaeger        yes    0.5s\n\
             \x20 logs     victorialogs  no     -\n\
             \x20 traces found: trace 4bf9: 3 spans\n\
             \x20 logs FAILED: [control] logs: not seen within 30.0s; last seen: 0 records\n"
        );
    }

    /// A label or backend longer than the header widens its column.
    #[test]
    fn columns_fit_their_longest_entry() {
        let checks = Checks {
            title: "run".to_owned(),
            checks: vec![Check {
                label: "exemplars",
                backend: "prometheus, jaeger".to_owned(),
                outcome: Ok(Visible {
                    value: "found".to_owned(),
                    after: Duration::ZERO,
                }),
            }],
        };
        let table: Vec<String> = checks.to_string().lines().map(str::to_owned).collect();
        assert_eq!(
            table[1],
            "  signal    backend             found  time-to-visible"
        );
        assert_eq!(table[2], "  exemplars prometheus, jaeger  yes    0.0s");
    }
}
