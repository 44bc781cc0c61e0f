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

use super::stack::Stack;

/// One of the two apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Api,
    Worker,
}

impl Service {
    /// Its service in `compose/compose.yaml`.
    pub fn compose_name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Worker => "worker",
        }
    }

    pub fn binary_name(self) -> &'static str {
        match self {
            Self::Api => "ampel-api",
            Self::Worker => "ampel-worker",
        }
    }

    pub fn binary(self, binaries: &Binaries) -> &Path {
        match self {
            Self::Api => &binaries.api,
            Self::Worker => &binaries.worker,
        }
    }

    pub fn listen_var(self) -> &'static str {
        match self {
            Self::Api => ampel_api::config::LISTEN_ADDR_VAR,
            Self::Worker => ampel_worker::LISTEN_ADDR_VAR,
        }
    }

    /// What says it is ready: the api's database and queue; the worker's process.
    fn ready_path(self) -> &'static str {
        match self {
            Self::Api => ampel_api::routes::READY,
            Self::Worker => ampel_worker::http::HEALTH,
        }
    }
}

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

/// Starts `service` for run `run` of the e2e on `address`, with the environment compose gives it
/// pointed at `stack` and `own` laid over it, its log in `target/e2e/<run>/<service>.log`, and
/// waits until it is ready.
pub async fn start_on(
    stack: &Stack,
    binaries: &Binaries,
    service: Service,
    address: SocketAddr,
    run: &str,
    own: &[(&str, String)],
) -> anyhow::Result<App> {
    let name = service.compose_name();
    let mut env = stack.app_env(name)?;
    env.push((service.listen_var().to_owned(), address.to_string()));
    env.extend(
        own.iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone())),
    );
    let log = util::project_root()
        .join("target/e2e")
        .join(run)
        .join(format!("{name}.log"));
    let mut app = start(name, service.binary(binaries), address, &env, log)?;
    app.ready(service.ready_path()).await?;
    Ok(app)
}

/// Starts `binary` with `env` (over the inherited environment minus any `OTEL_*`, so a
/// developer's shell cannot change what is exported), its output going to `log`.
fn start(
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
