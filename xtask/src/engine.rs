//! Finds a compose implementation and runs it on the stack's files.
//!
//! ```text
//! cargo xtask obs-up --engine podman
//! ```
//!
//! `obs-up`, `obs-down` and `status` drive compose through [`Compose`]; which files and profiles
//! they pass is decided here, once. Looked for in this order, unless `--engine` (or
//! `AMPEL_COMPOSE_ENGINE`) picks one: `docker compose`, `docker-compose`, `podman compose`,
//! `podman-compose`. The Docker ones also work against Podman's API socket (`DOCKER_HOST`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Deserialize;

use crate::compose::{self, ComposeFile};
use crate::flags::EngineChoice;

/// One way to run compose.
#[derive(Debug, Clone)]
pub struct Compose {
    /// The program (`docker`, `docker-compose`, `podman`, `podman-compose`).
    program: &'static str,
    /// Words between the program and compose's own arguments (`compose` for the plugins).
    prefix: &'static [&'static str],
    /// The engine's own CLI, for image look-ups (`docker` or `podman`).
    cli: &'static str,
    /// The `-f` files, absolute.
    files: Vec<PathBuf>,
    /// The `--profile`s to enable.
    profiles: Vec<String>,
}

/// The candidates, in the order they are tried.
const CANDIDATES: [(EngineChoice, &str, &[&str], &str); 4] = [
    (EngineChoice::Docker, "docker", &["compose"], "docker"),
    (EngineChoice::DockerCompose, "docker-compose", &[], "docker"),
    (EngineChoice::Podman, "podman", &["compose"], "podman"),
    (EngineChoice::Podman, "podman-compose", &[], "podman"),
];

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

impl Compose {
    /// Finds compose (`choice` narrows the search) and checks that its engine answers.
    pub fn find(choice: Option<EngineChoice>, variant: Variant) -> anyhow::Result<Self> {
        let model = variant.model()?;
        let root = crate::util::project_root();
        let candidates: Vec<_> = CANDIDATES
            .iter()
            .filter(|(family, ..)| choice.is_none_or(|choice| choice == *family))
            .collect();
        // The first compose that is installed and whose engine answers; a Docker CLI without a
        // daemon should not hide a working Podman.
        let mut unreachable = None;
        for (_, program, prefix, cli) in &candidates {
            let version: Vec<&str> = prefix.iter().chain(&["version"]).copied().collect();
            if !succeeds(program, &version) {
                continue;
            }
            let compose = Compose {
                program,
                prefix,
                cli,
                files: variant.files().iter().map(|file| root.join(file)).collect(),
                profiles: variant.profiles(&model),
            };
            match compose.ping() {
                Ok(()) => return Ok(compose),
                Err(err) => {
                    unreachable.get_or_insert(err);
                }
            }
        }
        if let Some(err) = unreachable {
            return Err(err);
        }
        let tried: Vec<String> = candidates
            .iter()
            .map(|(_, program, prefix, _)| {
                let words: Vec<&str> = std::iter::once(*program)
                    .chain(prefix.iter().copied())
                    .collect();
                words.join(" ")
            })
            .collect();
        anyhow::bail!(
            "find compose: none of {} is installed; install Docker with the Compose v2 plugin, or \
             Podman with podman-compose (on CI here: `bash .ci/podman.sh`), or pick one with --engine",
            tried.join(", ")
        )
    }

    /// Fails with the fix when the engine behind the CLI does not answer.
    fn ping(&self) -> anyhow::Result<()> {
        let output = duct::cmd(self.cli, ["info"])
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .run()
            .with_context(|| format!("run `{} info`", self.cli))?;
        if output.status.success() {
            return Ok(());
        }
        let hint = if self.cli == "docker" {
            "start Docker, or point DOCKER_HOST at Podman's socket \
             (`bash .ci/podman.sh; export DOCKER_HOST=unix:///run/podman/podman.sock`)"
        } else {
            "check `podman info` (on CI here: `bash .ci/podman.sh`)"
        };
        anyhow::bail!(
            "reach the container engine: `{} info` failed ({}); {hint}",
            self.cli,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    }

    /// `program [prefix] -f … [--profile …] args…` as words.
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv: Vec<String> = self.prefix.iter().map(|word| word.to_string()).collect();
        for file in &self.files {
            argv.extend(["-f".into(), file.display().to_string()]);
        }
        for profile in &self.profiles {
            argv.extend(["--profile".into(), profile.clone()]);
        }
        argv.extend(args.iter().map(|arg| arg.to_string()));
        argv
    }

    /// Runs compose with `args`, streaming its output; fails with `step`.
    pub fn run(&self, step: &str, args: &[&str]) -> anyhow::Result<()> {
        crate::util::run(step, self.program, &self.argv(args), &[])
    }

    /// `compose build services…`. Without the buildx plugin, Compose v2 would boot a BuildKit
    /// container from a registry image (moby/buildkit), which fails offline; the classic builder
    /// (`DOCKER_BUILDKIT=0`) builds through the engine's API instead, Podman's included.
    pub fn build(&self, step: &str, services: &[&str]) -> anyhow::Result<()> {
        let mut env = Vec::new();
        if self.cli == "docker" && !succeeds("docker", &["buildx", "version"]) {
            env.push(("DOCKER_BUILDKIT", "0".to_owned()));
            env.push(("COMPOSE_BAKE", "false".to_owned()));
        }
        let mut args = vec!["build"];
        args.extend(services);
        crate::util::run(step, self.program, &self.argv(&args), &env)
    }

    /// Runs compose with `args` and returns its stdout.
    pub fn read(&self, step: &str, args: &[&str]) -> anyhow::Result<String> {
        duct::cmd(self.program, self.argv(args))
            .stderr_capture()
            .read()
            .with_context(|| format!("{step}: `{}` failed", self.display(args)))
    }

    /// The command line, for messages.
    pub fn display(&self, args: &[&str]) -> String {
        let mut words = vec![self.program.to_owned()];
        words.extend(self.argv(args).into_iter().map(|word| {
            let root = crate::util::project_root().display().to_string() + "/";
            word.strip_prefix(&root).map(str::to_owned).unwrap_or(word)
        }));
        words.join(" ")
    }

    /// `compose exec -T service argv…`, to run a check inside the service's container; the caller
    /// runs it (and may time it out).
    pub fn exec(&self, service: &str, argv: &[String]) -> std::process::Command {
        let mut args = vec!["exec", "-T", service];
        args.extend(argv.iter().map(String::as_str));
        let mut command = std::process::Command::new(self.program);
        command.args(self.argv(&args));
        command
    }

    /// Whether the engine has `image` locally.
    pub fn has_image(&self, image: &str) -> bool {
        succeeds(self.cli, &["image", "inspect", image])
    }

    /// The last `lines` log lines of `service` (stdout and stderr), or why they could not be read.
    pub fn logs(&self, service: &str, lines: u32) -> String {
        let lines = lines.to_string();
        let args = ["logs", "--tail", &lines, service];
        duct::cmd(self.program, self.argv(&args))
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_else(|err| format!("(could not run `{}`: {err})", self.display(&args)))
    }

    /// The project's containers, running or not.
    pub fn containers(&self) -> anyhow::Result<Vec<Container>> {
        // podman-compose lists stopped containers anyway and has no --all; Compose needs it.
        let args: &[&str] = if self.program == "podman-compose" {
            &["ps", "--format", "json"]
        } else {
            &["ps", "--all", "--format", "json"]
        };
        let json = self
            .read("list containers", args)
            .context("this compose cannot list containers as JSON (docker-compose v1?): use --engine docker or install Compose v2")?;
        parse_ps(&json).context("read `compose ps --format json`")
    }
}

/// Whether `program args…` runs and exits 0 (its output is dropped).
fn succeeds(program: &str, args: &[&str]) -> bool {
    duct::cmd(program, args)
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()
        .is_ok_and(|output| output.status.success())
}

/// A container as `compose ps` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub service: String,
    /// `running`, `exited`, `restarting`, `created`…
    pub state: String,
    pub exit_code: i64,
}

impl Container {
    /// State for a table: `running`, `exited (1)`.
    pub fn describe(&self) -> String {
        match self.state.as_str() {
            "exited" | "dead" => format!("{} ({})", self.state, self.exit_code),
            state => state.to_owned(),
        }
    }
}

/// One entry of `ps --format json`, in either shape: Compose v2 (`Service`) or Podman's `ps`
/// behind podman-compose (`Labels`).
#[derive(Debug, Deserialize)]
struct PsEntry {
    #[serde(rename = "Service")]
    service: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Labels,
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "ExitCode", default)]
    exit_code: i64,
}

/// Docker prints labels as `k=v,k=v`, Podman as a map.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Labels {
    Map(BTreeMap<String, String>),
    Text(String),
    #[default]
    None,
}

impl Labels {
    fn get(&self, key: &str) -> Option<String> {
        match self {
            Labels::Map(map) => map.get(key).cloned(),
            Labels::Text(text) => text
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == key)
                .map(|(_, value)| value.to_owned()),
            Labels::None => None,
        }
    }
}

/// Parses `ps --format json`: one JSON array (Compose < 2.21, Podman) or one object per line.
fn parse_ps(json: &str) -> anyhow::Result<Vec<Container>> {
    let json = json.trim();
    let entries: Vec<PsEntry> = if json.starts_with('[') {
        serde_json::from_str(json)?
    } else {
        json.lines()
            .filter(|line| !line.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?
    };
    Ok(entries
        .into_iter()
        .filter_map(|entry| {
            let service = entry
                .service
                .or_else(|| entry.labels.get("com.docker.compose.service"))?;
            Some(Container {
                service,
                state: entry.state.to_lowercase(),
                exit_code: entry.exit_code,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compose v2 prints one object per line, with `Service`.
    #[test]
    fn ps_json_lines_of_compose_v2() {
        let json = r#"{"Name":"ampel-api-1","Service":"api","State":"running","ExitCode":0,"Health":"starting","Labels":"com.docker.compose.service=api,x=y"}
{"Name":"ampel-worker-1","Service":"worker","State":"exited","ExitCode":1,"Health":""}"#;
        let containers = parse_ps(json).unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0].service, "api");
        assert_eq!(containers[1].describe(), "exited (1)");
    }

    /// Podman's `ps` (behind podman-compose) prints an array, with the service in `Labels`.
    #[test]
    fn ps_json_array_of_podman() {
        let json = r#"[{"Names":["ampel_redis_1"],"State":"running","ExitCode":0,"Labels":{"com.docker.compose.service":"redis"}},
                      {"Names":["other"],"State":"running","ExitCode":0,"Labels":null}]"#;
        let containers = parse_ps(json).unwrap();
        assert_eq!(
            containers,
            [Container {
                service: "redis".into(),
                state: "running".into(),
                exit_code: 0
            }]
        );
    }

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

    /// An empty project prints nothing (or `[]`).
    #[test]
    fn ps_json_empty() {
        assert!(parse_ps("").unwrap().is_empty());
        assert!(parse_ps("[]").unwrap().is_empty());
    }
}
