//! `fly.toml`, as far as a deploy and its checks read it: each setting with its span, so a
//! problem can name its line.
//!
//! Parse it with `toml::from_str::<FlyConfig>`; keys this model does not read are ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// A Fly config (`fly.toml`).
#[derive(Debug, Deserialize)]
pub struct FlyConfig {
    /// The Fly app it deploys.
    pub app: Spanned<String>,
    /// Where new Machines and volumes go.
    pub primary_region: Option<Spanned<String>>,
    /// The signal Fly stops a Machine with.
    pub kill_signal: Option<Spanned<String>>,
    /// Seconds (an integer) or a Go duration (a string); read it with [`kill_timeout`].
    pub kill_timeout: Option<Spanned<toml::Value>>,
    /// How the image is built.
    pub build: Option<Spanned<Build>>,
    /// `[deploy]`: how a release rolls out.
    pub deploy: Option<Spanned<DeploySection>>,
    /// `[env]`: variables set on every Machine; a secret of the same name overrides one.
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    /// The public HTTP(S) service, through Fly's proxy.
    pub http_service: Option<Spanned<HttpService>>,
    /// `[[services]]`, the other way to expose ports through Fly's proxy; read only to know it
    /// is there.
    #[serde(default)]
    pub services: Vec<Spanned<toml::Value>>,
    /// Top-level `[checks.<name>]`, which Fly runs against each Machine directly.
    #[serde(default)]
    pub checks: BTreeMap<String, Spanned<Check>>,
    /// Where Fly scrapes Prometheus metrics.
    pub metrics: Option<Spanned<OneOrMany<Metrics>>>,
    /// The volumes mounted into each Machine.
    pub mounts: Option<Spanned<OneOrMany<Mount>>>,
}

/// A `[mounts]` entry: the volume `source` at `destination`.
#[derive(Debug, Deserialize)]
pub struct Mount {
    /// The volume's name.
    pub source: String,
    /// Where the Machine sees it.
    pub destination: String,
    /// The size a new volume gets, e.g. "1gb".
    pub initial_size: Option<String>,
}

/// The volume an app mounts, as `flyctl volumes create` makes it when it is missing.
pub struct Volume {
    /// Its name, the mount's `source`.
    pub name: String,
    /// The app's `primary_region`.
    pub region: String,
    /// Its size in whole gigabytes, what `flyctl volumes create --size` takes.
    pub size_gb: u32,
}

impl FlyConfig {
    /// The names `[env]` sets, which a secret of the same name would shadow.
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.env.keys().map(String::as_str)
    }

    /// The volume of the first `[mounts]`, in `primary_region`; `None` when the config has no
    /// usable one (no mount, no region, or a size that is not whole gigabytes).
    pub fn volume(&self) -> Option<Volume> {
        let mount = self.mounts.as_ref()?.get_ref().as_slice().first()?;
        Some(Volume {
            name: mount.source.clone(),
            region: self.primary_region.as_ref()?.get_ref().clone(),
            size_gb: size_gb(mount.initial_size.as_deref()?)?,
        })
    }
}

/// `initial_size = "1gb"` as whole gigabytes, what `flyctl volumes create --size` takes.
fn size_gb(text: &str) -> Option<u32> {
    let number = text.trim().to_ascii_lowercase();
    number
        .strip_suffix("gb")?
        .trim()
        .parse()
        .ok()
        .filter(|size| *size > 0)
}

/// `[build]`: the Dockerfile and the stage that make the image.
#[derive(Debug, Deserialize)]
pub struct Build {
    /// Relative to the config's folder, as flyctl resolves it.
    pub dockerfile: Option<Spanned<String>>,
    /// The stage built; unset, the Dockerfile's last.
    #[serde(rename = "build-target")]
    pub build_target: Option<Spanned<String>>,
}

/// `[deploy]`.
#[derive(Debug, Deserialize)]
pub struct DeploySection {
    /// How Machines are replaced, e.g. "rolling".
    pub strategy: Option<Spanned<String>>,
    /// Run on a release Machine before the new version starts; it replaces the image's CMD.
    pub release_command: Option<Spanned<String>>,
}

/// `[http_service]`.
#[derive(Debug, Deserialize)]
pub struct HttpService {
    /// The port Fly's proxy sends requests to.
    pub internal_port: Spanned<u16>,
    /// `[[http_service.checks]]`, sent to `internal_port`.
    #[serde(default)]
    pub checks: Vec<Spanned<Check>>,
}

/// An `[[http_service.checks]]` entry or a top-level `[checks.<name>]`.
#[derive(Debug, Deserialize)]
pub struct Check {
    /// `type`: "http" or "tcp".
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The port asked; a service's checks go to its `internal_port`.
    pub port: Option<u16>,
    /// The HTTP path asked.
    pub path: Option<String>,
    /// The HTTP method; unset, GET.
    pub method: Option<String>,
}

/// One `[metrics]` entry. No spans inside: the untagged enum around it buffers its input, which
/// loses them, so problems point at the whole section.
#[derive(Debug, Deserialize)]
pub struct Metrics {
    /// The port Fly scrapes.
    pub port: u16,
    /// The path Fly scrapes.
    pub path: String,
}

/// `[metrics]` or `[[metrics]]`: flyctl takes both.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A table.
    One(T),
    /// An array of tables.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The entries, however many were written.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// Fly reads an integer `kill_timeout` as seconds and a string as a Go duration ("30s", "1m").
pub fn kill_timeout(value: &toml::Value) -> Option<Duration> {
    match value {
        toml::Value::Integer(seconds) => u64::try_from(*seconds).ok().map(Duration::from_secs),
        toml::Value::String(text) => parse_go_duration(text),
        _ => None,
    }
}

/// The subset of Go's `time.ParseDuration` that fly.toml uses: `<number><unit>` pairs with
/// units ms, s, m, h, e.g. "1m30s".
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            _ => return None,
        };
        rest = &rest[unit..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("30"), None);
        assert_eq!(parse_go_duration("s"), None);
    }
}
