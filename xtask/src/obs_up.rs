//! `cargo xtask obs-up`: start the local stack and wait until every service answers.
//!
//! ```text
//! cargo xtask obs-up            # Grafana, Loki, Tempo
//! cargo xtask obs-up --peers    # Jaeger, VictoriaLogs instead
//! ```
//!
//! Steps: find compose (`engine.rs`); build the app images when asked or missing (with
//! `AMPEL_APP_TARGET_SUFFIX=-prebuilt`, compile the binaries on the host first); `compose up -d`;
//! poll every service with its probe (`probe.rs`) until all answer or the deadline passes; print
//! the URLs. Never `up --wait`: Podman without systemd never runs healthchecks, so it would hang.

pub mod probe;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::compose::{ComposeFile, Service};
use crate::engine::{Compose, Variant};
use crate::flags;
use probe::Target;

/// The packages whose binaries the Dockerfile's `*-prebuilt` stages copy from target/release/.
const APP_PACKAGES: [&str; 2] = ["ampel-api", "ampel-worker"];

/// How often a service that is not ready yet is asked again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

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
        // Every probe is resolved before anything starts, so a missing row fails at once.
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
        let deadline = started + Duration::from_secs(self.timeout);
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
    // The -prebuilt Dockerfile targets only copy target/release/*, so compile those first.
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
    /// How long after `up -d` each service first answered.
    Ready(BTreeMap<String, Duration>),
    /// The services that did not, with the last thing seen.
    Failed(BTreeMap<String, String>),
}

/// Polls every target until all answer, the deadline passes, or a container exits for good.
fn wait(
    compose: &Compose,
    targets: &[Target],
    restarts: &BTreeMap<String, bool>,
    started: Instant,
    deadline: Instant,
) -> anyhow::Result<Wait> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let http = crate::obs_up::probe::http_client()?;
    let progress = Progress::new(targets);
    let last_seen: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();

    runtime.block_on(async {
        let probes = futures::future::join_all(targets.iter().enumerate().map(|(index, target)| {
            let (http, progress, last_seen) = (&http, &progress, &last_seen);
            async move {
                loop {
                    match target.check(http).await {
                        Ok(()) => {
                            let after = started.elapsed();
                            progress.ready(index, after);
                            return Some(after);
                        }
                        Err(seen) => {
                            progress.waiting(index, &seen);
                            last_seen
                                .lock()
                                .expect("no panics while locked")
                                .insert(target.service.clone(), seen);
                        }
                    }
                    if Instant::now() >= deadline {
                        return None;
                    }
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }));
        let watch = watch_containers(compose, targets, restarts);
        tokio::select! {
            times = probes => {
                progress.clear();
                let last_seen = last_seen.lock().expect("no panics while locked");
                let mut ready = BTreeMap::new();
                let mut failed = BTreeMap::new();
                for (target, time) in targets.iter().zip(times) {
                    match time {
                        Some(time) => { ready.insert(target.service.clone(), time); }
                        None => {
                            let seen = last_seen.get(&target.service).cloned().unwrap_or_default();
                            failed.insert(
                                target.service.clone(),
                                format!("not ready {} s after `up -d`; last probe: {seen}", deadline.duration_since(started).as_secs()),
                            );
                        }
                    }
                }
                Ok(if failed.is_empty() { Wait::Ready(ready) } else { Wait::Failed(failed) })
            }
            exited = watch => {
                progress.clear();
                exited.map(Wait::Failed)
            }
        }
    })
}

/// Returns once a container has exited and compose will not restart it.
async fn watch_containers(
    compose: &Compose,
    targets: &[Target],
    restarts: &BTreeMap<String, bool>,
) -> anyhow::Result<BTreeMap<String, String>> {
    loop {
        tokio::time::sleep(STATE_INTERVAL).await;
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
        if !exited.is_empty() {
            return Ok(exited);
        }
    }
}

/// Progress while waiting: one spinner per service on a terminal, otherwise a line when a service
/// becomes ready (CI logs stay readable).
struct Progress {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    names: Vec<String>,
    terminal: bool,
}

impl Progress {
    fn new(targets: &[Target]) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let multi = MultiProgress::new();
        let width = targets.iter().map(|t| t.service.len()).max().unwrap_or(0);
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {{prefix:{width}}} {{elapsed:>4}} {{wide_msg}}"
        ))
        .expect("the template is valid");
        let bars = targets
            .iter()
            .map(|target| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(target.service.clone());
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .collect();
        if !terminal {
            eprintln!("waiting for {} services to answer", targets.len());
        }
        Self {
            multi,
            bars,
            names: targets.iter().map(|t| t.service.clone()).collect(),
            terminal,
        }
    }

    fn waiting(&self, index: usize, seen: &str) {
        self.bars[index].set_message(format!("waiting: {seen}"));
    }

    fn ready(&self, index: usize, after: Duration) {
        let message = format!("ready after {:.1} s", after.as_secs_f64());
        if !self.terminal {
            eprintln!("  {:<18} {message}", self.names[index]);
        }
        self.bars[index].finish_with_message(message);
    }

    fn clear(&self) {
        for bar in &self.bars {
            bar.finish();
        }
        // The final table follows; the spinners' last frames would only repeat it.
        self.multi.clear().ok();
    }
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
