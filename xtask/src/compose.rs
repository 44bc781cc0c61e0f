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
    #[serde(default)]
    pub environment: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub command: Option<serde_yaml::Value>,
    #[serde(default)]
    pub profiles: Vec<String>,
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
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parse {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(serde_yaml::from_str(text)?)
    }
}

impl Service {
    /// The image with `${VAR:-default}` resolved against the environment.
    pub fn resolved_image(&self) -> Option<String> {
        self.image.as_deref().map(|image| interpolate(image, |key| std::env::var(key).ok()))
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

    /// An environment value as a string.
    pub fn env(&self, key: &str) -> Option<String> {
        self.environment.get(key).map(|value| match value {
            serde_yaml::Value::String(text) => text.clone(),
            other => serde_yaml::to_string(other).unwrap_or_default().trim().to_owned(),
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
        out.push_str(&lookup(key).filter(|value| !value.is_empty()).unwrap_or_else(|| default.to_owned()));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Both compose files, for commands that look at the whole stack.
pub fn files() -> Vec<PathBuf> {
    [MAIN, PEERS].iter().map(PathBuf::from).collect()
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
        for file in files() {
            let compose = ComposeFile::read(&file).unwrap();
            assert!(!compose.services.is_empty(), "{}", file.display());
            for (name, service) in &compose.services {
                service
                    .published_ports()
                    .unwrap_or_else(|err| panic!("{}: service {name}: {err:#}", file.display()));
            }
        }
    }
}
