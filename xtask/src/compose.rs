//! The compose files, read as data: the one source of truth for service names, images and
//! published ports. `obs-up`, `status`, `check` and `e2e` all read them here instead of
//! restating them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The main stack: datastores, app, exporters, Prometheus, Grafana, Loki, Tempo.
pub const MAIN: &str = "compose/compose.yaml";
/// The override that swaps Grafana/Loki/Tempo for Jaeger and VictoriaLogs.
pub const PEERS: &str = "compose/compose.peers.yaml";
/// The service the apps export OTLP to, and only it: the stores are the collector's business.
pub const COLLECTOR: &str = "otel-collector";

/// A compose file, as far as xtask needs it.
#[derive(Debug, Default, Deserialize)]
pub struct ComposeFile {
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
}

/// One service.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Service {
    /// The image, possibly `${AMPEL_X_IMAGE:-default}`.
    pub image: Option<String>,
    /// `"127.0.0.1:HOST:CONTAINER"` strings.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Container ports other services use but the host does not (compose's `expose:`).
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, serde_yaml::Value>,
    /// Replaces the image's ENTRYPOINT (and with it its default CMD, as compose does).
    #[serde(default)]
    pub entrypoint: Option<serde_yaml::Value>,
    #[serde(default)]
    pub command: Option<serde_yaml::Value>,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// `"SOURCE:TARGET[:MODE]"` strings; SOURCE is a named volume or a path relative to `compose/`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `uid[:gid]` the process runs as, when not the image's user.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub security_opt: Vec<String>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Present on the services compose builds (the api and worker): `obs-up` builds exactly these.
    #[serde(default)]
    pub build: Option<serde_yaml::Value>,
    /// `no`, `on-failure`, `always` or `unless-stopped`; `obs-up` gives up early on an exited
    /// container only when nothing will restart it.
    #[serde(default)]
    pub restart: Option<String>,
    /// What only xtask reads (compose ignores `x-` keys).
    #[serde(rename = "x-ampel", default)]
    pub ampel: Extension,
}

/// A service's `x-ampel:` block.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Extension {
    /// The URL scheme a person uses for it (`http` unless set, e.g. `postgres`, `redis`).
    pub scheme: Option<String>,
    /// The path a person opens, after the first published port (a UI, a landing page).
    pub open: Option<String>,
    /// For an image that cannot run a healthcheck (no shell, no probe flag): the HTTP path that
    /// answers 2xx once it is ready, asked from the host on its first published port.
    pub ready_from_host: Option<String>,
}

/// How to tell that a service is ready: defined once, here in compose, and used by `obs-up`,
/// `status` and the e2e alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The service's compose healthcheck, run inside its container; exit 0 means ready.
    Exec(Vec<String>),
    /// `GET path` on `port` (a container port, published) answers 2xx, asked from the host.
    HostHttp { port: u16, path: String },
}

/// A service's `healthcheck:`, as far as xtask runs it itself (Podman here never does).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", prog, args…]`, `["CMD-SHELL", script]` or a plain script string.
    #[serde(default)]
    pub test: Option<serde_yaml::Value>,
    #[serde(default)]
    pub disable: bool,
}

/// A bind mount of a file or folder from the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Absolute path on the host.
    pub source: PathBuf,
    /// Path inside the container.
    pub target: String,
}

/// A published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub host: u16,
    pub container: u16,
}

impl ComposeFile {
    /// Reads and parses `path` (relative to the workspace root).
    pub fn read(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = crate::util::project_root().join(path);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parse {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(serde_yaml::from_str(text)?)
    }

    /// Reads `paths` and lays each over the ones before, as `compose -f a -f b` does for the keys
    /// xtask reads: scalars and lists given by the override replace (ports and volumes are
    /// appended), environment maps merge key by key, new services are added.
    pub fn read_merged(paths: &[&str]) -> anyhow::Result<Self> {
        let mut merged = ComposeFile::default();
        for path in paths {
            merged.merge(ComposeFile::read(path)?);
        }
        Ok(merged)
    }

    pub fn merge(&mut self, over: ComposeFile) {
        for (name, over) in over.services {
            let Some(base) = self.services.get_mut(&name) else {
                self.services.insert(name, over);
                continue;
            };
            base.image = over.image.or(base.image.take());
            base.ports.extend(over.ports);
            base.environment.extend(over.environment);
            base.entrypoint = over.entrypoint.or(base.entrypoint.take());
            base.command = over.command.or(base.command.take());
            if !over.profiles.is_empty() {
                base.profiles = over.profiles;
            }
            base.volumes.extend(over.volumes);
            base.healthcheck = over.healthcheck.or(base.healthcheck.take());
            base.build = over.build.or(base.build.take());
            base.restart = over.restart.or(base.restart.take());
            base.ampel = Extension {
                scheme: over.ampel.scheme.or(base.ampel.scheme.take()),
                open: over.ampel.open.or(base.ampel.open.take()),
                ready_from_host: over
                    .ampel
                    .ready_from_host
                    .or(base.ampel.ready_from_host.take()),
            };
        }
    }

    /// The services compose starts when `profiles` are enabled (a service with profiles starts
    /// only when one of them is).
    pub fn active(&self, profiles: &[&str]) -> impl Iterator<Item = (&String, &Service)> {
        self.services.iter().filter(move |(_, service)| {
            service.profiles.is_empty()
                || service
                    .profiles
                    .iter()
                    .any(|profile| profiles.contains(&profile.as_str()))
        })
    }

    /// Every profile some service names: enabling them all makes every service known to compose.
    pub fn all_profiles(&self) -> Vec<&str> {
        let mut profiles: Vec<&str> = self
            .services
            .values()
            .flat_map(|service| service.profiles.iter().map(String::as_str))
            .collect();
        profiles.sort_unstable();
        profiles.dedup();
        profiles
    }
}

impl Service {
    /// The image with `${VAR:-default}` resolved against the environment.
    pub fn resolved_image(&self) -> Option<String> {
        self.image
            .as_deref()
            .map(|image| interpolate(image, |key| std::env::var(key).ok()))
    }

    /// Published ports; the binding must be `127.0.0.1:HOST:CONTAINER`.
    pub fn published_ports(&self) -> anyhow::Result<Vec<Port>> {
        self.ports
            .iter()
            .map(|spec| {
                let parts: Vec<&str> = spec.split(':').collect();
                match parts.as_slice() {
                    ["127.0.0.1", host, container] => Ok(Port {
                        host: host.parse().with_context(|| format!("port {spec:?}: host port"))?,
                        container: container
                            .trim_end_matches("/tcp")
                            .parse()
                            .with_context(|| format!("port {spec:?}: container port"))?,
                    }),
                    _ => anyhow::bail!("port {spec:?} must be \"127.0.0.1:HOST:CONTAINER\" (never published on every interface)"),
                }
            })
            .collect()
    }

    /// Every container port other services may use: the published ones and `expose:`.
    pub fn container_ports(&self) -> Vec<u16> {
        let published = self.published_ports().unwrap_or_default();
        let exposed = self.expose.iter().filter_map(|port| port.parse().ok());
        published
            .iter()
            .map(|port| port.container)
            .chain(exposed)
            .collect()
    }

    /// The volumes whose source is a path (`./…` or `../…`, relative to `compose/`); named
    /// volumes are left out.
    pub fn bind_mounts(&self) -> Vec<BindMount> {
        let compose_dir = crate::util::project_root().join("compose");
        self.volumes
            .iter()
            .filter(|spec| spec.starts_with("./") || spec.starts_with("../"))
            .filter_map(|spec| {
                let mut parts = spec.split(':');
                let (source, target) = (parts.next()?, parts.next()?);
                Some(BindMount {
                    source: compose_dir.join(source),
                    target: target.to_owned(),
                })
            })
            .collect()
    }

    /// The healthcheck as an argv to run inside the container (`CMD-SHELL` through `sh -c`);
    /// `None` when there is none or it is disabled.
    pub fn healthcheck_argv(&self) -> Option<Vec<String>> {
        let check = self.healthcheck.as_ref().filter(|check| !check.disable)?;
        let shell = |script: &str| vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()];
        match check.test.as_ref()? {
            serde_yaml::Value::String(script) => Some(shell(script)),
            serde_yaml::Value::Sequence(items) => {
                let items: Vec<String> = items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect();
                match items.split_first()? {
                    (kind, rest) if kind == "CMD" => Some(rest.to_vec()),
                    (kind, [script]) if kind == "CMD-SHELL" => Some(shell(script)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// How to tell it is ready: its healthcheck, or else its `x-ampel.ready-from-host` path on
    /// its first published port.
    pub fn readiness(&self, name: &str) -> anyhow::Result<Readiness> {
        if let Some(argv) = self.healthcheck_argv() {
            return Ok(Readiness::Exec(argv));
        }
        let path = self.ampel.ready_from_host.clone().with_context(|| {
            format!(
                "service {name} has no healthcheck and no `x-ampel: ready-from-host:` path, so \
                 nothing can tell when it is ready: add one of them in compose/"
            )
        })?;
        let port = self
            .published_ports()?
            .first()
            .with_context(|| {
                format!("service {name} is probed from the host but publishes no port: publish one in compose/")
            })?
            .container;
        Ok(Readiness::HostHttp { port, path })
    }

    /// The URL a person opens: scheme, first published port, `x-ampel.open`.
    pub fn url(&self) -> Option<String> {
        let port = self.published_ports().ok()?.first()?.host;
        let scheme = self.ampel.scheme.as_deref().unwrap_or("http");
        let open = self.ampel.open.as_deref().unwrap_or_default();
        Some(format!("{scheme}://127.0.0.1:{port}{open}"))
    }

    /// An environment value as a string.
    pub fn env(&self, key: &str) -> Option<String> {
        self.environment.get(key).map(|value| match value {
            serde_yaml::Value::String(text) => text.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        })
    }
}

/// Resolves compose's `${VAR:-default}` and `${VAR}` forms.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[start + 2..start + end];
        let (key, default) = inner.split_once(":-").unwrap_or((inner, ""));
        out.push_str(
            &lookup(key)
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| default.to_owned()),
        );
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `${VAR:-default}` takes the variable when set and non-empty, the default otherwise.
    #[test]
    fn interpolation_follows_compose() {
        let lookup = |key: &str| (key == "SET").then(|| "local/image:1".to_owned());
        assert_eq!(interpolate("${SET:-up/stream:2}", lookup), "local/image:1");
        assert_eq!(interpolate("${UNSET:-up/stream:2}", lookup), "up/stream:2");
        assert_eq!(interpolate("api${UNSET:-}", lookup), "api");
    }

    /// The real compose files parse, and every published port is bound to loopback.
    #[test]
    fn compose_files_parse_and_bind_loopback() {
        for file in [MAIN, PEERS] {
            let compose = ComposeFile::read(file).unwrap();
            assert!(!compose.services.is_empty(), "{}", file);
            for (name, service) in &compose.services {
                service
                    .published_ports()
                    .unwrap_or_else(|err| panic!("{}: service {name}: {err:#}", file));
            }
        }
    }
}
