//! The compose files, read as data: the one source of truth for service names, images and
//! published ports. `obs-up`, `status`, `check` and `e2e` all read them here instead of
//! restating them. The model is the kit's (`otel_testkit::compose`); this adds Ampel's files,
//! its `x-ampel:` block, the loopback rule and readiness.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use otel_testkit::compose::Port;

/// The main stack: datastores, app, exporters, Prometheus, Grafana, Loki, Tempo.
pub const MAIN: &str = "compose/compose.yaml";
/// The override that swaps Grafana/Loki/Tempo for Jaeger and VictoriaLogs.
pub const PEERS: &str = "compose/compose.peers.yaml";
/// The service the apps export OTLP to, and only it: the stores are the collector's business.
pub const COLLECTOR: &str = "otel-collector";

/// A compose file with the `x-` keys xtask reads.
pub type ComposeFile = otel_testkit::compose::ComposeFile<Extensions>;
/// One service, with its `x-ampel:` block.
pub type Service = otel_testkit::compose::Service<Extensions>;

/// Reads and parses `path` (relative to the workspace root).
pub fn read(path: impl AsRef<Path>) -> anyhow::Result<ComposeFile> {
    ComposeFile::read(&crate::util::project_root().join(path))
}

/// Reads `paths` (relative to the workspace root) and lays each over the ones before, as
/// `compose -f a -f b` does for the keys xtask reads (see the kit's `ComposeFile::merge`).
pub fn read_merged(paths: &[&str]) -> anyhow::Result<ComposeFile> {
    let root = crate::util::project_root();
    let paths: Vec<PathBuf> = paths.iter().map(|path| root.join(path)).collect();
    ComposeFile::read_merged(&paths)
}

/// The folder compose files' relative bind mounts start from.
pub fn dir() -> PathBuf {
    crate::util::project_root().join("compose")
}

/// What only xtask reads of a service (compose ignores `x-` keys).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Extensions {
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

/// An override's `x-ampel:` keys replace the base's one by one (compose.peers.yaml may set only
/// `open:`, say).
impl otel_testkit::compose::Merge for Extensions {
    fn merge(&mut self, over: Self) {
        let (base, over) = (&mut self.ampel, over.ampel);
        base.scheme = over.scheme.or(base.scheme.take());
        base.open = over.open.or(base.open.take());
        base.ready_from_host = over.ready_from_host.or(base.ready_from_host.take());
    }
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

/// Ampel's rules and `x-ampel:` keys on a compose service.
pub trait AmpelService {
    /// Published ports; the binding must be `127.0.0.1:HOST:CONTAINER`.
    fn published_ports(&self) -> anyhow::Result<Vec<Port>>;
    /// How to tell it is ready: its healthcheck, or else its `x-ampel.ready-from-host` path on
    /// its first published port.
    fn readiness(&self, name: &str) -> anyhow::Result<Readiness>;
    /// The URL a person opens: scheme, first published port, `x-ampel.open`.
    fn url(&self) -> Option<String>;
}

impl AmpelService for Service {
    fn published_ports(&self) -> anyhow::Result<Vec<Port>> {
        self.ports
            .iter()
            .map(|spec| {
                anyhow::ensure!(
                    spec.starts_with("127.0.0.1:"),
                    "port {spec:?} must be \"127.0.0.1:HOST:CONTAINER\" (never published on every interface)"
                );
                spec.parse()
            })
            .collect()
    }

    fn readiness(&self, name: &str) -> anyhow::Result<Readiness> {
        if let Some(argv) = self.healthcheck_argv() {
            return Ok(Readiness::Exec(argv));
        }
        let path = self
            .extensions
            .ampel
            .ready_from_host
            .clone()
            .with_context(|| {
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

    fn url(&self) -> Option<String> {
        let port = self.published_ports().ok()?.first()?.host;
        let scheme = self.extensions.ampel.scheme.as_deref().unwrap_or("http");
        let open = self.extensions.ampel.open.as_deref().unwrap_or_default();
        Some(format!("{scheme}://127.0.0.1:{port}{open}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An override's `x-ampel:` replaces only the keys it sets.
    #[test]
    fn ampel_block_merges_key_by_key() {
        let mut base = ComposeFile::parse(
            "services:\n  s:\n    ports: [\"127.0.0.1:1:2\"]\n    x-ampel: {scheme: redis, open: /a}\n",
        )
        .unwrap();
        base.merge(ComposeFile::parse("services:\n  s:\n    x-ampel: {open: /b}\n").unwrap());
        assert_eq!(
            base.services["s"].url().as_deref(),
            Some("redis://127.0.0.1:1/b")
        );
    }

    /// Only `127.0.0.1:HOST:CONTAINER` is published; anything else says why.
    #[test]
    fn ports_must_bind_loopback() {
        let ports = |spec: &str| {
            ComposeFile::parse(&format!("services:\n  s:\n    ports: [\"{spec}\"]\n"))
                .unwrap()
                .services["s"]
                .published_ports()
                .map_err(|err| format!("{err:#}"))
        };
        assert_eq!(ports("127.0.0.1:1:2").unwrap()[0].container, 2);
        for spec in ["1:2", "0.0.0.0:1:2", "2"] {
            let err = ports(spec).unwrap_err();
            assert!(
                err.contains("never published on every interface"),
                "{spec}: {err}"
            );
        }
    }

    /// The real compose files parse, and every published port is bound to loopback.
    #[test]
    fn compose_files_parse_and_bind_loopback() {
        for file in [MAIN, PEERS] {
            let compose = read(file).unwrap();
            assert!(!compose.services.is_empty(), "{}", file);
            for (name, service) in &compose.services {
                service
                    .published_ports()
                    .unwrap_or_else(|err| panic!("{}: service {name}: {err:#}", file));
            }
        }
    }
}
