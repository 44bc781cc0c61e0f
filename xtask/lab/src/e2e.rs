//! `cargo xtask e2e`: proves that the app's metrics, traces and logs reach real backends.
//!
//! ```text
//! source .ci/images.env   # where no registry is reachable (CI here)
//! DOCKER_HOST=unix:///run/podman/podman.sock cargo xtask e2e --traces jaeger --logs victorialogs
//! ```
//!
//! Layout: `stack.rs` turns compose/'s services into otel-testkit container specs and derives
//! Prometheus' config; `apps.rs` builds and runs ampel-api and ampel-worker on the host (the
//! worker polls a `fake_github::FakeGithub`); `scenario.rs` drives one poll through the app and
//! runs the checks, each polled with a deadline (`otel_testkit::eventually`) through the kit's
//! clients behind its `TraceStore` and `LogStore` traits.

mod alerts;
pub(crate) mod apps;
#[cfg(test)]
mod bad_input;
mod browser;
pub(crate) mod no_loss;
mod panels;
#[cfg(test)]
mod sampling;
mod scenario;
pub(crate) mod stack;

pub use stack::Datastores;

use std::time::Instant;

use anyhow::Context as _;

use xtask::flags::{self, Signal};

impl crate::Run for flags::E2e {
    /// Runs the whole e2e: build, start the stack, one scenario, the table, clean up. Fails when
    /// a check fails, naming the signal and what was seen instead.
    fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new().context("start the Tokio runtime")?;
        if self.no_loss {
            return runtime.block_on(no_loss::run(&self));
        }
        if self.alerts {
            return runtime.block_on(alerts::run(&self, self.rounds));
        }
        if self.browser {
            return runtime.block_on(browser::run(&self));
        }
        runtime.block_on(async {
            let report = run_all(&self, &[("e2e", self.broken)]).await?.remove(0)?;
            println!("{report}");
            let failed: Vec<String> = report.failed().iter().map(ToString::to_string).collect();
            anyhow::ensure!(
                failed.is_empty(),
                "e2e failed: {} not seen; the details above say what was found instead",
                failed.join(", ")
            );
            Ok(())
        })
    }
}

/// Builds the apps, starts the stack, runs each `(run, broken signal)` on it at once, removes
/// the stack (unless `--keep`), and says where the time went. An `Err` in the list is a run that
/// could not run (see [`scenario::run`]).
async fn run_all(
    flags: &flags::E2e,
    runs: &[(&str, Option<Signal>)],
) -> anyhow::Result<Vec<anyhow::Result<scenario::Report>>> {
    let started = Instant::now();
    let binaries = apps::build(apps::Profile::Debug)?;
    let built = started.elapsed();
    let stack = stack::Stack::start(flags.traces, flags.logs).await?;
    let ready = started.elapsed();
    let scenarios = runs
        .iter()
        .map(|(run, broken)| scenario::run(&stack, &binaries, run, *broken));
    let reports = futures::future::join_all(scenarios).await;
    let scenarios_done = started.elapsed();
    stack.stop(flags.keep).await;
    eprintln!(
        "wall time {:.1}s: build {:.1}s, containers ready {:.1}s, scenario {:.1}s, clean-up {:.1}s",
        started.elapsed().as_secs_f64(),
        built.as_secs_f64(),
        (ready - built).as_secs_f64(),
        (scenarios_done - ready).as_secs_f64(),
        (started.elapsed() - scenarios_done).as_secs_f64(),
    );
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use otel_testkit::container;

    use super::*;
    use xtask::flags::Signal::{Flush, Logs, Metrics, Traces};

    /// Each check fails when its signal is switched off, and only that check (a lost trace also
    /// fails the flush check, which looks for a trace, and the exemplar check, whose span metrics
    /// come from the spans): metrics when the api is not scraped,
    /// traces when spans are not exported, logs when log records are not exported, flush when
    /// the api is SIGKILLed instead of SIGTERMed. A control run on the same stack must pass, so
    /// a failure is the break's doing and not the stack's. All runs share one set of
    /// containers and run at once, so the whole test takes about one deadline. Without an engine
    /// or an image it is skipped, and under `CI=true` it fails.
    #[test]
    fn each_check_fails_without_its_signal() {
        let flags::Command::E2e(flags) = flags::Xtask::parse_from(["xtask", "e2e"]).command else {
            unreachable!("parsed the e2e command");
        };
        // (run, what is switched off, the checks that must fail, what the failure must say)
        #[rustfmt::skip]
        let cases = [
            ("control", None, vec![], ""),
            ("no-metrics", Some(Metrics), vec![Metrics], "api is up"),
            ("no-traces", Some(Traces), vec![Traces, Flush], "not found"),
            ("no-logs", Some(Logs), vec![Logs], "no ampel-worker record"),
            ("sigkill", Some(Flush), vec![Flush], "after SIGKILL"),
        ];
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let reports = runtime.block_on(async {
            let images = stack::Stack::images(flags.traces, flags.logs).unwrap();
            let images: Vec<&str> = images.iter().map(String::as_str).collect();
            let test = "each_check_fails_without_its_signal (local images: `source .ci/images.env`; \
                        AMPEL_E2E_TRACES / AMPEL_E2E_LOGS pick the backends)";
            container::require_engine(test, &images).await?;
            let runs: Vec<_> = cases.iter().map(|(run, broken, ..)| (*run, *broken)).collect();
            Some(run_all(&flags, &runs).await.unwrap())
        });
        let Some(reports) = reports else { return };
        let mut wrong = Vec::new();
        for ((run, broken, expected, says), report) in cases.iter().zip(reports) {
            let report = report.unwrap_or_else(|err| panic!("run {run} could not run: {err:#}"));
            eprintln!("{report}");
            if report.failed() != *expected {
                wrong.push(format!(
                    "run {run}: expected failures {expected:?}, got {:?}",
                    report.failed()
                ));
            }
            // The broken signal's own check must say what was missing.
            let detail = report
                .checks
                .iter()
                .find(|check| Some(check.label) == *broken)
                .map_or(String::new(), otel_testkit::checks::Check::detail);
            if !detail.contains(says) {
                wrong.push(format!(
                    "run {run}: its failure should say {says:?}: {detail:?}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
