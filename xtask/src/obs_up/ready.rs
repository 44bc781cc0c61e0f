//! Is a service of the running stack ready? The one definition is compose's (see
//! [`crate::compose::Readiness`]); this runs it against the stack `obs-up` started.
//!
//! Podman without systemd never runs compose healthchecks, so `obs-up` and `status` run each
//! service's healthcheck themselves with `compose exec -T`, and ask the host-side HTTP path of the
//! images that can run none.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;

use crate::compose::{AmpelService as _, Readiness, Service};
use crate::engine::Compose;

/// How long one check may take; the caller's deadline bounds the whole wait.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// One service's readiness check, bound to the stack.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    readiness: Readiness,
    /// What a person opens, e.g. `http://127.0.0.1:9090/targets`.
    pub url: String,
}

impl Target {
    pub fn new(name: &str, service: &Service) -> anyhow::Result<Self> {
        Ok(Self {
            service: name.to_owned(),
            readiness: service
                .readiness(name)
                .with_context(|| format!("service {name}: fix it in compose/"))?,
            url: service.url().unwrap_or_default(),
        })
    }

    /// Checks once; `Err` says what was seen instead of readiness.
    pub async fn check(&self, compose: &Compose, http: &reqwest::Client) -> Result<(), String> {
        let attempt = async {
            match &self.readiness {
                Readiness::Exec(argv) => exec(compose, &self.service, argv).await,
                Readiness::HostHttp { port, path } => get(http, *port, path).await,
            }
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")))
    }
}

/// Runs the healthcheck in the service's container; its output says why it failed.
async fn exec(compose: &Compose, service: &str, argv: &[String]) -> Result<(), String> {
    let mut command = tokio::process::Command::from(compose.exec(service, argv));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = command
        .output()
        .await
        .map_err(|err| format!("run `{}`: {err}", compose.display(&["exec"])))?;
    if output.status.success() {
        return Ok(());
    }
    let mut seen = String::from_utf8_lossy(&output.stderr).into_owned();
    seen.push_str(&String::from_utf8_lossy(&output.stdout));
    let seen: String = seen.split_whitespace().collect::<Vec<_>>().join(" ");
    Err(format!(
        "healthcheck exited {}: {}",
        output
            .status
            .code()
            .map_or("on a signal".into(), |code| code.to_string()),
        seen.chars().take(160).collect::<String>()
    ))
}

/// `GET http://127.0.0.1:port/path` answers 2xx (compose publishes HOST == CONTAINER port).
async fn get(http: &reqwest::Client, port: u16, path: &str) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}{path}");
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

/// The HTTP client for host-side checks: a hung service reads as not ready.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("build the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service of both compose files has a readiness check and a URL.
    #[test]
    fn every_service_has_a_check() {
        let model = crate::engine::Variant::Everything.model().unwrap();
        for (name, service) in &model.services {
            let target = Target::new(name, service).unwrap();
            assert!(target.url.starts_with("http") || target.url.contains("://127.0.0.1:"));
        }
    }

    /// The host-side check talks to a real listener: 503, then 200.
    #[tokio::test]
    async fn host_check_against_a_real_listener() {
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
        let http = reqwest::Client::new();
        assert_eq!(
            get(&http, port, "/ready").await,
            Err("GET /ready: 503 Service Unavailable warming up".into())
        );
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(get(&http, port, "/ready").await, Ok(()));
    }
}
