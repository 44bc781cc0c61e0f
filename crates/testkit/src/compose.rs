//! A compose file read as data: services with their image, ports, environment, command,
//! volumes, healthcheck and profiles, laid over each other as `compose -f a -f b` does, so a
//! test can start what compose describes without restating an image or a port.
//!
//! `ComposeFile::<NoExtensions>::read(Path::new("compose/compose.yaml"))?.services["db"]`; with
//! the `containers` feature, `Service::container_spec` turns a service into a
//! `container::ContainerSpec`. A project's own `x-` keys come typed through the
//! [`Service`]'s `X` parameter. With the `compose-cli` feature, [`cli`] runs compose itself on
//! Docker or Podman.

#[cfg(feature = "compose-cli")]
pub mod cli;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A project's `x-` keys of a service (compose ignores them), flattened into [`Service`]: a
/// struct whose fields are renamed to the keys, laid over each other by [`Merge::merge`].
pub trait Merge: DeserializeOwned + Default + Clone {
    /// Lays `over` (from a later file) over `self`.
    fn merge(&mut self, over: Self);
}

/// No `x-` keys read.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct NoExtensions {}

impl Merge for NoExtensions {
    fn merge(&mut self, _over: Self) {}
}

/// A compose file, as far as a test needs it.
#[derive(Debug, Deserialize)]
#[serde(bound = "X: Merge")]
pub struct ComposeFile<X = NoExtensions> {
    #[serde(default)]
    pub services: BTreeMap<String, Service<X>>,
}

impl<X> Default for ComposeFile<X> {
    fn default() -> Self {
        Self {
            services: BTreeMap::new(),
        }
    }
}

/// One service.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(bound = "X: Merge")]
pub struct Service<X = NoExtensions> {
    /// The image, possibly `${X_IMAGE:-default}`.
    pub image: Option<String>,
    /// `"[IP:]HOST:CONTAINER"` strings (see [`Service::ports`]).
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
    /// `"SOURCE:TARGET[:MODE]"` strings; SOURCE is a named volume or a path relative to the
    /// compose file's folder.
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
    /// Present on the services compose builds.
    #[serde(default)]
    pub build: Option<serde_yaml::Value>,
    /// `no`, `on-failure`, `always` or `unless-stopped`.
    #[serde(default)]
    pub restart: Option<String>,
    /// The project's `x-` keys.
    #[serde(flatten)]
    pub extensions: X,
}

/// A service's `healthcheck:`, as far as a test runs it itself (Podman without systemd never
/// does).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", prog, args…]`, `["CMD-SHELL", script]` or a plain script string.
    #[serde(default)]
    pub test: Option<serde_yaml::Value>,
    #[serde(default)]
    pub disable: bool,
}

/// A bind mount of a file or folder of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The path on the host: the compose file's folder joined with the source.
    pub source: PathBuf,
    /// Path inside the container.
    pub target: String,
}

/// A published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// The host address it is bound to; `None` is every interface.
    pub host_ip: Option<IpAddr>,
    pub host: u16,
    pub container: u16,
}

impl<X: Merge> ComposeFile<X> {
    /// Reads and parses the compose file at `path`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// Parses compose YAML; the error is a `serde_yaml::Error` (with its location).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(serde_yaml::from_str(text)?)
    }

    /// Reads `paths` and lays each over the ones before (see [`ComposeFile::merge`]).
    pub fn read_merged(paths: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        let mut merged = Self::default();
        for path in paths {
            merged.merge(Self::read(path.as_ref())?);
        }
        Ok(merged)
    }

    /// Lays `over` over `self` as `compose -f a -f b` does for the keys read here (the Compose
    /// Specification's merge rules): scalars, `command`, `entrypoint` and the healthcheck given
    /// by the override replace; sequences are appended, each value once; a volume replaces the
    /// one mounted at the same target; environment maps merge key by key; the `x-` keys as
    /// [`Merge`] says; new services are added.
    pub fn merge(&mut self, over: Self) {
        for (name, over) in over.services {
            let Some(base) = self.services.get_mut(&name) else {
                self.services.insert(name, over);
                continue;
            };
            base.image = over.image.or(base.image.take());
            append(&mut base.ports, over.ports);
            append(&mut base.expose, over.expose);
            base.environment.extend(over.environment);
            base.entrypoint = over.entrypoint.or(base.entrypoint.take());
            base.command = over.command.or(base.command.take());
            append(&mut base.profiles, over.profiles);
            let target = |spec: &str| spec.split(':').nth(1).map(str::to_owned);
            let replaced: Vec<_> = over.volumes.iter().filter_map(|v| target(v)).collect();
            (base.volumes).retain(|spec| target(spec).is_none_or(|t| !replaced.contains(&t)));
            append(&mut base.volumes, over.volumes);
            base.user = over.user.or(base.user.take());
            append(&mut base.cap_drop, over.cap_drop);
            append(&mut base.security_opt, over.security_opt);
            base.healthcheck = over.healthcheck.or(base.healthcheck.take());
            base.build = over.build.or(base.build.take());
            base.restart = over.restart.or(base.restart.take());
            base.extensions.merge(over.extensions);
        }
    }

    /// The services compose starts when `profiles` are enabled (a service with profiles starts
    /// only when one of them is).
    pub fn active(&self, profiles: &[&str]) -> impl Iterator<Item = (&String, &Service<X>)> {
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

impl<X> Service<X> {
    /// The image with `${VAR:-default}` resolved against the environment.
    pub fn resolved_image(&self) -> Option<String> {
        self.image
            .as_deref()
            .map(|image| interpolate(image, |key| std::env::var(key).ok()))
    }

    /// Published ports: `[IP:]HOST:CONTAINER[/tcp]`.
    pub fn ports(&self) -> anyhow::Result<Vec<Port>> {
        self.ports.iter().map(|spec| spec.parse()).collect()
    }

    /// Every container port other services may use: the published ones and `expose:`.
    pub fn container_ports(&self) -> Vec<u16> {
        let published = self.ports().unwrap_or_default();
        let exposed = self.expose.iter().filter_map(|port| port.parse().ok());
        published
            .iter()
            .map(|port| port.container)
            .chain(exposed)
            .collect()
    }

    /// The volumes whose source is a path (`./…` or `../…`), joined to `dir` (the compose
    /// file's folder); named volumes are left out.
    pub fn bind_mounts(&self, dir: &Path) -> Vec<BindMount> {
        self.volumes
            .iter()
            .filter(|spec| spec.starts_with("./") || spec.starts_with("../"))
            .filter_map(|spec| {
                let mut parts = spec.split(':');
                let (source, target) = (parts.next()?, parts.next()?);
                Some(BindMount {
                    source: dir.join(source),
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

    /// The container `name` (for the error) as compose runs it: image, published ports,
    /// environment (interpolated), entrypoint, command, user, dropped capabilities, security
    /// options, the compose healthcheck as readiness, and, with `mounts_from` (the compose
    /// file's folder), its bind-mounted files copied in.
    #[cfg(feature = "containers")]
    pub fn container_spec(
        &self,
        name: &str,
        mounts_from: Option<&Path>,
    ) -> anyhow::Result<crate::container::ContainerSpec> {
        let image = self
            .resolved_image()
            .with_context(|| format!("compose service {name} has no image"))?;
        let mut spec = crate::container::ContainerSpec::new(&image);
        for port in self.ports()? {
            spec = spec.port(port.container);
        }
        for key in self.environment.keys() {
            let value = self.env(key).unwrap_or_default();
            spec = spec.env(key, interpolate(&value, |key| std::env::var(key).ok()));
        }
        if let Some(entrypoint) = &self.entrypoint {
            spec = spec.entrypoint(command_argv(entrypoint));
        }
        if let Some(command) = &self.command {
            spec = spec.cmd(command_argv(command));
        }
        if let Some(user) = &self.user {
            spec = spec.user(user);
        }
        for capability in &self.cap_drop {
            spec = spec.cap_drop(capability);
        }
        for option in &self.security_opt {
            spec = spec.security_opt(option);
        }
        if let Some(dir) = mounts_from {
            for mount in self.bind_mounts(dir) {
                spec = spec.copy_file(mount.source, mount.target);
            }
        }
        if let Some(argv) = self.healthcheck_argv() {
            spec = spec.readiness(crate::container::Readiness::Exec(argv));
        }
        Ok(spec)
    }
}

/// `[IP:]HOST:CONTAINER[/tcp]`.
impl std::str::FromStr for Port {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (host_ip, host, container) = match parts.as_slice() {
            [ip, host, container] => {
                let ip = ip
                    .parse()
                    .with_context(|| format!("port {spec:?}: host address"))?;
                (Some(ip), host, container)
            }
            [host, container] => (None, host, container),
            _ => anyhow::bail!("port {spec:?} must be \"[IP:]HOST:CONTAINER\""),
        };
        Ok(Port {
            host_ip,
            host: host
                .parse()
                .with_context(|| format!("port {spec:?}: host port"))?,
            container: container
                .trim_end_matches("/tcp")
                .parse()
                .with_context(|| format!("port {spec:?}: container port"))?,
        })
    }
}

/// Compose's `command:` as an argv (a string is split on whitespace, as compose does).
#[cfg(feature = "containers")]
fn command_argv(command: &serde_yaml::Value) -> Vec<String> {
    match command {
        serde_yaml::Value::Sequence(items) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        serde_yaml::Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
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

/// Appends the values of `over` that `base` does not hold yet.
fn append(base: &mut Vec<String>, over: Vec<String>) {
    for value in over {
        if !base.contains(&value) {
            base.push(value);
        }
    }
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

    /// A test's `x-test:` block, merged field by field.
    #[derive(Debug, Default, Clone, Deserialize, PartialEq)]
    struct Keys {
        #[serde(rename = "x-test", default)]
        test: Block,
    }

    #[derive(Debug, Default, Clone, Deserialize, PartialEq)]
    struct Block {
        a: Option<String>,
        b: Option<String>,
    }

    impl Merge for Keys {
        fn merge(&mut self, over: Self) {
            self.test.a = over.test.a.or(self.test.a.take());
            self.test.b = over.test.b.or(self.test.b.take());
        }
    }

    /// An override replaces scalars, appends sequences (each value once), replaces the volume
    /// at a target it mounts, merges the environment key by key and the `x-` keys as their
    /// [`Merge`] says, and adds services.
    #[test]
    fn override_lays_over_base() {
        let mut base = ComposeFile::<Keys>::parse(
            "services:\n  db:\n    image: db:1\n    ports: [\"127.0.0.1:1:1\"]\n    \
             volumes: [data:/data, ./a:/etc/a]\n    environment: {A: a, B: b}\n    \
             user: \"1\"\n    cap_drop: [ALL]\n    security_opt: [a]\n    expose: [\"1\"]\n    \
             profiles: [p]\n    x-test: {a: base, b: base}\n",
        )
        .unwrap();
        let over = ComposeFile::<Keys>::parse(
            "services:\n  db:\n    image: db:2\n    ports: [\"127.0.0.1:2:2\", \"127.0.0.1:1:1\"]\n    \
             volumes: [./f:/f, ./b:/etc/a:ro]\n    environment: {B: over}\n    user: \"2\"\n    \
             cap_drop: [ALL]\n    security_opt: [b]\n    expose: [\"2\"]\n    profiles: [q]\n    \
             x-test: {b: over}\n  web: {}\n",
        )
        .unwrap();
        base.merge(over);
        let db = &base.services["db"];
        assert_eq!(db.image.as_deref(), Some("db:2"));
        assert_eq!(db.ports, ["127.0.0.1:1:1", "127.0.0.1:2:2"]);
        assert_eq!(db.volumes, ["data:/data", "./f:/f", "./b:/etc/a:ro"]);
        assert_eq!(db.user.as_deref(), Some("2"));
        assert_eq!(db.cap_drop, ["ALL"]);
        assert_eq!(db.security_opt, ["a", "b"]);
        assert_eq!(db.expose, ["1", "2"]);
        assert_eq!(db.profiles, ["p", "q"]);
        assert_eq!(db.env("A").as_deref(), Some("a"));
        assert_eq!(db.env("B").as_deref(), Some("over"));
        assert_eq!(db.extensions.test.a.as_deref(), Some("base"));
        assert_eq!(db.extensions.test.b.as_deref(), Some("over"));
        assert!(base.services.contains_key("web"));
    }

    /// Ports keep their host address; a spec of another shape is refused.
    #[test]
    fn ports_parse_with_their_address() {
        let service = |ports: &str| {
            ComposeFile::<NoExtensions>::parse(&format!("services:\n  s:\n    ports: {ports}\n"))
                .unwrap()
                .services["s"]
                .ports()
        };
        let loopback = service("[\"127.0.0.1:8080:80/tcp\", \"9090:90\"]").unwrap();
        assert_eq!(loopback[0].host_ip, Some([127, 0, 0, 1].into()));
        assert_eq!((loopback[0].host, loopback[0].container), (8080, 80));
        assert_eq!(loopback[1].host_ip, None);
        assert!(service("[\"80\"]").is_err());
        assert!(service("[\"here:1:1\"]").is_err());
    }

    /// `CMD` runs as is, `CMD-SHELL` and a plain string through `sh -c`, `disable` runs nothing.
    #[test]
    fn healthcheck_argv_follows_compose() {
        let argv = |healthcheck: &str| {
            ComposeFile::<NoExtensions>::parse(&format!(
                "services:\n  s:\n    healthcheck: {healthcheck}\n"
            ))
            .unwrap()
            .services["s"]
                .healthcheck_argv()
        };
        let shell = |script: &str| Some(vec!["sh".into(), "-c".into(), script.to_owned()]);
        assert_eq!(
            argv("{test: [CMD, pg_isready, -q]}"),
            Some(vec!["pg_isready".to_owned(), "-q".to_owned()])
        );
        assert_eq!(argv("{test: [CMD-SHELL, \"ok || no\"]}"), shell("ok || no"));
        assert_eq!(argv("{test: \"ok || no\"}"), shell("ok || no"));
        assert_eq!(argv("{test: [CMD, ok], disable: true}"), None);
        assert_eq!(argv("{test: [NONE]}"), None);
    }

    /// A service becomes a container of its resolved image with its container ports.
    #[cfg(feature = "containers")]
    #[test]
    fn service_becomes_a_container_spec() {
        let compose = ComposeFile::<NoExtensions>::parse(
            "services:\n  s:\n    image: ${OTEL_TESTKIT_UNSET_IMAGE:-db:3}\n    \
             ports: [\"127.0.0.1:8080:80\"]\n",
        )
        .unwrap();
        let spec = compose.services["s"].container_spec("s", None).unwrap();
        assert_eq!(spec.image(), "db:3");
        assert_eq!(spec.ports(), [80]);
        let no_image = ComposeFile::<NoExtensions>::parse("services:\n  s: {}\n").unwrap();
        let err = no_image.services["s"]
            .container_spec("s", None)
            .unwrap_err();
        assert_eq!(err.to_string(), "compose service s has no image");
    }

    /// Bind mounts are relative to the folder given; named volumes are not bind mounts.
    #[test]
    fn bind_mounts_are_relative_to_the_folder() {
        let compose = ComposeFile::<NoExtensions>::parse(
            "services:\n  s:\n    volumes: [\"../cfg/a.yaml:/etc/a.yaml:ro\", \"data:/data\"]\n",
        )
        .unwrap();
        assert_eq!(
            compose.services["s"].bind_mounts(Path::new("/repo/compose")),
            [BindMount {
                source: PathBuf::from("/repo/compose/../cfg/a.yaml"),
                target: "/etc/a.yaml".to_owned(),
            }]
        );
    }
}
