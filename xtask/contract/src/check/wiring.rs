//! Rules on how the pieces connect: ports and HTTP paths must agree across compose/, Prometheus'
//! scrape targets, Grafana's data-source URLs, the app's compose environment, the Dockerfile and
//! the binaries' listen variables, default addresses and routes (linked: `crate::binaries`).
//!
//! An app service is a compose service that compose builds; its listen port is the one in its
//! `*_LISTEN_ADDR` variable, and the binary that reads that variable is the one whose routes
//! count. fly/ is the deploy's preflight's (`crate::deploy::preflight`).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Problem, Sources, compose, grafana};
use crate::binaries::{self, Binary, port_of};
use crate::deploy::dockerfile;
use xtask::compose::{ComposeFile, Service};

const PROMETHEUS_YML: &str = "observability/prometheus/prometheus.yml";
const DOCKERFILE: &str = "Dockerfile";

/// prometheus.yml, as far as the rules read it.
#[derive(Debug, Deserialize)]
struct PrometheusConfig {
    #[serde(default)]
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Deserialize)]
struct ScrapeConfig {
    job_name: String,
    metrics_path: Option<String>,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
}

#[derive(Debug, Deserialize)]
struct StaticConfig {
    #[serde(default)]
    targets: Vec<String>,
}

fn prometheus_config(sources: &Sources) -> Option<PrometheusConfig> {
    serde_yaml::from_str(sources.get(PROMETHEUS_YML)?).ok()
}

/// The job names prometheus.yml scrapes, if it parses.
pub fn scrape_jobs(sources: &Sources) -> Option<BTreeSet<String>> {
    Some(
        prometheus_config(sources)?
            .scrape_configs
            .into_iter()
            .map(|job| job.job_name)
            .collect(),
    )
}

/// A compose service built from this repository, and the binary it runs.
#[derive(Debug)]
struct App {
    service: String,
    binary: &'static Binary,
    /// The port compose sets in the binary's listen variable.
    port: u16,
}

pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    // Compose files that do not parse are reported by the compose rules.
    let Some(model) = compose::model(sources) else {
        return;
    };
    let apps = apps(sources, &model, problems);
    check_prometheus(sources, &model, &apps, problems);
    check_urls(sources, &model, problems);
    check_dockerfile(sources, problems);
    for app in &apps {
        check_app(sources, &model, app, problems);
    }
}

/// The ports a service listens on inside the network: its published container ports and the
/// ports of its `*_LISTEN_ADDR` variables.
fn container_ports(service: &Service) -> BTreeSet<u16> {
    let published = service.ports.iter().filter_map(|spec| {
        spec.rsplit(':')
            .next()
            .and_then(|port| port.trim_end_matches("/tcp").parse().ok())
    });
    let listening = service
        .environment
        .keys()
        .filter(|key| key.ends_with("_LISTEN_ADDR"))
        .filter_map(|key| port_of(&service.env(key)?));
    published.chain(listening).collect()
}

fn apps(sources: &Sources, model: &ComposeFile, problems: &mut Vec<Problem>) -> Vec<App> {
    let compose_text = sources.get(xtask::compose::MAIN).unwrap_or_default();
    let mut apps = Vec::new();
    for (name, service) in model.services.iter().filter(|(_, s)| s.build.is_some()) {
        for variable in service
            .environment
            .keys()
            .filter(|k| k.ends_with("_LISTEN_ADDR"))
        {
            let value = service.env(variable).unwrap_or_default();
            let mut report = |message: String| {
                problems.push(Problem::near(
                    xtask::compose::MAIN,
                    compose_text,
                    &format!("{variable}:"),
                    message,
                ));
            };
            let Some(port) = port_of(&value) else {
                report(format!(
                    "service {name}: {variable}={value:?} is not an address like 0.0.0.0:8080; fix it"
                ));
                continue;
            };
            let Some(binary) = binaries::listening_on(variable) else {
                let read = binaries::ALL
                    .iter()
                    .any(|binary| binary.metrics_listen_var == Some(variable.as_str()));
                if !read {
                    let known: Vec<&str> = binaries::ALL.iter().map(|b| b.listen_var).collect();
                    report(format!(
                        "service {name} sets {variable}, which no binary reads (they listen on {}); fix the variable's name",
                        known.join(", ")
                    ));
                }
                continue;
            };
            if port != binary.default_port() {
                report(format!(
                    "service {name}: {variable}={value} is not on the port of {}'s default, {}, which the Dockerfile and fly/ use too; use port {}",
                    binary.name,
                    binary.default_listen_addr,
                    binary.default_port()
                ));
            }
            apps.push(App {
                service: name.clone(),
                binary,
                port,
            });
        }
    }
    apps
}

fn check_prometheus(
    sources: &Sources,
    model: &ComposeFile,
    apps: &[App],
    problems: &mut Vec<Problem>,
) {
    let Some(text) = sources.get(PROMETHEUS_YML) else {
        problems.push(Problem::new(
            PROMETHEUS_YML,
            None,
            "missing; compose mounts it: restore it from git",
        ));
        return;
    };
    let config: PrometheusConfig = match serde_yaml::from_str(text) {
        Ok(config) => config,
        Err(err) => {
            problems.push(Problem::new(
                PROMETHEUS_YML,
                err.location().map(|location| location.line()),
                format!("not a Prometheus config ({err}); fix the YAML"),
            ));
            return;
        }
    };
    // `localhost` in a target is the service Prometheus itself runs in.
    let prometheus_service = model.services.iter().find_map(|(name, service)| {
        service
            .volumes
            .iter()
            .filter_map(|volume| compose::repo_path(volume))
            .any(|source| source == PROMETHEUS_YML)
            .then_some(name.as_str())
    });
    let mut scraped = BTreeSet::new();
    for job in &config.scrape_configs {
        let job_line = super::line_of(text, &format!("job_name: {}", job.job_name));
        if !model.services.contains_key(&job.job_name) {
            problems.push(Problem::new(
                PROMETHEUS_YML,
                job_line,
                format!(
                    "job {} is not a compose service; name each job after the service it scrapes",
                    job.job_name
                ),
            ));
        }
        for target in job.static_configs.iter().flat_map(|config| &config.targets) {
            let line = super::line_of(text, target);
            let Some((host, port)) = target
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            else {
                problems.push(Problem::new(
                    PROMETHEUS_YML,
                    line,
                    format!("target {target:?} is not host:port; fix it"),
                ));
                continue;
            };
            let service = match host {
                "localhost" | "127.0.0.1" => prometheus_service,
                host => model.services.contains_key(host).then_some(host),
            };
            let Some(service) = service else {
                problems.push(Problem::new(
                    PROMETHEUS_YML,
                    line,
                    format!(
                        "target {target} is not a compose service; use the service's name as host"
                    ),
                ));
                continue;
            };
            scraped.insert(service.to_owned());
            let ports = container_ports(&model.services[service]);
            if !ports.contains(&port) {
                problems.push(Problem::new(
                    PROMETHEUS_YML,
                    line,
                    format!(
                        "target {target}: service {service} listens on {ports:?} in compose/, not {port}; use its port"
                    ),
                ));
            }
            // Prometheus' own default path.
            let path = job.metrics_path.as_deref().unwrap_or("/metrics");
            if let Some(app) = apps.iter().find(|app| app.service == service)
                && path != app.binary.metrics
            {
                problems.push(Problem::new(
                    PROMETHEUS_YML,
                    job_line,
                    format!(
                        "job {} scrapes {path}, but {} serves metrics on {}; set metrics_path: {}",
                        job.job_name, app.binary.name, app.binary.metrics, app.binary.metrics
                    ),
                ));
            }
        }
    }
    for name in model.services.keys() {
        let serves_metrics =
            name.ends_with("-exporter") || apps.iter().any(|app| &app.service == name);
        if serves_metrics && !scraped.contains(name) {
            problems.push(Problem::near(
                PROMETHEUS_YML,
                text,
                "scrape_configs:",
                format!(
                    "compose service {name} serves metrics but no job scrapes it; add a job {name} with target {name}:<port>"
                ),
            ));
        }
    }
}

/// URLs that name a compose service (in compose environments and Grafana data sources) must use
/// one of its ports.
fn check_urls(sources: &Sources, model: &ComposeFile, problems: &mut Vec<Problem>) {
    let mut urls: Vec<(&str, &str, String)> = Vec::new();
    for file in [xtask::compose::MAIN, xtask::compose::PEERS] {
        let Some(text) = sources.get(file) else {
            continue;
        };
        let Ok(parsed) = ComposeFile::parse(text) else {
            continue;
        };
        for service in parsed.services.values() {
            for key in service.environment.keys() {
                if let Some(value) = service.env(key) {
                    urls.push((file, text, value));
                }
            }
        }
    }
    for (file, text, datasource) in grafana::datasources(sources) {
        urls.extend(datasource.url.map(|url| (file, text, url)));
    }
    for (file, text, url) in urls {
        let Some((host, port)) = url_host_port(&url) else {
            continue;
        };
        let Some(service) = model.services.get(host) else {
            continue;
        };
        let ports = container_ports(service);
        let fine = port.is_some_and(|port| ports.contains(&port));
        if !fine {
            problems.push(Problem::near(
                file,
                text,
                &url,
                format!(
                    "{url} names service {host}, which listens on {ports:?} in compose/; use one of those ports"
                ),
            ));
        }
    }
}

/// Host and port of `scheme://[user[:password]@]host[:port][/…]`.
fn url_host_port(url: &str) -> Option<(&str, Option<u16>)> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    Some(match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()),
        None => (authority, None),
    })
}

fn check_app(sources: &Sources, model: &ComposeFile, app: &App, problems: &mut Vec<Problem>) {
    let service = &model.services[&app.service];
    let compose_text = sources.get(xtask::compose::MAIN).unwrap_or_default();
    let published: BTreeSet<u16> = service
        .published_ports()
        .unwrap_or_default()
        .iter()
        .map(|port| port.container)
        .collect();
    if !published.contains(&app.port) {
        problems.push(Problem::near(
            xtask::compose::MAIN,
            compose_text,
            &format!("{}:", app.binary.listen_var),
            format!(
                "service {} listens on {} ({}) but does not publish it; add \"127.0.0.1:{port}:{port}\" to its ports",
                app.service,
                app.port,
                app.binary.listen_var,
                port = app.port
            ),
        ));
    }
    // The compose healthcheck's URL: the listen port and a route the crate serves.
    let healthcheck = service.healthcheck_argv().unwrap_or_default().join(" ");
    let mut seen = BTreeSet::new();
    for url in healthcheck
        .split_whitespace()
        .filter(|word| word.starts_with("http://"))
    {
        let Some((_, port)) = url_host_port(url) else {
            continue;
        };
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
            .unwrap_or("/");
        if !seen.insert((port, path)) {
            continue;
        }
        if port != Some(app.port) || !app.binary.routes.contains(&path) {
            problems.push(Problem::near(
                xtask::compose::MAIN,
                compose_text,
                url,
                format!(
                    "service {}'s healthcheck asks {url}, but it listens on {} and serves {}; fix the URL",
                    app.service,
                    app.port,
                    app.binary.routes.join(", ")
                ),
            ));
        }
    }
}

/// Every Dockerfile stage that sets a binary's listen variable keeps the port of its default.
fn check_dockerfile(sources: &Sources, problems: &mut Vec<Problem>) {
    let Some(text) = sources.get(DOCKERFILE) else {
        return;
    };
    for stage in dockerfile::stages(text) {
        for setting in &stage.env {
            let Some(binary) = binaries::listening_on(&setting.name) else {
                continue;
            };
            if port_of(&setting.value) != Some(binary.default_port()) {
                problems.push(Problem::new(
                    DOCKERFILE,
                    Some(setting.line),
                    format!(
                        "{}={} is not on the port of {}'s default, {}, which compose/ and fly/ use too; use port {}",
                        setting.name,
                        setting.value,
                        binary.name,
                        binary.default_listen_addr,
                        binary.default_port()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPOSE: &str = "services:
  api:
    image: ${AMPEL_API_IMAGE:-localhost/ampel/api:dev}
    build:
      context: ..
    environment:
      API_LISTEN_ADDR: \"0.0.0.0:8080\"
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: \"http://tempo:4318/v1/traces\"
    ports:
      - \"127.0.0.1:8080:8080\"
    healthcheck:
      test: [\"CMD-SHELL\", \"wget -q -O /dev/null http://127.0.0.1:8080/ready\"]
  tempo:
    image: ${AMPEL_TEMPO_IMAGE:-grafana/tempo:2}
    ports:
      - \"127.0.0.1:3200:3200\"
      - \"127.0.0.1:4318:4318\"
  prometheus:
    image: ${AMPEL_PROMETHEUS_IMAGE:-prom/prometheus:v3}
    ports:
      - \"127.0.0.1:9090:9090\"
    volumes:
      - ../observability/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro
";

    const PROMETHEUS: &str = "scrape_configs:
  - job_name: api
    metrics_path: /metrics
    static_configs:
      - targets: [\"api:8080\"]
  - job_name: prometheus
    static_configs:
      - targets: [\"localhost:9090\"]
";

    const DOCKERFILE_TEXT: &str = "FROM runtime AS api\nENV API_LISTEN_ADDR=0.0.0.0:8080\n";
    const DATASOURCES: &str =
        "datasources:\n  - uid: prometheus\n    url: http://prometheus:9090\n";

    fn problems_with(replace: &[(&str, &str, &str)]) -> Vec<String> {
        let mut files = [
            ("compose/compose.yaml", COMPOSE.to_owned()),
            ("compose/compose.peers.yaml", "services: {}\n".to_owned()),
            (PROMETHEUS_YML, PROMETHEUS.to_owned()),
            (DOCKERFILE, DOCKERFILE_TEXT.to_owned()),
            (
                "observability/grafana/provisioning/datasources/datasources.yaml",
                DATASOURCES.to_owned(),
            ),
        ];
        for (file, from, to) in replace {
            let entry = files.iter_mut().find(|(name, _)| name == file).unwrap();
            assert!(entry.1.contains(from), "{from:?} not in {file}");
            entry.1 = entry.1.replace(from, to);
        }
        let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
        let mut problems = Vec::new();
        check(&Sources::from_files(&files), &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    /// The fixture is consistent, so each test below shows one rule.
    #[test]
    fn consistent_wiring_passes() {
        assert_eq!(problems_with(&[]), Vec::<String>::new());
    }

    /// A scrape target on a port the service does not listen on.
    #[test]
    fn scrape_target_wrong_port() {
        let problems = problems_with(&[(PROMETHEUS_YML, "api:8080", "api:9999")]);
        assert_eq!(
            problems,
            [
                "observability/prometheus/prometheus.yml:5: target api:9999: service api listens on {8080} in compose/, not 9999; use its port"
            ]
        );
    }

    /// A scrape target that is no compose service.
    #[test]
    fn scrape_target_unknown_host() {
        let problems = problems_with(&[(PROMETHEUS_YML, "api:8080", "apii:8080")]);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("target apii:8080 is not a compose service")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("compose service api serves metrics but no job scrapes it")),
            "{problems:?}"
        );
    }

    /// A job not named after its service.
    #[test]
    fn job_not_named_after_service() {
        let problems = problems_with(&[(PROMETHEUS_YML, "job_name: api", "job_name: ampel-api")]);
        assert_eq!(
            problems,
            [
                "observability/prometheus/prometheus.yml:2: job ampel-api is not a compose service; name each job after the service it scrapes"
            ]
        );
    }

    /// A scrape of a path that is not the binary's metrics route.
    #[test]
    fn metrics_path_not_the_metrics_route() {
        let problems = problems_with(&[(
            PROMETHEUS_YML,
            "metrics_path: /metrics",
            "metrics_path: /ready",
        )]);
        assert_eq!(
            problems,
            [format!(
                "observability/prometheus/prometheus.yml:2: job api scrapes /ready, but ampel-api serves metrics on {0}; set metrics_path: {0}",
                ampel_api::routes::METRICS
            )]
        );
    }

    /// compose moves the api off its default port, consistently everywhere but in the crate:
    /// the linked default catches it.
    #[test]
    fn compose_port_off_the_crate_default() {
        let problems = problems_with(&[
            ("compose/compose.yaml", "8080", "9999"),
            (PROMETHEUS_YML, "api:8080", "api:9999"),
        ]);
        assert_eq!(
            problems,
            [format!(
                "compose/compose.yaml:7: service api: API_LISTEN_ADDR=0.0.0.0:9999 is not on the port of ampel-api's default, ampel_api::config::DEFAULT_LISTEN_ADDR ({}), which the Dockerfile and fly/ use too; use port {}",
                ampel_api::config::DEFAULT_LISTEN_ADDR,
                binaries::API.default_port()
            )]
        );
    }

    /// The Dockerfile's ENV is off the crate's default port.
    #[test]
    fn dockerfile_env_off_the_crate_default() {
        let problems = problems_with(&[(DOCKERFILE, "0.0.0.0:8080", "0.0.0.0:80")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "Dockerfile:2: API_LISTEN_ADDR=0.0.0.0:80 is not on the port of ampel-api's default"
            ),
            "{problems:?}"
        );
    }

    /// The listen port is not published.
    #[test]
    fn listen_port_not_published() {
        let problems = problems_with(&[(
            "compose/compose.yaml",
            "127.0.0.1:8080:8080",
            "127.0.0.1:8080:80",
        )]);
        assert!(
            problems.iter().any(|p| p
                .contains("service api listens on 8080 (API_LISTEN_ADDR) but does not publish it")),
            "{problems:?}"
        );
    }

    /// The healthcheck asks a path the app does not serve.
    #[test]
    fn healthcheck_path_not_a_route() {
        let problems = problems_with(&[("compose/compose.yaml", "8080/ready", "8080/readyz")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("compose/compose.yaml:12: service api's healthcheck asks http://127.0.0.1:8080/readyz"), "{problems:?}");
    }

    /// An OTLP endpoint on a port the backend does not listen on.
    #[test]
    fn env_url_wrong_port() {
        let problems = problems_with(&[("compose/compose.yaml", "tempo:4318", "tempo:4317")]);
        assert_eq!(
            problems,
            [
                "compose/compose.yaml:8: http://tempo:4317/v1/traces names service tempo, which listens on {3200, 4318} in compose/; use one of those ports"
            ]
        );
    }

    /// A Grafana data source on a port the service does not listen on.
    #[test]
    fn datasource_url_wrong_port() {
        let problems = problems_with(&[(
            "observability/grafana/provisioning/datasources/datasources.yaml",
            "prometheus:9090",
            "prometheus:9091",
        )]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("http://prometheus:9091 names service prometheus"),
            "{problems:?}"
        );
    }

    /// A listen variable no binary reads.
    #[test]
    fn listen_variable_unknown_to_the_binaries() {
        let problems = problems_with(&[(
            "compose/compose.yaml",
            "API_LISTEN_ADDR:",
            "APP_LISTEN_ADDR:",
        )]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("sets APP_LISTEN_ADDR, which no binary reads"),
            "{problems:?}"
        );
    }

    /// A prometheus.yml that is not a Prometheus config.
    #[test]
    fn unparsable_prometheus_config() {
        let problems = problems_with(&[(
            PROMETHEUS_YML,
            "scrape_configs:\n",
            "scrape_configs: 5\nx:\n",
        )]);
        assert!(
            problems.iter().any(|p| p
                .starts_with("observability/prometheus/prometheus.yml:1: not a Prometheus config")),
            "{problems:?}"
        );
    }

    /// On the real repository the rules find both apps and the binaries behind them (a rule
    /// that found nothing would pass without checking anything).
    #[test]
    fn real_repository_apps() {
        let (sources, _) = Sources::read(&xtask::util::project_root());
        let model = compose::model(&sources).unwrap();
        let apps = apps(&sources, &model, &mut Vec::new());
        let found: Vec<(&str, &str)> = apps
            .iter()
            .map(|app| (app.service.as_str(), app.binary.name))
            .collect();
        assert_eq!(found, [("api", "ampel-api"), ("worker", "ampel-worker")]);
    }

    /// URLs with credentials and paths are split correctly.
    #[test]
    fn url_parts() {
        assert_eq!(
            url_host_port("postgres://ampel:ampel@postgres:5432/ampel"),
            Some(("postgres", Some(5432)))
        );
        assert_eq!(
            url_host_port("https://api.github.com"),
            Some(("api.github.com", None))
        );
        assert_eq!(
            url_host_port("redis://redis:6379"),
            Some(("redis", Some(6379)))
        );
    }
}
