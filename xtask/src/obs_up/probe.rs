//! How xtask tells that a service of the stack is ready, from the host.
//!
//! Podman without systemd never runs compose healthchecks, so `obs-up` and `status` probe each
//! service themselves: an HTTP readiness endpoint, or the datastore's own protocol. [`PROBES`] is
//! the one table of what to ask; the port is always the service's first published port in
//! compose/ (its HTTP API), never restated here. `cargo xtask check` fails when a compose service
//! has no row, so a new service cannot be started without being waited for.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::compose::Service;

/// What to ask a service to learn that it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `GET path` answers 2xx.
    Http { path: &'static str },
    /// The server answers a startup message with an authentication request (what `pg_isready`
    /// calls accepting connections), not with "the database system is starting up".
    Postgres,
    /// `PING` answers `+PONG` (not `-LOADING`).
    Redis,
}

/// One row of [`PROBES`].
#[derive(Debug)]
pub struct Probe {
    pub service: &'static str,
    pub readiness: Readiness,
    /// Appended to the base URL in tables: where a person would start (a UI, a landing page).
    pub open: &'static str,
}

/// Every service of compose/compose.yaml and compose.peers.yaml.
pub const PROBES: &[Probe] = &[
    probe("postgres", Readiness::Postgres, ""),
    probe("redis", Readiness::Redis, ""),
    // /ready, not /health: the api is ready once it reaches PostgreSQL and Redis.
    http("api", "/ready", "/health"),
    http("worker", "/health", "/health"),
    // /metrics: answers only once the exporter's collectors are set up.
    http("postgres-exporter", "/metrics", "/metrics"),
    http("redis-exporter", "/metrics", "/metrics"),
    http("prometheus", "/-/ready", "/targets"),
    http("grafana", "/api/health", ""),
    // Loki says 503 for about 15 s after start, until its ingester has joined the ring.
    http("loki", "/ready", "/ready"),
    http("tempo", "/ready", "/ready"),
    http("jaeger", "/", ""),
    http("victorialogs", "/health", "/select/vmui"),
];

const fn probe(service: &'static str, readiness: Readiness, open: &'static str) -> Probe {
    Probe {
        service,
        readiness,
        open,
    }
}

const fn http(service: &'static str, path: &'static str, open: &'static str) -> Probe {
    probe(service, Readiness::Http { path }, open)
}

/// The probe of `service`, if the table has one.
pub fn probe_for(service: &str) -> Option<&'static Probe> {
    PROBES.iter().find(|probe| probe.service == service)
}

/// A probe bound to a port on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub readiness: Readiness,
    pub port: u16,
    /// For PostgreSQL's startup message: (user, database) from the service's environment.
    login: (String, String),
    /// What a person opens, e.g. `http://127.0.0.1:9090/targets`.
    pub url: String,
}

impl Target {
    /// Binds `name`'s probe to its first published port.
    pub fn new(name: &str, service: &Service) -> anyhow::Result<Self> {
        let probe = probe_for(name).with_context(|| {
            format!("no readiness probe for service {name:?}: add a row to PROBES in xtask/src/obs_up/probe.rs")
        })?;
        let port = service
            .published_ports()
            .with_context(|| format!("service {name}: fix its ports in compose/"))?
            .first()
            .with_context(|| {
                format!("service {name} publishes no port, so it cannot be probed from the host: publish one in compose/")
            })?
            .host;
        let user = service
            .env("POSTGRES_USER")
            .unwrap_or_else(|| "postgres".into());
        let database = service.env("POSTGRES_DB").unwrap_or_else(|| user.clone());
        let url = match probe.readiness {
            Readiness::Http { .. } => format!("http://127.0.0.1:{port}{}", probe.open),
            Readiness::Postgres => format!("postgres://{user}@127.0.0.1:{port}/{database}"),
            Readiness::Redis => format!("redis://127.0.0.1:{port}"),
        };
        Ok(Self {
            service: name.to_owned(),
            readiness: probe.readiness,
            port,
            login: (user, database),
            url,
        })
    }

    /// Asks once; `Err` says what was seen instead of readiness.
    pub async fn check(&self, http: &reqwest::Client) -> Result<(), String> {
        let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, self.ask(http)).await;
        answer.unwrap_or_else(|_| Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")))
    }

    async fn ask(&self, http: &reqwest::Client) -> Result<(), String> {
        match self.readiness {
            Readiness::Http { path } => {
                let url = format!("http://127.0.0.1:{}{path}", self.port);
                let response = http.get(&url).send().await.map_err(|err| {
                    // reqwest's top-level message ("error sending request") hides the cause.
                    let mut cause: &dyn std::error::Error = &err;
                    while let Some(next) = cause.source() {
                        cause = next;
                    }
                    format!("GET {path}: {cause}")
                })?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = response.text().await.unwrap_or_default();
                let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
                Err(format!(
                    "GET {path}: {status} {}",
                    body.chars().take(120).collect::<String>()
                ))
            }
            Readiness::Postgres => postgres_ready(self.port, &self.login.0, &self.login.1).await,
            Readiness::Redis => redis_ready(self.port).await,
        }
    }
}

/// How long one probe may take; the caller's deadline bounds the whole wait.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// The HTTP client for [`Target::check`]: a request may take 2 s, so a hung service reads as
/// not ready instead of holding the probe.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("build the HTTP client")
}

async fn connect(port: u16) -> Result<TcpStream, String> {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|err| format!("connect 127.0.0.1:{port}: {err}"))
}

/// A protocol-3.0 StartupMessage, then the first byte of the answer: `R` (an authentication
/// request) means the server accepts connections. No password is sent; the connection is dropped.
async fn postgres_ready(port: u16, user: &str, database: &str) -> Result<(), String> {
    let mut stream = connect(port).await?;
    stream
        .write_all(&startup_message(user, database))
        .await
        .map_err(|err| format!("send startup message: {err}"))?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 512];
    // Read until the first message is complete (tag + length + body) or the server hangs up.
    loop {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|err| format!("read the answer to the startup message: {err}"))?;
        reply.extend_from_slice(&buffer[..read]);
        if read == 0 || postgres_message_complete(&reply) {
            break;
        }
    }
    postgres_reply(&reply)
}

fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608_i32.to_be_bytes().to_vec(); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        for text in [key, value] {
            body.extend_from_slice(text.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let length = i32::try_from(body.len() + 4).expect("a startup message is small");
    let mut message = length.to_be_bytes().to_vec();
    message.extend(body);
    message
}

fn postgres_message_complete(reply: &[u8]) -> bool {
    match reply {
        [b'R', ..] => true,
        [_, a, b, c, d, rest @ ..] => {
            let length = i32::from_be_bytes([*a, *b, *c, *d]);
            usize::try_from(length).is_ok_and(|length| rest.len() + 4 >= length)
        }
        _ => false,
    }
}

/// Judges the server's first message: `R` is ready; `E` carries the reason (e.g. 57P03, "the
/// database system is starting up").
fn postgres_reply(reply: &[u8]) -> Result<(), String> {
    match reply {
        [b'R', ..] => Ok(()),
        [b'E', _, _, _, _, fields @ ..] => {
            let mut message = String::new();
            let mut code = String::new();
            for field in fields.split(|byte| *byte == 0) {
                match field.split_first() {
                    Some((b'M', text)) => message = String::from_utf8_lossy(text).into_owned(),
                    Some((b'C', text)) => code = String::from_utf8_lossy(text).into_owned(),
                    _ => {}
                }
            }
            Err(format!("PostgreSQL says {message} ({code})"))
        }
        [] => Err("PostgreSQL closed the connection without answering".into()),
        [tag, ..] => Err(format!(
            "unexpected answer to the startup message (tag {:?})",
            char::from(*tag)
        )),
    }
}

/// Inline `PING`; the first line of the reply must be `+PONG`.
async fn redis_ready(port: u16) -> Result<(), String> {
    let mut stream = connect(port).await?;
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|err| format!("send PING: {err}"))?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|err| format!("read the answer to PING: {err}"))?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&buffer[..read]);
    }
    redis_reply(&reply)
}

fn redis_reply(reply: &[u8]) -> Result<(), String> {
    let line = String::from_utf8_lossy(reply).trim().to_owned();
    match line.as_str() {
        "+PONG" => Ok(()),
        "" => Err("Redis closed the connection without answering PING".into()),
        other => Err(format!("PING: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The startup message has the layout PostgreSQL expects: length, version 3.0, pairs, NUL.
    #[test]
    fn startup_message_layout() {
        let message = startup_message("ampel", "db");
        assert_eq!(&message[..4], &(message.len() as i32).to_be_bytes());
        assert_eq!(&message[4..8], &[0, 3, 0, 0]);
        assert_eq!(&message[8..], b"user\0ampel\0database\0db\0\0");
    }

    /// An authentication request means ready; an error carries PostgreSQL's reason and code.
    #[test]
    fn postgres_replies() {
        assert_eq!(postgres_reply(b"R\0\0\0\x0c\0\0\0\x0a"), Ok(()));
        let fields = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
        let mut starting = b"E".to_vec();
        starting.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
        assert!(!postgres_message_complete(&starting));
        starting.extend_from_slice(fields);
        assert!(postgres_message_complete(&starting));
        assert_eq!(
            postgres_reply(&starting),
            Err("PostgreSQL says the database system is starting up (57P03)".into())
        );
        assert!(postgres_reply(b"").is_err());
    }

    /// Only +PONG is ready; -LOADING is what Redis says while it reads its data set.
    #[test]
    fn redis_replies() {
        assert_eq!(redis_reply(b"+PONG\r\n"), Ok(()));
        assert_eq!(
            redis_reply(b"-LOADING Redis is loading the dataset in memory\r\n"),
            Err("PING: -LOADING Redis is loading the dataset in memory".into())
        );
    }

    /// The probes really talk to a server: an HTTP endpoint that answers 503, then 200.
    #[tokio::test]
    async fn http_probe_against_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let app = axum::Router::new().route(
            "/ready",
            axum::routing::get({
                let ready = ready.clone();
                move || async move {
                    if ready.load(std::sync::atomic::Ordering::SeqCst) {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "warming up")
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let target = Target {
            service: "api".into(),
            readiness: Readiness::Http { path: "/ready" },
            port,
            login: Default::default(),
            url: String::new(),
        };
        let http = reqwest::Client::new();
        let first = target.check(&http).await;
        assert_eq!(
            first,
            Err("GET /ready: 503 Service Unavailable warming up".into())
        );
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(target.check(&http).await, Ok(()));
    }

    /// `(user, port, database)` of a `scheme://user[:password]@127.0.0.1:port[/database]` URL.
    fn loopback_url(url: &str) -> Option<(String, u16, String)> {
        let rest = url.split_once("://")?.1;
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, host) = authority.rsplit_once('@').unwrap_or(("", authority));
        let (host, port) = host.rsplit_once(':')?;
        let user = user.split(':').next().unwrap_or_default();
        matches!(host, "127.0.0.1" | "localhost").then_some(())?;
        Some((user.to_owned(), port.parse().ok()?, database.to_owned()))
    }

    /// The datastore probes against the real PostgreSQL and Redis `cargo xtask test` runs with
    /// (DATABASE_URL, REDIS_URL on 127.0.0.1); skipped, with a note, when those are not set.
    #[tokio::test]
    async fn datastore_probes_against_real_servers() {
        match std::env::var("DATABASE_URL")
            .ok()
            .as_deref()
            .and_then(loopback_url)
        {
            Some((user, port, database)) => {
                assert_eq!(postgres_ready(port, &user, &database).await, Ok(()));
            }
            None => eprintln!("DATABASE_URL is not a 127.0.0.1 URL; skipping the PostgreSQL probe"),
        }
        match std::env::var("REDIS_URL")
            .ok()
            .as_deref()
            .and_then(loopback_url)
        {
            Some((_, port, _)) => assert_eq!(redis_ready(port).await, Ok(())),
            None => eprintln!("REDIS_URL is not a 127.0.0.1 URL; skipping the Redis probe"),
        }
    }

    /// A closed port reads as "connection refused", not as a hang.
    #[tokio::test]
    async fn redis_probe_on_a_closed_port() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let error = redis_ready(port).await.unwrap_err();
        assert!(
            error.starts_with(&format!("connect 127.0.0.1:{port}")),
            "{error}"
        );
    }
}
