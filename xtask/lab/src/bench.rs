//! `cargo xtask bench`: what telemetry costs the api and the worker, measured, as four tables.
//!
//! ```text
//! bash .ci/services.sh   # PostgreSQL and Redis; export the URLs it prints
//! export DOCKER_HOST=unix:///run/podman/podman.sock; source .ci/images.env   # table 3, Podman
//! cargo xtask bench --quick
//! ```
//!
//! Layout: `overhead.rs`, `backend.rs`, `visible.rs` and `worker.rs` are one table each, a
//! `report::Table` that measures, prints and states its targets (`collector.rs` is table 3's
//! second block, on the same stack: the collector's cost); this file runs them and writes
//! their typed values as one JSON document. Below them: `ctx.rs` (the plan, the datastores, the
//! one way to start a measured app and where its telemetry goes, the rounds), `app.rs` runs the
//! release binaries pinned to the server core (through the e2e's process helper) and reads their
//! CPU time and memory from /proc; `load.rs` drives them with wrk (throughput, latency) or one
//! request after the other (an exact count) and holds the measured api run tables 1 and 2 share;
//! `callgrind.rs` counts instructions per request; the counting OTLP receiver and the hung
//! endpoint are `otel_testkit::sink`'s; table 3 runs on the e2e's stack and backend clients;
//! `report.rs` knows no table: the trait, the targets list, the column layout, the run's record.
//! docs/performance.md explains the method and holds the reference figures.

mod app;
mod backend;
mod callgrind;
mod collector;
mod ctx;
mod load;
mod overhead;
mod report;
mod visible;
mod worker;

use std::time::Instant;

use anyhow::Context as _;

use backend::Backend;
use ctx::{Ctx, Plan};
use overhead::Overhead;
use report::{Part, Summary, Target};
use visible::Visible;
use worker::Worker;
use xtask::flags;

/// Everything one run measured: the JSON document for comparing commits.
#[derive(Debug, serde::Serialize)]
struct Report {
    commit: String,
    unix_time: u64,
    machine: String,
    quick: bool,
    plan: Plan,
    rust_log: String,
    overhead: Option<Part<Overhead>>,
    backend: Option<Part<Backend>>,
    visible: Option<Part<Visible>>,
    worker: Option<Part<Worker>>,
    targets: Vec<Target>,
    wall_seconds: f64,
}

impl crate::Run for flags::Bench {
    fn run(self) -> anyhow::Result<()> {
        let (started, commit, unix_time) = (Instant::now(), report::commit(), report::unix_time());
        preflight()?;
        // This process (wrk's parent, the exact request counts, the sink, the fake GitHub) stays off the
        // server's core. Done before the runtime's threads exist, so they inherit it.
        xtask::util::run(
            "pin xtask to the load core",
            "taskset",
            &[
                "-cp".to_owned(),
                app::LOAD_CPU.to_string(),
                std::process::id().to_string(),
            ],
            &[],
        )?;
        let binaries = match &self.binaries {
            Some(dir) => app::binaries_in(dir)?,
            None => app::build()?,
        };
        let ctx = Ctx::new(binaries, Plan::new(self.quick))?;
        let runtime = tokio::runtime::Runtime::new().context("start the Tokio runtime")?;
        let mut summary = Summary::default();
        let (overhead, backend, visible, worker) = runtime.block_on(async {
            (
                report::run::<Overhead>(&ctx, &self.only, &mut summary).await,
                report::run::<Backend>(&ctx, &self.only, &mut summary).await,
                report::run::<Visible>(&ctx, &self.only, &mut summary).await,
                report::run::<Worker>(&ctx, &self.only, &mut summary).await,
            )
        });
        let machine = report::machine();
        report::print_targets(&machine, &summary.targets);
        let report = Report {
            commit,
            unix_time,
            machine,
            quick: self.quick,
            plan: ctx.plan,
            rust_log: ctx.rust_log(),
            overhead,
            backend,
            visible,
            worker,
            targets: summary.targets,
            wall_seconds: started.elapsed().as_secs_f64(),
        };
        let out = xtask::util::project_root().join(&self.out);
        report::write(&out, &report)?;
        println!(
            "\nwrote {} ({:.0}s in all)",
            out.display(),
            report.wall_seconds
        );
        anyhow::ensure!(
            summary.failed.is_empty(),
            "bench: {} could not be measured; the errors are above",
            summary.failed.join(", ")
        );
        Ok(())
    }
}

/// The tools and the machine the figures depend on, checked before anything is built.
fn preflight() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    anyhow::ensure!(
        cores >= 2,
        "bench needs 2 cores (server on one, load on the other); this machine offers {cores}"
    );
    for (tool, package) in [
        ("wrk", "wrk"),
        ("taskset", "util-linux"),
        ("valgrind", "valgrind"),
    ] {
        duct::cmd(tool, ["--version"])
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run()
            .with_context(|| format!("{tool} not found: `apt-get install -y {package}`"))?;
    }
    Ok(())
}
