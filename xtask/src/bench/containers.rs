//! Throwaway containers for table 3, through the engine's own CLI (`docker`, else `podman`; the
//! Docker CLI also drives Podman through `DOCKER_HOST`). Images come from compose/, ports are
//! published on 127.0.0.1 at ports the engine picks, so a stack from `obs-up` can keep running.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A running container, removed when dropped.
pub struct Container {
    cli: &'static str,
    id: String,
    name: String,
}

/// The first engine CLI that reaches its engine.
pub fn engine() -> anyhow::Result<&'static str> {
    ["docker", "podman"]
        .into_iter()
        .find(|cli| {
            duct::cmd(*cli, ["version"])
                .stdout_null()
                .stderr_null()
                .run()
                .is_ok()
        })
        .context("no container engine answers: table 3 needs one (Podman: `bash .ci/podman.sh`, then export DOCKER_HOST=unix:///run/podman/podman.sock)")
}

impl Container {
    /// `run -d --rm <args>`; `args` are the engine's options, the image and its arguments.
    pub fn run(cli: &'static str, name: &str, args: &[String]) -> anyhow::Result<Self> {
        let mut argv = vec!["run".to_owned(), "-d".to_owned(), "--rm".to_owned()];
        argv.extend_from_slice(args);
        let id = duct::cmd(cli, &argv)
            .stderr_to_stdout()
            .unchecked()
            .read()
            .with_context(|| format!("{cli} run {name}"))?;
        let id = id.lines().last().unwrap_or_default().trim().to_owned();
        anyhow::ensure!(
            !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "{cli} run {} failed: {id}\n  is the image there (`source .ci/images.env` after `bash .ci/images.sh`, or a registry to pull from)?",
            argv.join(" ")
        );
        Ok(Self {
            cli,
            id,
            name: name.to_owned(),
        })
    }

    /// Where the engine published `port` on the host.
    pub fn published(&self, port: u16) -> anyhow::Result<SocketAddr> {
        let text = duct::cmd(self.cli, ["port", &self.id, &format!("{port}/tcp")])
            .read()
            .with_context(|| format!("{} port {} {port}", self.cli, self.name))?;
        let host_port = text
            .lines()
            .find_map(|line| line.trim().rsplit(':').next()?.parse::<u16>().ok())
            .with_context(|| format!("{}: no host port for {port}/tcp in {text:?}", self.name))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], host_port)))
    }

    /// Polls `GET url` until it answers 2xx, for at most `deadline`; the container's last log
    /// lines on failure.
    pub async fn ready(
        &self,
        http: &reqwest::Client,
        url: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let since = Instant::now();
        loop {
            let answer = http.get(url).send().await;
            if answer.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            if since.elapsed() > deadline {
                let logs = duct::cmd(self.cli, ["logs", "--tail", "15", &self.id])
                    .stderr_to_stdout()
                    .unchecked()
                    .read()
                    .unwrap_or_default();
                anyhow::bail!(
                    "{} did not answer GET {url} within {}s; its last log lines:\n{logs}",
                    self.name,
                    deadline.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let removed = duct::cmd(self.cli, ["rm", "-f", &self.id])
            .stdout_null()
            .stderr_null()
            .run();
        // Started with `--rm`, it may be gone already (the engine removed it once it stopped):
        // only one that is still there is worth a warning.
        let still_there = || {
            duct::cmd(self.cli, ["container", "inspect", &self.id])
                .stdout_null()
                .stderr_null()
                .run()
                .is_ok()
        };
        if removed.is_err() && still_there() {
            eprintln!(
                "warning: could not remove the {} container: `{} rm -f {}`",
                self.name, self.cli, self.id
            );
        }
    }
}
