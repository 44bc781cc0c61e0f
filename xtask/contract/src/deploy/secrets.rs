//! The deploy's secrets: which app gets which, where they are read, and how they reach flyctl.
//!
//! Values come from the environment or an env file, go to `flyctl secrets import` on stdin and
//! nowhere else: not into argv (other users can read it in /proc), not into the plan, not into
//! error messages. Anything flyctl prints passes through [`Secrets::mask`] first. How a value is
//! written for flyctl, the env file's syntax and the mask are `fly_deploy::secrets`'.

use std::path::Path;

use anyhow::{Context as _, bail};
use fly_deploy::secrets::{Mask, import_line, parse_env_file};

use ampel_worker::PROVIDER_TOKEN_VAR;
use xtask::flags::FlyApp;

/// One secret the apps read at start-up.
struct Spec {
    name: &'static str,
    /// The app refuses to start without it (see the configuration table in README.md).
    required: bool,
    /// A URL of a server the app connects to.
    address: bool,
    apps: &'static [FlyApp],
}

const APPS: &[FlyApp] = &[FlyApp::Api, FlyApp::Worker];

const SPECS: &[Spec] = &[
    // The collector's hosted backend: OTLP/HTTP base URLs (the exporters append /v1/traces and
    // /v1/logs) and the Authorization header fly/collector.yaml sends with every export, e.g.
    // `Basic <base64 of instance:token>` for Grafana Cloud's OTLP gateway. The apps export to the
    // collector over the private network (their [env]), so they need no OTLP secret.
    Spec {
        name: "OTELCOL_TRACES_ENDPOINT",
        required: true,
        address: true,
        apps: &[FlyApp::Collector],
    },
    Spec {
        name: "OTELCOL_LOGS_ENDPOINT",
        required: true,
        address: true,
        apps: &[FlyApp::Collector],
    },
    Spec {
        name: "OTELCOL_EXPORT_AUTHORIZATION",
        required: true,
        address: false,
        apps: &[FlyApp::Collector],
    },
    // Span metrics go to a Prometheus remote-write URL, which hosted backends authenticate apart
    // from their OTLP gateway (Grafana Cloud: the Prometheus instance's user).
    Spec {
        name: "OTELCOL_METRICS_ENDPOINT",
        required: true,
        address: true,
        apps: &[FlyApp::Collector],
    },
    Spec {
        name: "OTELCOL_METRICS_AUTHORIZATION",
        required: true,
        address: false,
        apps: &[FlyApp::Collector],
    },
    Spec {
        name: "DATABASE_URL",
        required: true,
        address: true,
        apps: APPS,
    },
    Spec {
        name: "REDIS_URL",
        required: true,
        address: true,
        apps: APPS,
    },
    // Only the worker calls the Git provider.
    Spec {
        name: PROVIDER_TOKEN_VAR,
        required: false,
        address: false,
        apps: &[FlyApp::Worker],
    },
];

/// Every secret `app` may be given, found or not, in a fixed order.
pub fn names_of(app: FlyApp) -> Vec<&'static str> {
    SPECS
        .iter()
        .filter(|spec| spec.apps.contains(&app))
        .map(|spec| spec.name)
        .collect()
}

/// The secret values found for this deploy. No `Debug`, so a value cannot slip into a log line.
pub struct Secrets {
    found: Vec<Found>,
    /// Every value found.
    mask: Mask,
}

struct Found {
    name: &'static str,
    /// The value as a line of `flyctl secrets import` input, checked when it was read.
    import_line: String,
}

impl Secrets {
    /// Reads every known secret from `env_file`, then the ones still missing from the
    /// environment. The file wins because it is named on purpose, while the environment may
    /// still hold a local DATABASE_URL exported for the tests. Empty values count as unset.
    pub fn collect(env_file: Option<&Path>) -> anyhow::Result<Self> {
        let file = match env_file {
            Some(path) => read_env_file(path)?,
            None => Vec::new(),
        };
        let (mut found, mut values) = (Vec::new(), Vec::new());
        for spec in SPECS {
            let from_file = file
                .iter()
                .rev()
                .find(|(name, _)| name == spec.name)
                .map(|(_, value)| value.clone());
            let value = from_file
                .filter(|value| !value.trim().is_empty())
                .or_else(|| std::env::var(spec.name).ok())
                .filter(|value| !value.trim().is_empty());
            if let Some(value) = value {
                if spec.address && points_at_this_machine(&value) {
                    bail!(
                        "{} points at this machine (localhost), which no Fly Machine can reach; \
                         give the production value in --env-file or the environment",
                        spec.name
                    );
                }
                let import_line = import_line(spec.name, &value)?;
                found.push(Found {
                    name: spec.name,
                    import_line,
                });
                values.push(value);
            }
        }
        Ok(Self {
            found,
            mask: Mask::new(values),
        })
    }

    /// The names of the secrets found for `app`, in a fixed order.
    pub fn names_for(&self, app: FlyApp) -> Vec<&'static str> {
        self.for_app(app).map(|found| found.name).collect()
    }

    /// The required secrets of `app` that were not found here.
    pub fn missing_required(&self, app: FlyApp) -> Vec<&'static str> {
        SPECS
            .iter()
            .filter(|spec| spec.required && spec.apps.contains(&app))
            .filter(|spec| !self.found.iter().any(|found| found.name == spec.name))
            .map(|spec| spec.name)
            .collect()
    }

    /// What `flyctl secrets import` reads on stdin for `app`: one `NAME="""value"""` line each.
    pub fn import_stdin(&self, app: FlyApp) -> String {
        self.for_app(app)
            .map(|found| format!("{}\n", found.import_line))
            .collect()
    }

    /// What replaces every secret value with `***` in what flyctl prints.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// The secrets found for `app`, in the order of `SPECS`.
    fn for_app(&self, app: FlyApp) -> impl Iterator<Item = &Found> {
        SPECS
            .iter()
            .filter(move |spec| spec.apps.contains(&app))
            .filter_map(|spec| self.found.iter().find(|found| found.name == spec.name))
    }
}

/// Whether a URL's host is this machine: a value exported for local work, not production's.
fn points_at_this_machine(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    // Hosts of schemes the URL standard does not know (postgres, redis) stay text, IPs too.
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// The `NAME=VALUE` pairs of the env file at `path`, in order.
fn read_env_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the env file {}: check --env-file", path.display()))?;
    parse_env_file(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(found: &[(&'static str, &str)]) -> Secrets {
        Secrets {
            found: found
                .iter()
                .map(|(name, value)| Found {
                    name,
                    import_line: import_line(name, value).unwrap(),
                })
                .collect(),
            mask: Mask::new(found.iter().map(|(_, value)| (*value).to_owned())),
        }
    }

    /// Each app gets its own secrets, in the same order every time: the provider token only the
    /// worker, the backend's header only the collector.
    #[test]
    fn each_app_gets_only_its_own_secrets() {
        let secrets = secrets(&[
            (PROVIDER_TOKEN_VAR, "t0ken"),
            ("OTELCOL_EXPORT_AUTHORIZATION", "Basic eA=="),
            ("DATABASE_URL", "postgres://x"),
        ]);
        assert_eq!(secrets.names_for(FlyApp::Api), ["DATABASE_URL"]);
        assert_eq!(
            secrets.names_for(FlyApp::Worker),
            ["DATABASE_URL", PROVIDER_TOKEN_VAR]
        );
        assert_eq!(
            secrets.names_for(FlyApp::Collector),
            ["OTELCOL_EXPORT_AUTHORIZATION"]
        );
        assert_eq!(secrets.missing_required(FlyApp::Api), ["REDIS_URL"]);
        assert_eq!(
            secrets.missing_required(FlyApp::Collector),
            [
                "OTELCOL_TRACES_ENDPOINT",
                "OTELCOL_LOGS_ENDPOINT",
                "OTELCOL_METRICS_ENDPOINT",
                "OTELCOL_METRICS_AUTHORIZATION"
            ]
        );
    }

    /// A URL exported for local work (the tests' DATABASE_URL) is never sent to Fly.
    #[test]
    fn local_addresses_are_recognised() {
        for url in [
            "postgres://ampel:ampel@127.0.0.1:15432/ampel",
            "redis://localhost:6379",
            "http://[::1]:4318",
            "redis://0.0.0.0:6379",
            "postgres://u:p@LOCALHOST/db",
        ] {
            assert!(points_at_this_machine(url), "{url}");
        }
        for url in [
            "postgres://u:p@ampel-db.flycast:5432/ampel",
            "rediss://default:x@fly-ampel.upstash.io:6379",
            "https://otlp-gateway.grafana.net/otlp",
        ] {
            assert!(!points_at_this_machine(url), "{url}");
        }
    }
}
