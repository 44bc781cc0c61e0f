//! `cargo xtask obs-up`: start the local stack and wait until every service answers.
//!
//! ```text
//! cargo xtask obs-up            # Grafana, Loki, Tempo
//! cargo xtask obs-up --peers    # Jaeger, VictoriaLogs instead
//! ```
//!
//! Steps: find compose (`engine.rs`); build the app images when asked or missing (with
//! `AMPEL_APP_TARGET_SUFFIX=-prebuilt`, compile the binaries and build the page on the host
//! first); `compose up -d`; run every service's compose healthcheck (`ready.rs`) until all pass
//! or the deadline passes; print the URLs. Never `up --wait`: Podman without systemd never runs
//! healthchecks, so it would hang.

pub mod ready;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use otel_testkit::eventually;

use crate::compose::{ComposeFile, Service};
use crate::engine::{Compose, Variant};
use crate::flags;
use ready::Target;

/// The packages whose binaries the Dockerfile's `*-prebuilt` stages copy from target/release/.
const APP_PACKAGES: [&str; 3] = ["ampel-api", "ampel-worker", "alert-catcher"];

/// How often the containers' states are read while waiting (an exited container with no restart
/// policy ends the wait early).
const STATE_INTERVAL: Duration = Duration::from_secs(2);

/// How many log lines of a failed service are shown.
const LOG_LINES: u32 = 30;

impl flags::ObsUp {
    pub fn run(self) -> anyhow::Result<()> {
        let variant = if self.peers {
            Variant::Peers
        } else {
            Variant::Grafana
        };
        let model = variant.model()?;
        let services: Vec<(&String, &Service)> = model
            .active(&[])
            .filter(|(_, service)| !(self.no_app && service.build.is_some()))
            .collect();
        // Every check is resolved before anything starts, so a service without one fails at once.
        let targets = services
            .iter()
            .map(|(name, service)| Target::new(name, service))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let compose = Compose::find(self.stack.engine, variant)?;
        if !self.no_app {
            build_apps(&compose, &model, self.build)?;
        }

        let started = Instant::now();
        let mut up = vec!["up", "-d"];
        if self.no_app {
            up.extend(services.iter().map(|(name, _)| name.as_str()));
        }
        compose.run("start the stack", &up).context(
            "compose could not start the stack (output above): a port may be taken (`ss -ltnp`; \
             the other variant still running? `cargo xtask obs-down`), or an image missing (set \
             its AMPEL_*_IMAGE; on CI here `source .ci/images.env`)",
        )?;
        let deadline = Duration::from_secs(self.timeout);
        let restarts: BTreeMap<String, bool> = services
            .iter()
            .map(|(name, service)| {
                let restarts = service
                    .restart
                    .as_deref()
                    .is_some_and(|policy| policy != "no");
                (name.to_string(), restarts)
            })
            .collect();
        let outcome = wait(&compose, &targets, &restarts, started, deadline)?;
        match outcome {
            Wait::Ready(times) => {
                let total = times.values().max().copied().unwrap_or_default();
                print_services(&targets, &times);
                eprintln!(
                    "\nall {} services ready {:.1} s after `up -d`. Next: `cargo xtask status`, `cargo xtask obs-down`",
                    targets.len(),
                    total.as_secs_f64()
                );
                Ok(())
            }
            Wait::Failed(failures) => {
                for (service, reason) in &failures {
                    eprintln!(
                        "\n--- {service}: {reason}\n--- its last {LOG_LINES} log lines (`{}`):",
                        compose.display(&["logs", "--tail", &LOG_LINES.to_string(), service])
                    );
                    eprintln!("{}", compose.logs(service, LOG_LINES).trim_end());
                }
                let names: Vec<&str> = failures.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "wait for the stack: {} not ready (logs above). Next: fix the cause and run \
                     `cargo xtask obs-up` again (running services stay up); `cargo xtask status` \
                     shows every service; `cargo xtask obs-down` stops them",
                    names.join(", ")
                )
            }
        }
    }
}

/// Builds the images of the services compose builds, when `force`d or when one is missing.
fn build_apps(compose: &Compose, model: &ComposeFile, force: bool) -> anyhow::Result<()> {
    let apps: Vec<(&String, String)> = model
        .active(&[])
        .filter(|(_, service)| service.build.is_some())
        .filter_map(|(name, service)| Some((name, service.resolved_image()?)))
        .collect();
    let missing: Vec<&str> = apps
        .iter()
        .filter(|(_, image)| !compose.has_image(image))
        .map(|(_, image)| image.as_str())
        .collect();
    if !force && missing.is_empty() {
        return Ok(());
    }
    if !missing.is_empty() {
        eprintln!("building the app images ({} missing)", missing.join(", "));
    }
    // The -prebuilt Dockerfile targets only copy target/release/* and frontend/dist, so build
    // those first.
    if std::env::var("AMPEL_APP_TARGET_SUFFIX").as_deref() == Ok("-prebuilt") {
        let mut args: Vec<String> = ["build", "--release", "--locked"].map(Into::into).to_vec();
        for package in APP_PACKAGES {
            args.extend(["-p".into(), package.into()]);
        }
        crate::util::run(
            "build the app binaries on the host (AMPEL_APP_TARGET_SUFFIX=-prebuilt)",
            &crate::util::cargo(),
            &args,
            &[],
        )?;
        crate::web::build()?;
    }
    let names: Vec<&str> = apps.iter().map(|(name, _)| name.as_str()).collect();
    compose.build("build the app images", &names).context(
        "the app images did not build (output above); without a registry, build the binaries on \
         the host instead: AMPEL_APP_TARGET_SUFFIX=-prebuilt AMPEL_RUNTIME_BASE_IMAGE=<a local \
         Debian bookworm image> cargo xtask obs-up --build (compose/README.md)",
    )
}

/// How the wait ended.
enum Wait {
    /// How long after `up -d` each service first passed its check.
    Ready(BTreeMap<String, Duration>),
    /// The services that did not, with the last thing seen.
    Failed(BTreeMap<String, String>),
}

/// Runs every target's check until all pass, the deadline passes, or a container exits for good.
/// Progress goes to stderr: a line when a service is ready, and what a waiting one last showed.
fn wait(
    compose: &Compose,
    targets: &[Target],
    restarts: &BTreeMap<String, bool>,
    started: Instant,
    deadline: Duration,
) -> anyhow::Result<Wait> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let http = ready::http_client()?;
    eprintln!(
        "waiting for {} services to pass their healthchecks",
        targets.len()
    );
    runtime.block_on(async {
        let checks = futures::future::join_all(targets.iter().map(|target| {
            let http = &http;
            async move {
                let what = format!("{} ready", target.service);
                let ready = eventually(&what, started, deadline, || async {
                    target.check(compose, http).await.map_err(anyhow::Error::msg)
                })
                .await;
                if let Ok(ready) = &ready {
                    let after = ready.after.as_secs_f64();
                    eprintln!("  {:<18} ready after {after:.1} s", target.service);
                }
                ready
            }
        }));
        let watch = async {
            let mut every = tokio::time::interval(STATE_INTERVAL);
            loop {
                every.tick().await;
                match exited_for_good(compose, targets, restarts).await {
                    Ok(exited) if !exited.is_empty() => return Ok(exited),
                    Ok(_) => {}
                    Err(err) => return Err(err),
                }
            }
        };
        tokio::select! {
            results = checks => {
                let mut ready = BTreeMap::new();
                let mut failed = BTreeMap::new();
                for (target, result) in targets.iter().zip(results) {
                    let service = target.service.clone();
                    match result {
                        Ok(visible) => { ready.insert(service, visible.after); }
                        Err(timed_out) => {
                            let waited = timed_out.waited.as_secs();
                            let seen = timed_out.last_seen;
                            failed.insert(service, format!("not ready {waited} s after `up -d`; last check: {seen}"));
                        }
                    }
                }
                Ok(if failed.is_empty() { Wait::Ready(ready) } else { Wait::Failed(failed) })
            }
            exited = watch => exited.map(Wait::Failed),
        }
    })
}

/// The containers that have exited and that compose will not restart.
async fn exited_for_good(
    compose: &Compose,
    targets: &[Target],
    restarts: &BTreeMap<String, bool>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let compose = compose.clone();
    let containers = tokio::task::spawn_blocking(move || compose.containers())
        .await
        .context("read the containers' states")??;
    let exited: BTreeMap<String, String> = containers
        .iter()
        .filter(|container| {
            targets
                .iter()
                .any(|target| target.service == container.service)
        })
        .filter(|container| matches!(container.state.as_str(), "exited" | "dead"))
        .filter(|container| !restarts.get(&container.service).copied().unwrap_or(false))
        .map(|container| {
            (
                container.service.clone(),
                format!("the container stopped: {}", container.describe()),
            )
        })
        .collect();
    Ok(exited)
}

/// Prints one row per service: name, URL, and how long it took to answer.
fn print_services(targets: &[Target], times: &BTreeMap<String, Duration>) {
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|target| {
            let time = times
                .get(&target.service)
                .map(|time| format!("{:.1} s", time.as_secs_f64()))
                .unwrap_or_default();
            vec![target.service.clone(), target.url.clone(), time]
        })
        .collect();
    print_table(&["SERVICE", "URL", "READY AFTER"], &rows);
}

/// A plain left-aligned table on stdout.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
