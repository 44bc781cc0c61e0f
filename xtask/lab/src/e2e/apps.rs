//! ampel-api and ampel-worker as host processes (`otel_testkit::process`), for the e2e and for
//! `cargo xtask bench`.
//!
//! Why on the host and not in containers: a debug build is already there (or seconds away), no
//! image has to be built, and a failing run's log is a plain file. Running the app in
//! containers, built from the Dockerfile, is what `cargo xtask obs-up` covers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use otel_testkit::process::{Process as App, free_port, scrub};
use xtask::util;

/// The two binaries, built by [`build`].
pub struct Binaries {
    pub api: PathBuf,
    pub worker: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, e.g. a `target/release`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            api: dir.join("ampel-api"),
            worker: dir.join("ampel-worker"),
        }
    }
}

/// How [`build`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// `cargo build [--release] -p ampel-api -p ampel-worker`; returns where the binaries are.
pub fn build(profile: Profile) -> anyhow::Result<Binaries> {
    let mut args = vec!["build"];
    if profile == Profile::Release {
        args.push("--release");
    }
    args.extend(["-p", "ampel-api", "-p", "ampel-worker"]);
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    util::run("build the api and the worker", &util::cargo(), &args, &[])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::project_root().join("target"))
        .join(match profile {
            Profile::Debug => "debug",
            Profile::Release => "release",
        });
    Ok(Binaries::in_dir(&target))
}

/// Starts `binary` with `env` (over the inherited environment minus any `OTEL_*`, so a
/// developer's shell cannot change what is exported), its output going to `log`.
pub fn start(
    name: &str,
    binary: &Path,
    address: SocketAddr,
    env: &[(String, String)],
    log: PathBuf,
) -> anyhow::Result<App> {
    let mut command = tokio::process::Command::new(binary);
    scrub(&mut command, &["OTEL_"]);
    command.envs(env.iter().map(|(key, value)| (key, value)));
    let hint = format!(
        "start {}: was it built (`cargo build -p ampel-api -p ampel-worker`)?",
        binary.display()
    );
    App::spawn(name, command, &hint, address, log)
}
