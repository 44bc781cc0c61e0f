//! Compose as a program: find an implementation whose engine answers, and run it on a project's
//! files, so a tool drives `compose up`/`ps`/`logs`/`exec` the same way on Docker and Podman.
//!
//! ```no_run
//! use otel_testkit::compose::cli::Compose;
//! # fn demo() -> anyhow::Result<()> {
//! let project = std::path::Path::new("/src/shop");
//! let compose = Compose::find(None, project, &["compose.yaml"], &["tracing"])?;
//! std::process::Command::new(compose.program())
//!     .args(compose.argv(&["up", "-d"]))
//!     .status()?;
//! for container in compose.containers()? {
//!     println!("{} {}", container.service, container.describe());
//! }
//! # Ok(()) }
//! ```
//!
//! [`Compose::find`] tries, in order, `docker compose`, `docker-compose`, `podman compose` and
//! `podman-compose`, unless a [`Family`] narrows the search. The Docker ones also work against
//! Podman's API socket (`DOCKER_HOST`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The compose implementations a caller can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `docker compose` (the Compose v2 plugin).
    Docker,
    /// The standalone `docker-compose` binary.
    DockerCompose,
    /// `podman compose`, else `podman-compose`.
    Podman,
}

/// The container engine behind a compose, by the CLI that asks it for images and `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
}

impl Engine {
    /// `docker` or `podman`.
    pub fn cli(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    /// What to do when it does not answer.
    fn fix(self) -> &'static str {
        match self {
            Engine::Docker => "start Docker, or point DOCKER_HOST at Podman's socket",
            Engine::Podman => "check `podman info`",
        }
    }
}

/// Why [`Compose::find`] found no compose to use.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// None of the candidates is installed.
    #[error(
        "find compose: none of {} is installed; install Docker with the Compose v2 plugin, or \
         Podman with podman-compose",
        .tried.join(", ")
    )]
    NotInstalled {
        /// The command lines tried (`docker compose`, `podman-compose`…).
        tried: Vec<String>,
    },
    /// A compose is installed but its engine does not answer; the first such.
    #[error("reach the container engine: `{} info` failed ({stderr}); {}", .engine.cli(), .engine.fix())]
    Unreachable { engine: Engine, stderr: String },
    /// The engine's CLI could not be run.
    #[error("run `{} info`", .engine.cli())]
    Info {
        engine: Engine,
        #[source]
        source: std::io::Error,
    },
}

/// One compose implementation: `program prefix…` runs compose, `engine` is the CLI beside it.
struct Candidate {
    family: Family,
    program: &'static str,
    prefix: &'static [&'static str],
    engine: Engine,
}

/// The candidates, in the order they are tried.
const CANDIDATES: [Candidate; 4] = [
    Candidate {
        family: Family::Docker,
        program: "docker",
        prefix: &["compose"],
        engine: Engine::Docker,
    },
    Candidate {
        family: Family::DockerCompose,
        program: "docker-compose",
        prefix: &[],
        engine: Engine::Docker,
    },
    Candidate {
        family: Family::Podman,
        program: "podman",
        prefix: &["compose"],
        engine: Engine::Podman,
    },
    Candidate {
        family: Family::Podman,
        program: "podman-compose",
        prefix: &[],
        engine: Engine::Podman,
    },
];

impl Candidate {
    /// `program prefix…`, as a person types it.
    fn command_line(&self) -> String {
        std::iter::once(self.program)
            .chain(self.prefix.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One way to run compose, bound to a project's files and profiles.
#[derive(Debug, Clone)]
pub struct Compose {
    /// The program (`docker`, `docker-compose`, `podman`, `podman-compose`).
    program: &'static str,
    /// Words between the program and compose's own arguments (`compose` for the plugins).
    prefix: &'static [&'static str],
    engine: Engine,
    /// The `-f` files, absolute.
    files: Vec<PathBuf>,
    /// The `--profile`s to enable.
    profiles: Vec<String>,
    /// The project's folder: relative files start there, and messages show paths below it
    /// relative to it.
    project_dir: PathBuf,
}

impl Compose {
    /// Finds compose (`family` narrows the search) and checks that its engine answers; `files`
    /// (relative to `project_dir`, or absolute) and `profiles` go on every command line.
    pub fn find(
        family: Option<Family>,
        project_dir: &Path,
        files: &[impl AsRef<Path>],
        profiles: &[impl AsRef<str>],
    ) -> Result<Self, FindError> {
        let candidates: Vec<&Candidate> = CANDIDATES
            .iter()
            .filter(|candidate| family.is_none_or(|family| family == candidate.family))
            .collect();
        // The first compose that is installed and whose engine answers; a Docker CLI without a
        // daemon should not hide a working Podman.
        let mut unreachable = None;
        for candidate in &candidates {
            let version: Vec<&str> = candidate
                .prefix
                .iter()
                .chain(&["version"])
                .copied()
                .collect();
            if !succeeds(candidate.program, &version) {
                continue;
            }
            let compose = Compose::new(candidate, project_dir, files, profiles);
            match compose.ping() {
                Ok(()) => return Ok(compose),
                Err(err) => {
                    unreachable.get_or_insert(err);
                }
            }
        }
        Err(unreachable.unwrap_or_else(|| FindError::NotInstalled {
            tried: candidates
                .iter()
                .map(|candidate| candidate.command_line())
                .collect(),
        }))
    }

    fn new(
        candidate: &Candidate,
        project_dir: &Path,
        files: &[impl AsRef<Path>],
        profiles: &[impl AsRef<str>],
    ) -> Self {
        Compose {
            program: candidate.program,
            prefix: candidate.prefix,
            engine: candidate.engine,
            files: files.iter().map(|file| project_dir.join(file)).collect(),
            profiles: profiles
                .iter()
                .map(|profile| profile.as_ref().to_owned())
                .collect(),
            project_dir: project_dir.to_owned(),
        }
    }

    /// Fails with the fix when the engine behind the CLI does not answer.
    fn ping(&self) -> Result<(), FindError> {
        let output = duct::cmd(self.engine.cli(), ["info"])
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| FindError::Info {
                engine: self.engine,
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(FindError::Unreachable {
            engine: self.engine,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    /// The program to run with [`Compose::argv`].
    pub fn program(&self) -> &'static str {
        self.program
    }

    /// `[prefix] -f … [--profile …] args…`: the arguments after [`Compose::program`].
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
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

    /// The variables `compose build` needs here. Without the buildx plugin, Compose v2 would
    /// boot a BuildKit container from a registry image (moby/buildkit), which fails offline; the
    /// classic builder (`DOCKER_BUILDKIT=0`) builds through the engine's API instead, Podman's
    /// included.
    pub fn build_env(&self) -> Vec<(&'static str, String)> {
        if self.engine == Engine::Docker && !succeeds("docker", &["buildx", "version"]) {
            vec![
                ("DOCKER_BUILDKIT", "0".to_owned()),
                ("COMPOSE_BAKE", "false".to_owned()),
            ]
        } else {
            Vec::new()
        }
    }

    /// Runs compose with `args` and returns its stdout.
    pub fn read(&self, step: &str, args: &[&str]) -> anyhow::Result<String> {
        duct::cmd(self.program, self.argv(args))
            .stderr_capture()
            .read()
            .with_context(|| format!("{step}: `{}` failed", self.display(args)))
    }

    /// The command line, for messages, with paths below the project's folder relative to it.
    pub fn display(&self, args: &[&str]) -> String {
        let dir = self.project_dir.display().to_string() + "/";
        let mut words = vec![self.program.to_owned()];
        words.extend(
            self.argv(args)
                .into_iter()
                .map(|word| word.strip_prefix(&dir).map(str::to_owned).unwrap_or(word)),
        );
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
        succeeds(self.engine.cli(), &["image", "inspect", image])
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
        let json = self.read("list containers", args).context(
            "this compose cannot list containers as JSON (docker-compose v1?): use `docker \
             compose` or install Compose v2",
        )?;
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

    /// Every command line is the program's prefix, each file (resolved against the project's
    /// folder) after `-f`, each profile after `--profile`, then the arguments; messages show the
    /// files relative to the folder.
    #[test]
    fn argv_has_prefix_files_and_profiles() {
        let project = Path::new("/src/shop");
        let compose = Compose::new(
            &CANDIDATES[2],
            project,
            &["compose.yaml", "/elsewhere/extra.yaml"],
            &["tracing", "logs"],
        );
        assert_eq!(compose.program(), "podman");
        assert_eq!(
            compose.argv(&["up", "-d"]),
            [
                "compose",
                "-f",
                "/src/shop/compose.yaml",
                "-f",
                "/elsewhere/extra.yaml",
                "--profile",
                "tracing",
                "--profile",
                "logs",
                "up",
                "-d"
            ]
        );
        assert_eq!(
            compose.display(&["ps"]),
            "podman compose -f compose.yaml -f /elsewhere/extra.yaml --profile tracing --profile logs ps"
        );
        let standalone = Compose::new(&CANDIDATES[3], project, &["compose.yaml"], &[] as &[&str]);
        assert_eq!(
            standalone.display(&["down"]),
            "podman-compose -f compose.yaml down"
        );
    }

    /// Compose v2 prints one object per line, with `Service`.
    #[test]
    fn ps_json_lines_of_compose_v2() {
        let json = r#"{"Name":"shop-api-1","Service":"api","State":"running","ExitCode":0,"Health":"starting","Labels":"com.docker.compose.service=api,x=y"}
{"Name":"shop-worker-1","Service":"worker","State":"exited","ExitCode":1,"Health":""}"#;
        let containers = parse_ps(json).unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0].service, "api");
        assert_eq!(containers[1].describe(), "exited (1)");
    }

    /// Podman's `ps` (behind podman-compose) prints an array, with the service in `Labels`.
    #[test]
    fn ps_json_array_of_podman() {
        let json = r#"[{"Names":["shop_redis_1"],"State":"running","ExitCode":0,"Labels":{"com.docker.compose.service":"redis"}},
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

    /// An empty project prints nothing (or `[]`).
    #[test]
    fn ps_json_empty() {
        assert!(parse_ps("").unwrap().is_empty());
        assert!(parse_ps("[]").unwrap().is_empty());
    }
}
