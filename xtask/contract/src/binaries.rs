//! The binaries this repository builds, as their crates declare them, and the one comparison
//! every deploy target is held to. xtask links the crates, so a renamed variable, a moved route or
//! a longer timeout reaches every check that reads it. Each source (a Dockerfile stage in
//! `deploy/dockerfile.rs`, a compose service in `check/wiring.rs`, a Fly app in
//! `deploy/preflight.rs`) is read into a [`Deployment`] and compared by [`Binary::problems`], so
//! each rule is written once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::problem::{Problem, Stated};

/// A constant of an app crate with its path, so a message can say where a value comes from.
#[derive(Debug, Clone, Copy)]
pub struct Linked<T: 'static> {
    pub path: &'static str,
    pub value: T,
}

macro_rules! linked {
    ($constant:path) => {
        Linked {
            path: stringify!($constant),
            value: $constant,
        }
    };
}

impl fmt::Display for Linked<&'static str> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path, self.value)
    }
}

impl fmt::Display for Linked<Duration> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} s)", self.path, self.value.as_secs_f64())
    }
}

/// The variable that overrides a binary's `service.name`, as the telemetry reads it.
pub use telemetry::SERVICE_NAME_VAR;

/// What the checks need to know about one binary.
#[derive(Debug)]
pub struct Binary {
    /// The package and binary name, as the Dockerfile's ENTRYPOINT runs it.
    pub name: &'static str,
    /// The variable it reads its listen address from.
    pub listen_var: &'static str,
    /// Its listen address when that variable is unset; every deployment keeps its port.
    pub default_listen_addr: Linked<&'static str>,
    /// The variable that moves `metrics` to an address of its own, if the binary has one.
    pub metrics_listen_var: Option<&'static str>,
    /// The variables of the addresses it serves another protocol on (the catcher's SMTP): any
    /// port, every interface, and a route may go there.
    pub other_listen_vars: &'static [&'static str],
    /// The variable it reads the dashboard page's folder from, if it serves the page: it must
    /// name the folder the image holds the page in.
    pub web_dir_var: Option<&'static str>,
    /// The paths it serves on its listen address that probes and scrapes may ask.
    pub routes: &'static [&'static str],
    /// Liveness, for the platform's health checks.
    pub health: &'static str,
    /// Prometheus metrics, if it serves them.
    pub metrics: Option<&'static str>,
    /// The `service.name` it exports traces and logs under over OTLP, if it exports them: every
    /// deployment must name the collector, and may not rename it with [`SERVICE_NAME_VAR`].
    pub service_name: Option<Linked<&'static str>>,
    /// What it may still spend after the stop signal, one bound after the other.
    pub shutdown: &'static [Linked<Duration>],
}

impl Binary {
    /// The port of [`Binary::default_listen_addr`].
    pub fn default_port(&self) -> u16 {
        let address: SocketAddr = (self.default_listen_addr.value.parse())
            .expect("the crate parses its own default at start-up");
        address.port()
    }

    /// The shortest stop timeout that lets it finish: the sum of [`Binary::shutdown`].
    pub fn shutdown_budget(&self) -> Duration {
        self.shutdown.iter().map(|bound| bound.value).sum()
    }

    /// The terms of [`Binary::shutdown_budget`], for a message.
    pub fn shutdown_terms(&self) -> String {
        let terms: Vec<String> = self.shutdown.iter().map(ToString::to_string).collect();
        terms.join(" + ")
    }
}

// Telemetry flushes traces and logs side by side, so one FLUSH_TIMEOUT bounds both.
pub const API: Binary = Binary {
    name: "ampel-api",
    listen_var: ampel_api::config::LISTEN_ADDR_VAR,
    default_listen_addr: linked!(ampel_api::config::DEFAULT_LISTEN_ADDR),
    metrics_listen_var: Some(ampel_api::config::METRICS_LISTEN_ADDR_VAR),
    other_listen_vars: &[],
    web_dir_var: Some(ampel_api::config::WEB_DIR_VAR),
    routes: &[
        ampel_api::routes::HEALTH,
        ampel_api::routes::READY,
        ampel_api::routes::VERSION,
        ampel_api::routes::METRICS,
    ],
    health: ampel_api::routes::HEALTH,
    metrics: Some(ampel_api::routes::METRICS),
    service_name: Some(linked!(ampel_api::SERVICE_NAME)),
    shutdown: &[
        linked!(ampel_api::DRAIN_TIMEOUT),
        linked!(telemetry::FLUSH_TIMEOUT),
    ],
};

// A job running at the signal finishes its provider call before the worker stops.
pub const WORKER: Binary = Binary {
    name: "ampel-worker",
    listen_var: ampel_worker::LISTEN_ADDR_VAR,
    default_listen_addr: linked!(ampel_worker::DEFAULT_LISTEN_ADDR),
    metrics_listen_var: None,
    other_listen_vars: &[],
    web_dir_var: None,
    routes: &[ampel_worker::http::HEALTH, ampel_worker::http::METRICS],
    health: ampel_worker::http::HEALTH,
    metrics: Some(ampel_worker::http::METRICS),
    service_name: Some(linked!(ampel_worker::SERVICE_NAME)),
    shutdown: &[
        linked!(ampel_worker::provider::REQUEST_TIMEOUT),
        linked!(telemetry::FLUSH_TIMEOUT),
    ],
};

// The local stand-in for PagerDuty, Slack and SMTP that compose's Alertmanager notifies. It runs
// in compose and the e2e only: no Fly app deploys it (`deploy::preflight` expects the api's and
// the worker's). Its list of notifications is all it serves on GET, so that is its liveness; it
// holds nothing worth a drain, and exports no telemetry of its own.
pub const ALERT_CATCHER: Binary = Binary {
    name: "alert-catcher",
    listen_var: alert_catcher::LISTEN_ADDR_VAR,
    default_listen_addr: linked!(alert_catcher::DEFAULT_LISTEN_ADDR),
    metrics_listen_var: None,
    other_listen_vars: &[alert_catcher::SMTP_LISTEN_ADDR_VAR],
    web_dir_var: None,
    routes: &alert_catcher::NOTIFICATIONS_PATHS,
    health: alert_catcher::NOTIFICATIONS_PATHS[0],
    metrics: None,
    service_name: None,
    shutdown: &[],
};

pub const ALL: [&Binary; 3] = [&API, &WORKER, &ALERT_CATCHER];

/// The binary a Dockerfile ENTRYPOINT runs (`/usr/local/bin/ampel-api` runs ampel-api).
pub fn running(program: &str) -> Option<&'static Binary> {
    ALL.into_iter()
        .find(|binary| program_name(program) == binary.name)
}

fn program_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// What a platform sends a binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Traffic to a port (published, `internal_port`, EXPOSE): any path.
    Route,
    /// A readiness check (compose's healthcheck): any route the binary serves.
    Probe,
    /// A liveness check: a failing one takes the process out (Fly restarts it and stops routing
    /// to it), so it asks the health route, which never checks dependencies.
    Liveness,
    /// A Prometheus scrape.
    Scrape,
}

/// One request a platform sends a binary; a route has no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `None` when the file names no port.
    pub port: Option<u16>,
    pub path: Option<String>,
}

impl Request {
    pub fn new(port: Option<u16>, path: Option<&str>) -> Self {
        Self {
            port,
            path: path.map(str::to_owned),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "port {port}")?,
            None => write!(f, "no port")?,
        }
        self.path
            .iter()
            .try_for_each(|path| write!(f, ", path {path}"))
    }
}

/// The requests of one kind a deploy target lists.
pub struct Listed {
    pub kind: Kind,
    /// How the file names the list (`[metrics]`, `service api's ports`), at the line where a
    /// missing entry goes.
    pub section: Stated<String>,
    pub entries: Vec<Stated<Request>>,
}

impl Listed {
    pub fn new(kind: Kind, section: Stated<String>, entries: Vec<Stated<Request>>) -> Self {
        Self {
            kind,
            section,
            entries,
        }
    }
}

/// How one deploy target (a Dockerfile stage, a compose service, a Fly app) runs a binary, as its
/// files say.
#[derive(Default)]
pub struct Deployment {
    /// For messages: `stage api`, `service api`, `fly/api.toml`.
    pub name: String,
    /// Its Dockerfile stage, at the stage's FROM line (where a missing ENV goes).
    pub stage: Option<Stated<String>>,
    /// What its image's ENTRYPOINT runs.
    pub program: Option<Stated<String>>,
    /// The environment the binary starts with: the stage's ENV under the target's own.
    pub env: BTreeMap<String, Stated<String>>,
    /// Where its image holds the dashboard's page (the COPY's destination), if it does.
    pub page: Option<Stated<String>>,
    /// One per kind the target has a say in; each needs an entry, and every entry must be right.
    pub lists: Vec<Listed>,
}

impl Binary {
    /// Everything in `deployment` that disagrees with this binary: each rule written once, for
    /// every deploy target.
    pub fn problems(&self, deployment: &Deployment) -> Vec<Problem> {
        let (name, mut problems) = (self.name, Vec::new());
        match (&deployment.stage, &deployment.program) {
            (Some(stage), None) => problems.push(stage.problem(format!(
                "stage {} has no ENTRYPOINT; add ENTRYPOINT [\"/usr/local/bin/{name}\"]",
                stage.value
            ))),
            (_, Some(program)) if program_name(&program.value) != name => {
                problems.push(program.problem(format!(
                    "ENTRYPOINT runs {}, but {} deploys {name} from this stage; fix the ENTRYPOINT or the build target",
                    program.value, deployment.name
                )));
            }
            _ => {}
        }
        let read: Vec<&str> = [self.listen_var]
            .into_iter()
            .chain(self.metrics_listen_var)
            .chain(self.other_listen_vars.iter().copied())
            .collect();
        for (var, value) in &deployment.env {
            if var.ends_with("_LISTEN_ADDR") && !read.contains(&var.as_str()) {
                problems.push(value.problem(format!(
                    "{var} is not read by {name}, which listens on {}; fix the variable's name",
                    read.join(" and ")
                )));
            }
        }
        self.page(deployment, &mut problems);
        // The stores, the dashboards' queries and the e2e find the binary's telemetry by the
        // name its crate gives it.
        if let (Some(service), Some(value)) =
            (&self.service_name, deployment.env.get(SERVICE_NAME_VAR))
            && value.value != service.value
        {
            problems.push(value.problem(format!(
                "{SERVICE_NAME_VAR}={:?}, but {name}'s telemetry is looked for under {service}; set it to {} or remove it",
                value.value, service.value
            )));
        }
        if self
            .port(deployment, self.listen_var, &mut problems)
            .is_none()
        {
            return problems;
        }
        let other_ports: Vec<u16> = (self.other_listen_vars.iter())
            .filter_map(|var| self.port(deployment, var, &mut problems))
            .collect();
        // Held to the default even when the address is off it (reported above): every other
        // place is then told the same port.
        let port = self.default_port();
        let metrics = match self.metrics_listen_var {
            Some(var) if deployment.env.contains_key(var) => {
                (self.port(deployment, var, &mut problems), var)
            }
            _ => (Some(port), self.listen_var),
        };
        for list in &deployment.lists {
            let (port, var, paths) = match list.kind {
                Kind::Route => (Some(port), self.listen_var, &[][..]),
                Kind::Probe => (Some(port), self.listen_var, self.routes),
                Kind::Liveness => (
                    Some(port),
                    self.listen_var,
                    std::slice::from_ref(&self.health),
                ),
                Kind::Scrape => match &self.metrics {
                    Some(path) => (metrics.0, metrics.1, std::slice::from_ref(path)),
                    None => {
                        problems.extend(list.entries.iter().map(|entry| {
                            entry.problem(format!(
                                "{}: {}, but {name} serves no metrics; remove the target",
                                list.section.value, entry.value
                            ))
                        }));
                        continue;
                    }
                },
            };
            // An unusable metrics address is reported above.
            let Some(port) = port else { continue };
            let want = Request::new(Some(port), paths.first().copied());
            let section = &list.section;
            if list.entries.is_empty() {
                problems.push(
                    section.problem(format!("{}: none for {name}; add {want}", section.value)),
                );
            }
            for entry in &list.entries {
                let path = entry.value.path.as_deref();
                let right_path = paths.is_empty() || path.is_some_and(|path| paths.contains(&path));
                // Traffic may go to any port it listens on; probes and scrapes ask HTTP.
                let other_port = list.kind == Kind::Route
                    && entry
                        .value
                        .port
                        .is_some_and(|port| other_ports.contains(&port));
                if (entry.value.port != want.port && !other_port) || !right_path {
                    let serves = if paths.is_empty() {
                        "HTTP".into()
                    } else {
                        paths.join(", ")
                    };
                    problems.push(entry.problem(format!(
                        "{}: {}, but {name} serves {serves} on port {port} ({var}); use {want}",
                        section.value, entry.value
                    )));
                }
            }
        }
        problems
    }

    /// The page's folder, as [`Binary::web_dir_var`] names it in `deployment`, is where its image
    /// holds the page. The image's ENV is where it belongs, as for the listen address.
    fn page(&self, deployment: &Deployment, problems: &mut Vec<Problem>) {
        let (Some(var), Some(stage)) = (self.web_dir_var, &deployment.stage) else {
            return;
        };
        let name = self.name;
        let place = |page: &Stated<String>| format!("{}:{}", page.file, page.line.unwrap_or(0));
        match (&deployment.page, deployment.env.get(var)) {
            (Some(page), None) => problems.push(stage.problem(format!(
                "stage {} COPYs the page into {} ({}), but sets no {var}, so {name} serves no page; add ENV {var}={}",
                stage.value, page.value, place(page), page.value
            ))),
            (Some(page), Some(value)) if value.value != page.value => {
                let fix = match value.file == stage.file {
                    true => format!("set ENV {var}={}", page.value),
                    false => "remove it: the image's ENV sets it".to_owned(),
                };
                problems.push(value.problem(format!(
                    "{var}={:?}, but stage {} COPYs the page into {} ({}), so {name} fails to start; {fix}",
                    value.value, stage.value, page.value, place(page)
                )));
            }
            (None, Some(value)) => problems.push(value.problem(format!(
                "{var}={:?}, but stage {} COPYs no page, so {name} fails to start; remove it or COPY the page (from {}/) there",
                value.value, stage.value, xtask::web::FRONTEND
            ))),
            _ => {}
        }
    }

    /// The port `var` sets in `deployment`, held to the rules every listen address keeps.
    fn port(&self, deployment: &Deployment, var: &str, problems: &mut Vec<Problem>) -> Option<u16> {
        let (name, default, default_port) =
            (self.name, &self.default_listen_addr, self.default_port());
        let Some(value) = deployment.env.get(var) else {
            // Only the listen address is required, and the image is where it belongs.
            if let (true, Some(stage)) = (var == self.listen_var, &deployment.stage) {
                problems.push(stage.problem(format!(
                    "stage {} sets no {var}, so {name} listens on {default}, which no other container and no Fly proxy or check can reach; add ENV {var}=0.0.0.0:{default_port}",
                    stage.value
                )));
            }
            return None;
        };
        let text = &value.value;
        let Ok(address) = text.parse::<SocketAddr>() else {
            let message =
                format!("{var}={text:?} is not an address like 0.0.0.0:{default_port}; fix it");
            problems.push(value.problem(message));
            return None;
        };
        if !address.ip().is_unspecified() {
            problems.push(value.problem(format!(
                "{var}={text:?} binds one interface, which other containers and Fly's proxy and checks cannot reach; use 0.0.0.0:{}",
                address.port()
            )));
        }
        if var == self.listen_var && address.port() != default_port {
            problems.push(value.problem(format!(
                "{var}={text:?} is not on the port of {name}'s default, {default}, which every deploy target keeps; use 0.0.0.0:{default_port}"
            )));
        }
        Some(address.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catcher's SMTP address is one it reads and may take traffic, held to every
    /// interface like its HTTP one; it serves no metrics, so a scrape of it is wrong.
    #[test]
    fn other_listen_addresses_and_no_metrics() {
        let at = |value: &str| Stated::new(value.to_owned(), "Dockerfile", Some(1));
        let route = |port| Stated::new(Request::new(Some(port), None), "Dockerfile", Some(2));
        let deployment = |smtp: &str, routes: Vec<u16>, scrapes: Vec<u16>| Deployment {
            name: "stage alert-catcher".into(),
            program: Some(at("/usr/local/bin/alert-catcher")),
            env: BTreeMap::from([
                (alert_catcher::LISTEN_ADDR_VAR.into(), at("0.0.0.0:9095")),
                (alert_catcher::SMTP_LISTEN_ADDR_VAR.into(), at(smtp)),
            ]),
            lists: vec![
                Listed::new(
                    Kind::Route,
                    at("EXPOSE"),
                    routes.into_iter().map(route).collect(),
                ),
                Listed::new(
                    Kind::Scrape,
                    at("scrape_configs"),
                    (scrapes.into_iter())
                        .map(|port| {
                            Stated::new(Request::new(Some(port), Some("/metrics")), "p", None)
                        })
                        .collect(),
                ),
            ],
            ..Deployment::default()
        };
        let messages = |deployment| -> Vec<String> {
            (ALERT_CATCHER.problems(&deployment).into_iter())
                .map(|problem| problem.message)
                .collect()
        };
        assert_eq!(
            messages(deployment("0.0.0.0:2525", vec![9095, 2525], vec![])),
            Vec::<String>::new()
        );
        let found = messages(deployment("127.0.0.1:2525", vec![2526], vec![9095]));
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with(
                "ALERT_CATCHER_SMTP_LISTEN_ADDR=\"127.0.0.1:2525\" binds one interface"
            ),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("EXPOSE: port 2526, but alert-catcher serves HTTP on port 9095"),
            "{found:#?}"
        );
        assert_eq!(
            found[2],
            "scrape_configs: port 9095, path /metrics, but alert-catcher serves no metrics; remove the target"
        );
    }

    /// Every default is an address, and a message names the constant next to its value.
    #[test]
    fn defaults_parse_and_messages_name_their_source() {
        for binary in ALL {
            binary.default_port();
        }
        assert_eq!(
            API.default_listen_addr.to_string(),
            format!(
                "ampel_api::config::DEFAULT_LISTEN_ADDR ({})",
                ampel_api::config::DEFAULT_LISTEN_ADDR
            )
        );
        assert_eq!(
            WORKER.shutdown_budget(),
            ampel_worker::provider::REQUEST_TIMEOUT + telemetry::FLUSH_TIMEOUT
        );
        assert!(
            API.shutdown_terms()
                .starts_with("ampel_api::DRAIN_TIMEOUT (")
        );
    }
}
