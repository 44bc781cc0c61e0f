//! The deploy's secrets: which app gets which, where they are read, and how they reach flyctl.
//!
//! Values come from the environment or an env file, go to `flyctl secrets import` on stdin and
//! nowhere else: not into argv (other users can read it in /proc), not into the plan, not into
//! error messages. Anything flyctl prints passes through [`Secrets::redact`] first.

use std::path::Path;

use anyhow::{Context as _, bail};

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

/// flyctl reads stdin with a line scanner whose buffer is 64 KiB.
const MAX_VALUE_BYTES: usize = 60 * 1024;

/// The secret values found for this deploy. No `Debug`, so a value cannot slip into a log line.
pub struct Secrets {
    found: Vec<Found>,
}

struct Found {
    name: &'static str,
    value: String,
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
        let mut found = Vec::new();
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
                    value,
                    import_line,
                });
            }
        }
        Ok(Self { found })
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

    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut values: Vec<&str> = self
            .found
            .iter()
            .map(|found| found.value.as_str())
            .collect();
        // Longest first, so a value that contains another is masked whole.
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values
            .into_iter()
            .fold(text.to_owned(), |text, value| text.replace(value, "***"))
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

/// One line of `flyctl secrets import` input that its parser reads back as exactly `value`.
fn import_line(name: &str, value: &str) -> anyhow::Result<String> {
    let set_by_hand =
        format!("set {name} with `flyctl secrets set` by hand, then run the deploy without it");
    if value.contains(['\n', '\r']) {
        bail!(
            "{name} spans several lines, which `flyctl secrets import` would split: {set_by_hand}"
        );
    }
    if value.len() > MAX_VALUE_BYTES {
        bail!("{name} is longer than flyctl's 64 KiB line limit: {set_by_hand}");
    }
    // flyctl drops everything from the first `#` when the text before it holds an even number of
    // `"`. The opening `"""` adds three, so an odd count inside the value would truncate it.
    if let Some(hash) = value.find('#')
        && value[..hash].matches('"').count() % 2 == 1
    {
        bail!(
            "{name} has a `#` after an odd number of `\"`, which flyctl would cut off: {set_by_hand}"
        );
    }
    Ok(format!("{name}=\"\"\"{value}\"\"\""))
}

/// `NAME=VALUE` lines; blank lines, `#` comments and an `export ` prefix are skipped, and one
/// pair of matching quotes around a value is removed. Errors name the line, never its text.
fn read_env_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the env file {}: check --env-file", path.display()))?;
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            bail!(
                "{}:{}: not a NAME=VALUE line; fix or remove it",
                path.display(),
                index + 1
            );
        };
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|quote| {
                value
                    .strip_prefix(*quote)
                    .and_then(|rest| rest.strip_suffix(*quote))
            })
            .unwrap_or(value);
        pairs.push((name.trim().to_owned(), unquoted.to_owned()));
    }
    Ok(pairs)
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
                    value: (*value).to_owned(),
                    import_line: import_line(name, value).unwrap(),
                })
                .collect(),
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

    /// Values that flyctl's import parser would change are refused, naming only the secret.
    #[test]
    fn values_flyctl_would_mangle_are_refused() {
        for value in ["two\nlines", "a\"b#c"] {
            let err = import_line(PROVIDER_TOKEN_VAR, value)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{PROVIDER_TOKEN_VAR} ")), "{err}");
            assert!(!err.contains(value), "{err}");
        }
        assert_eq!(
            import_line("DATABASE_URL", "postgres://u:p#1@h/db").unwrap(),
            "DATABASE_URL=\"\"\"postgres://u:p#1@h/db\"\"\""
        );
    }

    /// Secret values never survive redaction, even when one contains another.
    #[test]
    fn redact_masks_every_value() {
        let secrets = secrets(&[
            ("REDIS_URL", "redis://secret"),
            (PROVIDER_TOKEN_VAR, "secret"),
        ]);
        assert_eq!(
            secrets.redact("got redis://secret and secret"),
            "got *** and ***"
        );
    }

    /// The env file's syntax: comments, `export`, quotes; a bad line is named by number only.
    #[test]
    fn env_file_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prod.env");
        std::fs::write(
            &path,
            "# prod\nexport REDIS_URL='redis://r'\n\nDATABASE_URL=\"postgres://p\"\n",
        )
        .unwrap();
        assert_eq!(
            read_env_file(&path).unwrap(),
            [
                ("REDIS_URL".to_owned(), "redis://r".to_owned()),
                ("DATABASE_URL".to_owned(), "postgres://p".to_owned())
            ]
        );
        std::fs::write(&path, "hunter2\n").unwrap();
        let err = read_env_file(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("prod.env:1: not a NAME=VALUE line; fix or remove it"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
    }
}
