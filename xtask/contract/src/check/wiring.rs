//! Rules on how the pieces connect: ports and HTTP paths must agree across compose/, Prometheus'
//! scrape targets, Grafana's data-source URLs and the binaries (linked: `crate::binaries`).
//!
//! Each service compose builds is read into a [`Deployment`]: the Dockerfile stage it builds
//! (ENTRYPOINT, ENV) under its own environment, its published ports, its healthcheck's URLs and
//! the scrapes aimed at it; the binary that stage runs is the one it is held to. The Dockerfile's
//! stages are held to their binaries as they are; fly/ is the deploy's preflight's
//! (`crate::deploy::preflight`).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Problem, Sources, compose, grafana, line_of};
use crate::binaries::{self, Binary, Deployment, Kind, Listed, Request};
use crate::deploy::dockerfile;
use crate::problem::{Stated, line_at};
use otel_testkit::compose::interpolate;
use xtask::compose::{AmpelService as _, COLLECTOR, ComposeFile, MAIN, Service};

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

/// The job names prometheus.yml scrapes, if it parses.
pub fn scrape_jobs(sources: &Sources) -> Option<BTreeSet<String>> {
    let config: PrometheusConfig = serde_yaml::from_str(sources.get(PROMETHEUS_YML)?).ok()?;
    Some(
        config
            .scrape_configs
            .into_iter()
            .map(|job| job.job_name)
            .collect(),
    )
}

/// The compose services that run one of the binaries and that a Prometheus job of their name
/// scrapes, each with its binary: what the stack exports metrics as, by job. Empty where compose
/// or prometheus.yml does not parse (`check` says why).
pub fn scraped_apps(sources: &Sources) -> Vec<(String, &'static Binary)> {
    let (Some(model), Some(jobs)) = (compose::model(sources), scrape_jobs(sources)) else {
        return Vec::new();
    };
    let apps = apps(sources, &model, None, &mut Vec::new());
    (apps.into_iter())
        .filter(|(name, ..)| jobs.contains(name))
        .map(|(name, binary, _)| (name, binary))
        .collect()
}

/// One scrape target that names a compose service.
struct Scrape {
    /// As written, e.g. `localhost:9090`.
    target: String,
    service: String,
    request: Stated<Request>,
}

pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    // Compose files that do not parse are reported by the compose rules.
    let Some(model) = compose::model(sources) else {
        return;
    };
    let dockerfile = sources.get(DOCKERFILE).unwrap_or_default();
    problems.extend(dockerfile::problems(DOCKERFILE, dockerfile));
    let scrapes = scrapes(sources, &model, problems);
    let apps = apps(sources, &model, scrapes.as_deref(), problems);
    for (_, binary, deployment) in &apps {
        problems.extend(binary.problems(deployment));
    }
    let is_app = |name: &str| apps.iter().any(|(service, ..)| service == name);
    let Some(scrapes) = scrapes else { return };
    for scrape in scrapes.iter().filter(|scrape| !is_app(&scrape.service)) {
        let ports = container_ports(&model.services[&scrape.service]);
        let port = scrape.request.value.port.unwrap_or_default();
        if !ports.contains(&port) {
            problems.push(scrape.request.problem(format!(
                "target {}: service {} listens on {ports:?} in compose/, not {port}; use its port",
                scrape.target, scrape.service
            )));
        }
    }
    let text = sources.get(PROMETHEUS_YML).unwrap_or_default();
    for name in model
        .services
        .keys()
        .filter(|name| name.ends_with("-exporter"))
    {
        if !scrapes.iter().any(|scrape| &scrape.service == name) {
            problems.push(Problem::near(PROMETHEUS_YML, text, "scrape_configs:", format!(
                "compose service {name} serves metrics but no job scrapes it; add a job {name} with target {name}:<port>"
            )));
        }
    }
    check_urls(sources, &model, problems);
    check_export(sources, &model, &apps, problems);
}

/// The OTLP endpoint variables the SDK reads, the general one first.
const OTLP_ENDPOINTS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

/// Every app that exports telemetry exports to the collector, in each compose file that sets its
/// endpoints, and sets at least one endpoint once the files are merged: a store named there would
/// skip the collector's queue and retries.
fn check_export(
    sources: &Sources,
    model: &ComposeFile,
    apps: &[(String, &Binary, Deployment)],
    problems: &mut Vec<Problem>,
) {
    let exporting = apps
        .iter()
        .filter(|(_, binary, _)| binary.service_name.is_some());
    for (name, ..) in exporting {
        for file in [MAIN, xtask::compose::PEERS] {
            let Some(text) = sources.get(file) else {
                continue;
            };
            let Some(service) = ComposeFile::parse(text)
                .ok()
                .and_then(|parsed| parsed.services.get(name).cloned())
            else {
                continue;
            };
            for key in OTLP_ENDPOINTS {
                let Some(url) = service.env(key) else {
                    continue;
                };
                if url_host_port(&url).is_none_or(|(host, _)| host != COLLECTOR) {
                    problems.push(Problem::near(file, text, &url, format!(
                        "service {name}: {key}={url} skips the collector; point it at http://{COLLECTOR}:4318 (the collector's config names the stores)"
                    )));
                }
            }
        }
        if OTLP_ENDPOINTS
            .iter()
            .all(|key| model.services[name].env(key).is_none())
        {
            let text = sources.get(MAIN).unwrap_or_default();
            problems.push(Problem::near(MAIN, text, &format!("  {name}:"), format!(
                "service {name} sets no OTLP endpoint, so it exports nothing; set OTEL_EXPORTER_OTLP_ENDPOINT=http://{COLLECTOR}:4318"
            )));
        }
    }
}

/// The scrape targets of prometheus.yml that name a compose service; `None` when it is missing or
/// no Prometheus config.
fn scrapes(
    sources: &Sources,
    model: &ComposeFile,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Scrape>> {
    let Some(text) = sources.get(PROMETHEUS_YML) else {
        problems.push(Problem::new(
            PROMETHEUS_YML,
            None,
            "missing; compose mounts it: restore it from git",
        ));
        return None;
    };
    let config: PrometheusConfig = match serde_yaml::from_str(text) {
        Ok(config) => config,
        Err(err) => {
            let line = err.location().map(|location| location.line());
            problems.push(Problem::new(
                PROMETHEUS_YML,
                line,
                format!("not a Prometheus config ({err}); fix the YAML"),
            ));
            return None;
        }
    };
    // `localhost` in a target is the service Prometheus itself runs in.
    let prometheus_service = model.services.iter().find_map(|(name, service)| {
        let mounts = service
            .volumes
            .iter()
            .filter_map(|volume| compose::repo_path(volume));
        mounts
            .into_iter()
            .any(|source| source == PROMETHEUS_YML)
            .then_some(name.as_str())
    });
    let mut scrapes = Vec::new();
    for job in &config.scrape_configs {
        if !model.services.contains_key(&job.job_name) {
            problems.push(Problem::near(
                PROMETHEUS_YML,
                text,
                &format!("job_name: {}", job.job_name),
                format!(
                    "job {} is not a compose service; name each job after the service it scrapes",
                    job.job_name
                ),
            ));
        }
        for target in job.static_configs.iter().flat_map(|config| &config.targets) {
            let at = |message: String| Problem::near(PROMETHEUS_YML, text, target, message);
            let Some((host, port)) = target
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            else {
                problems.push(at(format!("target {target:?} is not host:port; fix it")));
                continue;
            };
            let service = match host {
                "localhost" | "127.0.0.1" => prometheus_service,
                host => model.services.contains_key(host).then_some(host),
            };
            let Some(service) = service else {
                problems.push(at(format!(
                    "target {target} is not a compose service; use the service's name as host"
                )));
                continue;
            };
            // Prometheus' own default path.
            let path = job.metrics_path.as_deref().unwrap_or("/metrics");
            let request = Request::new(Some(port), Some(path));
            scrapes.push(Scrape {
                target: target.clone(),
                service: service.to_owned(),
                request: Stated::new(request, PROMETHEUS_YML, line_of(text, target)),
            });
        }
    }
    Some(scrapes)
}

/// The services compose builds, each with the binary its Dockerfile stage runs and the
/// deployment compose makes of it.
fn apps(
    sources: &Sources,
    model: &ComposeFile,
    scrapes: Option<&[Scrape]>,
    problems: &mut Vec<Problem>,
) -> Vec<(String, &'static Binary, Deployment)> {
    let text = sources.get(MAIN).unwrap_or_default();
    let stages = dockerfile::stages(DOCKERFILE, sources.get(DOCKERFILE).unwrap_or_default());
    let mut apps = Vec::new();
    for (name, service) in model.services.iter().filter(|(_, s)| s.build.is_some()) {
        // Lines inside the service's block, which ends at the next line indented as its key.
        let start = text.find(&format!("\n  {name}:")).map_or(0, |at| at + 1);
        let mut ends = text[start..]
            .match_indices("\n  ")
            .map(|(at, _)| start + at);
        let end = ends
            .find(|&at| !text[at + 3..].starts_with(' '))
            .unwrap_or(text.len());
        let line = |needle: &str| Some(line_at(text, start + text[start..end].find(needle)?));
        let at = |value: String, needle: &str| Stated::new(value, MAIN, line(needle));
        let build = service
            .build
            .as_ref()
            .and_then(|build| build.get("target")?.as_str());
        // Compose's default for `${AMPEL_APP_TARGET_SUFFIX:-}`: the images built from source.
        let target = interpolate(build.unwrap_or_default(), |_| None);
        let target = at(target, "target:");
        let stage = match dockerfile::find(&stages, DOCKERFILE, &target) {
            Ok(stage) => stage,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let program = stage
            .entrypoint
            .as_ref()
            .map(|program| program.value.as_str());
        let Some(binary) = program.and_then(binaries::running) else {
            let known: Vec<&str> = binaries::ALL.iter().map(|binary| binary.name).collect();
            problems.push(target.problem(format!(
                "service {name} builds stage {}, which runs {program:?}, none of {}; fix its build target",
                target.value,
                known.join(", ")
            )));
            continue;
        };
        let mut deployment = stage.deployment(DOCKERFILE);
        deployment.name = format!("service {name}");
        for key in service.environment.keys() {
            let value = service.env(key).unwrap_or_default();
            deployment
                .env
                .insert(key.clone(), at(value, &format!("{key}:")));
        }
        let published = service.published_ports().unwrap_or_default();
        let routes = service.ports.iter().zip(published).map(|(spec, port)| {
            Stated::new(Request::new(Some(port.container), None), MAIN, line(spec))
        });
        let mut probes: Vec<Stated<Request>> = Vec::new();
        for (url, request) in healthcheck_urls(service) {
            if !probes.iter().any(|probe| probe.value == request) {
                probes.push(Stated::new(request, MAIN, line(&url)));
            }
        }
        let ports = at(format!("service {name}'s ports"), "ports:");
        let healthcheck = at(format!("service {name}'s healthcheck"), "healthcheck:");
        deployment.lists = vec![
            Listed::new(Kind::Route, ports, routes.collect()),
            Listed::new(Kind::Probe, healthcheck, probes),
        ];
        if let Some(scrapes) = scrapes {
            let prometheus = sources.get(PROMETHEUS_YML).unwrap_or_default();
            let section = format!("scrape_configs (job {name}, target {name}:PORT)");
            let section = Stated::new(
                section,
                PROMETHEUS_YML,
                line_of(prometheus, "scrape_configs:"),
            );
            let entries = scrapes.iter().filter(|scrape| &scrape.service == name);
            let entries = entries.map(|scrape| scrape.request.clone()).collect();
            deployment
                .lists
                .push(Listed::new(Kind::Scrape, section, entries));
        }
        apps.push((name.clone(), binary, deployment));
    }
    apps
}

/// The `http://` URLs a service's healthcheck asks, with the request each makes.
fn healthcheck_urls(service: &Service) -> Vec<(String, Request)> {
    let script = service.healthcheck_argv().unwrap_or_default().join(" ");
    let urls = script
        .split_whitespace()
        .filter(|word| word.starts_with("http://"));
    let request = |url: &str| {
        let (_, port) = url_host_port(url)?;
        let (_, rest) = url.split_once("://")?;
        let path = rest.find('/').map_or("/", |at| &rest[at..]);
        Some((url.to_owned(), Request::new(port, Some(path))))
    };
    urls.filter_map(request).collect()
}

/// The ports a service listens on inside the network: its published container ports.
fn container_ports(service: &Service) -> BTreeSet<u16> {
    service.container_ports().into_iter().collect()
}

/// URLs that name a compose service (in compose environments and Grafana data sources) must use
/// one of its ports.
fn check_urls(sources: &Sources, model: &ComposeFile, problems: &mut Vec<Problem>) {
    let mut urls: Vec<(&str, &str, String)> = Vec::new();
    for file in [MAIN, xtask::compose::PEERS] {
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
        if !port.is_some_and(|port| ports.contains(&port)) {
            problems.push(Problem::near(file, text, &url, format!(
                "{url} names service {host}, which listens on {ports:?} in compose/; use one of those ports"
            )));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binaries::SERVICE_NAME_VAR;
    use crate::problem::{Case, assert_cases};
    use ampel_api::config::WEB_DIR_VAR;

    const COMPOSE: &str = "services:
  api:
    image: ${AMPEL_API_IMAGE:-localhost/ampel/api:dev}
    build:
      context: ..
      target: api${AMPEL_APP_TARGET_SUFFIX:-}
    environment:
      OTEL_EXPORTER_OTLP_ENDPOINT: \"http://otel-collector:4318\"
    ports:
      - \"127.0.0.1:8080:8080\"
    healthcheck:
      test: [\"CMD-SHELL\", \"wget -q -O /dev/null http://127.0.0.1:8080/ready\"]
  tempo:
    image: ${AMPEL_TEMPO_IMAGE:-grafana/tempo:2}
    ports:
      - \"127.0.0.1:3200:3200\"
    expose:
      - \"4318\"
  redis-exporter:
    image: ${AMPEL_REDIS_EXPORTER_IMAGE:-oliver006/redis_exporter:v1}
    ports:
      - \"127.0.0.1:9121:9121\"
  prometheus:
    image: ${AMPEL_PROMETHEUS_IMAGE:-prom/prometheus:v3}
    ports:
      - \"127.0.0.1:9090:9090\"
    volumes:
      - ../observability/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro
  otel-collector:
    image: ${AMPEL_OTEL_COLLECTOR_IMAGE:-otel/opentelemetry-collector-contrib:0}
    environment:
      OTELCOL_TRACES_ENDPOINT: \"http://tempo:4318\"
    ports:
      - \"127.0.0.1:4318:4318\"
";

    const PROMETHEUS: &str = "scrape_configs:
  - job_name: api
    metrics_path: /metrics
    static_configs:
      - targets: [\"api:8080\"]
  - job_name: redis-exporter
    static_configs:
      - targets: [\"redis-exporter:9121\"]
  - job_name: prometheus
    static_configs:
      - targets: [\"localhost:9090\"]
";

    /// The api's stage, the page (`frontend/dist`) in the folder its ENV names.
    fn dockerfile_text() -> String {
        format!(
            "FROM debian AS runtime\nFROM runtime AS api\nENV API_LISTEN_ADDR=0.0.0.0:8080\n\
             EXPOSE 8080\nENTRYPOINT [\"/usr/local/bin/ampel-api\"]\nENV {WEB_DIR_VAR}=/srv/web\n\
             COPY frontend/dist /srv/web\n"
        )
    }
    const DATASOURCES: &str = "observability/grafana/provisioning/datasources/datasources.yaml";

    /// The fixtures above after each `(file, from, to)` replacement.
    fn sources_with(replace: &[(&str, &str, &str)]) -> Sources {
        let mut files = [
            (MAIN, COMPOSE.to_owned()),
            (xtask::compose::PEERS, "services: {}\n".to_owned()),
            (PROMETHEUS_YML, PROMETHEUS.to_owned()),
            (DOCKERFILE, dockerfile_text()),
            (
                DATASOURCES,
                "datasources:\n  - uid: prom\n    url: http://prometheus:9090\n".into(),
            ),
        ];
        for (file, from, to) in replace {
            let entry = files.iter_mut().find(|(name, _)| name == file).unwrap();
            assert!(entry.1.contains(from), "{from:?} not in {file}");
            entry.1 = entry.1.replace(from, to);
        }
        let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
        Sources::from_files(&files)
    }

    /// The problems of the fixtures after each replacement, as `check` prints them (sorted,
    /// each once).
    fn problems_with(replace: &[(&str, &str, &str)]) -> Vec<String> {
        let mut problems = Vec::new();
        check(&sources_with(replace), &mut problems);
        problems.sort();
        problems.dedup();
        problems.iter().map(ToString::to_string).collect()
    }

    /// An app is one an SLO may name only while a job of its name scrapes it; exporters
    /// (no binary of ours) never are.
    #[test]
    fn scraped_apps_are_the_binaries_prometheus_scrapes_by_name() {
        let names = |replace: &[(&str, &str, &str)]| -> Vec<String> {
            let apps = scraped_apps(&sources_with(replace));
            apps.into_iter().map(|(name, _)| name).collect()
        };
        assert_eq!(names(&[]), ["api"]);
        let apps = scraped_apps(&sources_with(&[]));
        assert_eq!(apps[0].1.name, binaries::API.name);
        assert!(names(&[(PROMETHEUS_YML, "job_name: api", "job_name: web")]).is_empty());
        assert!(names(&[(PROMETHEUS_YML, "scrape_configs:", "scrape_configs: [")]).is_empty());
    }

    /// Each broken input and every problem it gives, each matched by a part of its text; the
    /// fixture itself gives none.
    #[test]
    fn each_rule_catches_its_broken_input() {
        let default = format!(
            "is not on the port of ampel-api's default, {}",
            binaries::API.default_listen_addr
        );
        let env = |line: &str| {
            (
                MAIN,
                "    environment:\n",
                format!("    environment:\n      {line}\n"),
            )
        };
        let (local, port_only, unknown, page_moved) = (
            env("API_LISTEN_ADDR: \"127.0.0.1:8080\""),
            env("API_LISTEN_ADDR: \"8080\""),
            env("APP_LISTEN_ADDR: \"0.0.0.0:8080\""),
            env(&format!("{WEB_DIR_VAR}: \"/srv/other\"")),
        );
        // The service name: only the crate's own may be restated.
        let service = binaries::API.service_name.unwrap();
        let (named, renamed) = (
            env(&format!("{SERVICE_NAME_VAR}: \"{}\"", service.value)),
            env(&format!("{SERVICE_NAME_VAR}: \"ampel\"")),
        );
        let renamed_message = format!(
            "compose/compose.yaml:8: {SERVICE_NAME_VAR}=\"ampel\", but ampel-api's telemetry is looked for under {service}; set it to {} or remove it",
            service.value
        );
        let web_env = format!("ENV {WEB_DIR_VAR}=/srv/web\n");
        let (no_web_dir, page_elsewhere, page_override, no_page) = (
            format!(
                "Dockerfile:2: stage api COPYs the page into /srv/web (Dockerfile:6), but sets no {WEB_DIR_VAR}, so ampel-api serves no page; add ENV {WEB_DIR_VAR}=/srv/web"
            ),
            format!(
                "Dockerfile:6: {WEB_DIR_VAR}=\"/srv/web\", but stage api COPYs the page into /srv/page (Dockerfile:7), so ampel-api fails to start; set ENV {WEB_DIR_VAR}=/srv/page"
            ),
            format!(
                "compose/compose.yaml:8: {WEB_DIR_VAR}=\"/srv/other\", but stage api COPYs the page into /srv/web (Dockerfile:7), so ampel-api fails to start; remove it: the image's ENV sets it"
            ),
            format!(
                "Dockerfile:6: {WEB_DIR_VAR}=\"/srv/web\", but stage api COPYs no page, so ampel-api fails to start; remove it or COPY the page (from frontend/) there"
            ),
        );
        let no_check =
            "      test: [\"CMD-SHELL\", \"wget -q -O /dev/null http://127.0.0.1:8080/ready\"]\n";
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (&[], &[]),
            // Moved consistently everywhere but in the crate: the linked default catches it, and
            // every place that must move back.
            (&[(MAIN, "8080", "9999"), (PROMETHEUS_YML, "api:8080", "api:9999"), (DOCKERFILE, "8080", "9999")], &[&format!("Dockerfile:3: API_LISTEN_ADDR=\"0.0.0.0:9999\" {default}"), "Dockerfile:4: stage api's EXPOSE: port 9999", "compose/compose.yaml:10: service api's ports: port 9999", "compose/compose.yaml:12: service api's healthcheck: port 9999", "prometheus.yml:5: scrape_configs (job api, target api:PORT): port 9999"]),
            (&[(DOCKERFILE, "ENV API_LISTEN_ADDR=0.0.0.0:8080\n", "")], &["Dockerfile:2: stage api sets no API_LISTEN_ADDR, so ampel-api listens on"]),
            (&[(DOCKERFILE, "EXPOSE 8080", "EXPOSE 80")], &["Dockerfile:4: stage api's EXPOSE: port 80, but ampel-api serves HTTP on port 8080 (API_LISTEN_ADDR); use port 8080"]),
            (&[(local.0, local.1, &local.2)], &["compose/compose.yaml:8: API_LISTEN_ADDR=\"127.0.0.1:8080\" binds one interface"]),
            (&[(port_only.0, port_only.1, &port_only.2)], &["compose/compose.yaml:8: API_LISTEN_ADDR=\"8080\" is not an address like 0.0.0.0:8080; fix it"]),
            (&[(unknown.0, unknown.1, &unknown.2)], &["compose/compose.yaml:8: APP_LISTEN_ADDR is not read by ampel-api, which listens on API_LISTEN_ADDR and API_METRICS_LISTEN_ADDR; fix the variable's name"]),
            (&[(named.0, named.1, &named.2)], &[]),
            (&[(renamed.0, renamed.1, &renamed.2)], &[&renamed_message]),
            // The page's folder: the image's ENV names where its COPY put the page; compose
            // may not point elsewhere.
            (&[(DOCKERFILE, &web_env, "")], &[&no_web_dir]),
            (&[(DOCKERFILE, "COPY frontend/dist /srv/web", "COPY frontend/dist /srv/page")], &[&page_elsewhere]),
            (&[(page_moved.0, page_moved.1, &page_moved.2)], &[&page_override]),
            (&[(DOCKERFILE, "COPY frontend/dist /srv/web\n", "")], &[&no_page]),
            (&[(MAIN, "target: api$", "target: apx$")], &["compose/compose.yaml:6: Dockerfile has no stage `AS apx`; add it or change this build target"]),
            (&[(DOCKERFILE, "bin/ampel-api", "bin/sh")], &["compose/compose.yaml:6: service api builds stage api, which runs Some(\"/usr/local/bin/sh\"), none of ampel-api, ampel-worker, alert-catcher; fix its build target"]),
            (&[(MAIN, "127.0.0.1:8080:8080", "127.0.0.1:8080:80")], &["compose/compose.yaml:10: service api's ports: port 80, but ampel-api serves HTTP on port 8080 (API_LISTEN_ADDR); use port 8080"]),
            (&[(MAIN, "8080/ready", "8080/readyz")], &["compose/compose.yaml:12: service api's healthcheck: port 8080, path /readyz, but ampel-api serves /health, /ready, /version, /metrics on port 8080 (API_LISTEN_ADDR); use port 8080, path /health"]),
            (&[(MAIN, "127.0.0.1:8080/ready", "127.0.0.1:8081/ready")], &["compose/compose.yaml:12: service api's healthcheck: port 8081, path /ready, but"]),
            (&[(MAIN, no_check, "      disable: true\n")], &["compose/compose.yaml:11: service api's healthcheck: none for ampel-api; add port 8080, path /health"]),
            (&[(PROMETHEUS_YML, "api:8080", "api:9999")], &["prometheus.yml:5: scrape_configs (job api, target api:PORT): port 9999, path /metrics, but ampel-api serves /metrics on port 8080 (API_LISTEN_ADDR); use port 8080, path /metrics"]),
            (&[(PROMETHEUS_YML, "metrics_path: /metrics", "metrics_path: /ready")], &["prometheus.yml:5: scrape_configs (job api, target api:PORT): port 8080, path /ready, but"]),
            (&[(PROMETHEUS_YML, "api:8080", "apii:8080")], &["prometheus.yml:5: target apii:8080 is not a compose service; use the service's name as host", "prometheus.yml:1: scrape_configs (job api, target api:PORT): none for ampel-api; add port 8080, path /metrics"]),
            (&[(PROMETHEUS_YML, "job_name: api", "job_name: ampel-api")], &["prometheus.yml:2: job ampel-api is not a compose service; name each job after the service it scrapes"]),
            (&[(PROMETHEUS_YML, "localhost:9090", "localhost:9091")], &["prometheus.yml:11: target localhost:9091: service prometheus listens on {9090} in compose/, not 9091; use its port"]),
            (&[(PROMETHEUS_YML, "localhost:9090", "localhost")], &["prometheus.yml:11: target \"localhost\" is not host:port; fix it"]),
            (&[(PROMETHEUS_YML, "redis-exporter:9121", "prometheus:9090")], &["prometheus.yml:1: compose service redis-exporter serves metrics but no job scrapes it; add a job redis-exporter with target redis-exporter:<port>"]),
            (&[(PROMETHEUS_YML, "scrape_configs:\n", "scrape_configs: 5\nx:\n")], &["prometheus.yml:1: not a Prometheus config"]),
            (&[(MAIN, "tempo:4318", "tempo:4317")], &["compose/compose.yaml:32: http://tempo:4317 names service tempo, which listens on {3200, 4318} in compose/; use one of those ports"]),
            (&[(MAIN, "http://otel-collector:4318", "http://tempo:4318/v1/traces")], &["compose/compose.yaml:8: service api: OTEL_EXPORTER_OTLP_ENDPOINT=http://tempo:4318/v1/traces skips the collector; point it at http://otel-collector:4318"]),
            (&[(MAIN, "      OTEL_EXPORTER_OTLP_ENDPOINT: \"http://otel-collector:4318\"\n", "")], &["compose/compose.yaml:2: service api sets no OTLP endpoint, so it exports nothing"]),
            (&[(xtask::compose::PEERS, "services: {}", "services:\n  api:\n    environment:\n      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: \"http://victorialogs:9428/insert/opentelemetry/v1/logs\"")], &["compose/compose.peers.yaml:4: service api: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=http://victorialogs:9428/insert/opentelemetry/v1/logs skips the collector"]),
            (&[(DATASOURCES, "prometheus:9090", "prometheus:9091")], &["datasources.yaml:3: http://prometheus:9091 names service prometheus, which listens on {9090}"]),
        ];
        assert_cases(cases, problems_with);
        let missing =
            Sources::from_files(&[(MAIN, COMPOSE), (xtask::compose::PEERS, "services: {}\n")]);
        let mut problems = Vec::new();
        check(&missing, &mut problems);
        let missing = format!("{PROMETHEUS_YML}: missing; compose mounts it: restore it from git");
        assert!(
            problems.iter().any(|p| p.to_string() == missing),
            "{problems:#?}"
        );
    }

    /// On the real repository the rules find every app and the binary behind it (a rule
    /// that found nothing would pass without checking anything).
    #[test]
    fn real_repository_apps() {
        let (sources, _) = Sources::read(&xtask::util::project_root());
        let model = compose::model(&sources).unwrap();
        let apps = apps(&sources, &model, Some(&[]), &mut Vec::new());
        let found: Vec<(&str, &str)> = apps
            .iter()
            .map(|(service, binary, _)| (service.as_str(), binary.name))
            .collect();
        assert_eq!(
            found,
            [
                ("alert-catcher", "alert-catcher"),
                ("api", "ampel-api"),
                ("worker", "ampel-worker")
            ]
        );
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
