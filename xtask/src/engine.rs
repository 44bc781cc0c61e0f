//! Ampel's compose: which of its files and profiles a command passes, and the hints for this
//! repository's CI; finding and running compose is the kit's (`otel_testkit::compose::cli`).
//!
//! ```text
//! cargo xtask obs-up --engine podman
//! ```
//!
//! `obs-up`, `obs-down` and `status` drive compose through [`Compose`]; which files and profiles
//! they pass is decided here, once. Looked for in this order, unless `--engine` (or
//! `AMPEL_COMPOSE_ENGINE`) picks one: `docker compose`, `docker-compose`, `podman compose`,
//! `podman-compose`. The Docker ones also work against Podman's API socket (`DOCKER_HOST`).

use anyhow::Context as _;
use otel_testkit::compose::cli::{self, Engine, Family, FindError};

pub use otel_testkit::compose::cli::Container;

use crate::compose::{self, ComposeFile};
use crate::flags::EngineChoice;

/// Which services a command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// compose.yaml alone: Grafana, Loki, Tempo.
    Grafana,
    /// compose.yaml + compose.peers.yaml: Jaeger and VictoriaLogs instead.
    Peers,
    /// Both files and every profile, so compose knows every service of either variant (for
    /// `down` and `ps`).
    Everything,
}

impl Variant {
    fn files(self) -> &'static [&'static str] {
        match self {
            Variant::Grafana => &[compose::MAIN],
            Variant::Peers | Variant::Everything => &[compose::MAIN, compose::PEERS],
        }
    }

    /// The merged compose model of this variant.
    pub fn model(self) -> anyhow::Result<ComposeFile> {
        compose::read_merged(self.files())
    }

    /// The profiles to enable.
    fn profiles(self, model: &ComposeFile) -> Vec<String> {
        match self {
            Variant::Grafana | Variant::Peers => Vec::new(),
            Variant::Everything => model.all_profiles().into_iter().map(Into::into).collect(),
        }
    }
}

impl From<EngineChoice> for Family {
    fn from(choice: EngineChoice) -> Self {
        match choice {
            EngineChoice::Docker => Family::Docker,
            EngineChoice::DockerCompose => Family::DockerCompose,
            EngineChoice::Podman => Family::Podman,
        }
    }
}

/// The kit's compose on one variant's files, with xtask's own runner and hints; the rest of the
/// kit's methods (`display`, `exec`, `has_image`, `logs`) as they are.
#[derive(Debug, Clone)]
pub struct Compose(cli::Compose);

impl std::ops::Deref for Compose {
    type Target = cli::Compose;

    fn deref(&self) -> &cli::Compose {
        &self.0
    }
}

impl Compose {
    /// Finds compose (`choice` narrows the search) and checks that its engine answers.
    pub fn find(choice: Option<EngineChoice>, variant: Variant) -> anyhow::Result<Self> {
        let model = variant.model()?;
        let root = crate::util::project_root();
        let found = cli::Compose::find(
            choice.map(Family::from),
            &root,
            variant.files(),
            &variant.profiles(&model),
        );
        found.map(Compose).map_err(|err| {
            let hint = match &err {
                FindError::NotInstalled { .. } => {
                    "or pick one with --engine (on CI here: `bash .ci/podman.sh`)"
                }
                FindError::Unreachable {
                    engine: Engine::Docker,
                    ..
                } => {
                    "here: `bash .ci/podman.sh; export \
                     DOCKER_HOST=unix:///run/podman/podman.sock`"
                }
                FindError::Unreachable {
                    engine: Engine::Podman,
                    ..
                } => "on CI here: `bash .ci/podman.sh`",
                FindError::Info { .. } => return err.into(),
            };
            anyhow::anyhow!("{err}; {hint}")
        })
    }

    /// Runs compose with `args`, streaming its output; fails with `step`.
    pub fn run(&self, step: &str, args: &[&str]) -> anyhow::Result<()> {
        crate::util::run(step, self.0.program(), &self.0.argv(args), &[])
    }

    /// `compose build services…`, with the classic builder where buildx is missing.
    pub fn build(&self, step: &str, services: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["build"];
        args.extend(services);
        crate::util::run(
            step,
            self.0.program(),
            &self.0.argv(&args),
            &self.0.build_env(),
        )
    }

    /// The stack's containers, running or not.
    pub fn containers(&self) -> anyhow::Result<Vec<Container>> {
        self.0
            .containers()
            .context("list the stack's containers (`--engine docker` picks Compose v2)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variants see the services compose would start: peers swaps Grafana, Loki and Tempo
    /// for Jaeger and VictoriaLogs (read from the real compose files), Everything knows all.
    #[test]
    fn variants_select_services() {
        let active = |variant: Variant| -> Vec<String> {
            let model = variant.model().unwrap();
            let profiles = variant.profiles(&model);
            let profiles: Vec<&str> = profiles.iter().map(String::as_str).collect();
            model
                .active(&profiles)
                .map(|(name, _)| name.clone())
                .collect()
        };
        let grafana = active(Variant::Grafana);
        let peers = active(Variant::Peers);
        let everything = active(Variant::Everything);
        for name in ["grafana", "loki", "tempo"] {
            assert!(grafana.iter().any(|n| n == name) && !peers.iter().any(|n| n == name));
        }
        for name in ["jaeger", "victorialogs"] {
            assert!(peers.iter().any(|n| n == name) && !grafana.iter().any(|n| n == name));
        }
        assert!(
            grafana
                .iter()
                .chain(&peers)
                .all(|name| everything.contains(name))
        );
        // The override repoints the collector's traces at Jaeger (environment maps merge by key).
        let model = Variant::Peers.model().unwrap();
        let endpoint = model.services["otel-collector"]
            .env("OTELCOL_TRACES_ENDPOINT")
            .unwrap();
        assert!(endpoint.contains("jaeger"), "{endpoint}");
    }
}
