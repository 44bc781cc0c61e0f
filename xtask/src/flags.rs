//! Every command and flag of `cargo xtask`, in one place.

use clap::{Args, Parser, Subcommand};

/// Ampel's workspace tasks: run the stack, test it, ship it.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

// No doc comments on the variants: a variant's doc would replace its struct's long_about, so
// each command's one-line help is its struct's doc comment.
#[derive(Debug, Subcommand)]
pub enum Command {
    ObsUp(ObsUp),
    ObsDown(ObsDown),
    Status(Status),
    Test(Test),
    E2e(E2e),
    Check(Check),
    Deploy(Deploy),
    Bench(Bench),
    Codegen(Codegen),
}

/// Run every test: the workspace's (on real PostgreSQL and Redis), then the e2e.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs `cargo test --workspace` against real PostgreSQL and Redis, then `cargo xtask e2e`.\n\n\
PostgreSQL and Redis: DATABASE_URL and REDIS_URL when both are set (CI starts them with \
.ci/services.sh); otherwise containers from compose/'s images, started for the run and removed \
after it. The e2e's backends come from --traces/--logs (or AMPEL_E2E_TRACES/AMPEL_E2E_LOGS)."
)]
pub struct Test {
    /// Skip the e2e and the no-loss tests (the containers of the trace, log and metrics
    /// backends and the collector).
    #[arg(long)]
    pub no_e2e: bool,
    /// Where the e2e's traces go.
    #[arg(long, value_enum, env = "AMPEL_E2E_TRACES", default_value_t = TraceBackend::Tempo)]
    pub traces: TraceBackend,
    /// Where the e2e's logs go.
    #[arg(long, value_enum, env = "AMPEL_E2E_LOGS", default_value_t = LogBackend::Loki)]
    pub logs: LogBackend,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// Run the app against real backends and check that metrics, traces and logs arrive.
#[derive(Debug, Clone, Args)]
#[command(
    long_about = "Starts PostgreSQL, Redis, Prometheus and a trace and a log backend in \
containers (testcontainers; DOCKER_HOST may point at Podman), runs ampel-api and ampel-worker on \
the host against them, drives one poll through the app and checks that its metrics, trace and logs \
arrive, and that a SIGTERMed api still flushes its last trace. Prints a table; exits non-zero when \
a check fails.\n\nImages come from compose/ (override them with the AMPEL_*_IMAGE variables, \
e.g. `source .ci/images.env`)."
)]
pub struct E2e {
    /// Where traces go.
    #[arg(long, value_enum, env = "AMPEL_E2E_TRACES", default_value_t = TraceBackend::Tempo)]
    pub traces: TraceBackend,
    /// Where logs go.
    #[arg(long, value_enum, env = "AMPEL_E2E_LOGS", default_value_t = LogBackend::Loki)]
    pub logs: LogBackend,
    /// Leave the containers (and the apps' log files) behind for a look; remove them yourself.
    #[arg(long)]
    pub keep: bool,
    /// Instead of the scenario, the no-loss tests: the api under steady load while the
    /// collector is stopped for 10 s, while the stores are, and while the collector is killed
    /// and restarted on its on-disk queue. Each prints the requests sent and the server spans
    /// and access log records received, by trace id, and fails when they differ.
    #[arg(long, conflicts_with = "broken")]
    pub no_loss: bool,
    /// Instead of the scenario, the live alert test: with Alertmanager in the stack and the
    /// rules on a 30x faster clock, PostgreSQL is paused under steady traffic; the critical
    /// alert must reach the local PagerDuty stand-in, its warning stay inhibited, and the
    /// resolution arrive. Prints the time from fault to notification.
    #[arg(long, conflicts_with_all = ["broken", "no_loss"])]
    pub alerts: bool,
    /// With --alerts: how many fault rounds (the time to notify is their median).
    #[arg(long, default_value_t = ALERT_ROUNDS, requires = "alerts")]
    pub rounds: usize,
    /// Instead of the scenario, the browser e2e: the page (frontend/, built with npm) served by
    /// the api, driven in headless Chromium; its trace from the click to the provider call, its
    /// vitals beacons and its error report must reach the stores. Screenshots in target/e2e/.
    #[arg(long, conflicts_with_all = ["broken", "no_loss", "alerts"])]
    pub browser: bool,
    /// Tests only: switch one signal off to show that its check fails.
    #[arg(long = "break", value_enum, hide = true)]
    pub broken: Option<Signal>,
}

/// The live alert test's rounds, unless `--rounds` says otherwise (`cargo xtask test` too).
pub const ALERT_ROUNDS: usize = 3;

/// A trace backend `e2e` can run and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceBackend {
    Tempo,
    Jaeger,
}

/// A log backend `e2e` can run and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogBackend {
    Loki,
    Victorialogs,
}

/// One of the things `e2e` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Signal {
    Metrics,
    Traces,
    Logs,
    /// The api's last trace arrives although the api was stopped right after the request.
    Flush,
    /// An exemplar of the poll route's span metrics in Prometheus names a trace (the poll's,
    /// when it was sampled into the exemplars), and the trace store holds it. No `--break` of
    /// its own: the runs share the collector that makes span metrics.
    #[value(skip)]
    Exemplars,
    /// Every PromQL query of the dashboards and the rules finds series (or is listed as needing
    /// a fault). No `--break`: its failure is a query's.
    #[value(skip)]
    Panels,
}

/// The name `--break` takes (a signal without a break: its name in lower case).
impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match clap::ValueEnum::to_possible_value(self) {
            Some(value) => f.write_str(value.get_name()),
            None => f.write_str(&format!("{self:?}").to_lowercase()),
        }
    }
}

/// Ship the collector, the api and the worker.
#[derive(Debug, Args)]
pub struct Deploy {
    #[command(subcommand)]
    pub target: DeployTarget,
}

/// Where `deploy` ships to.
#[derive(Debug, Subcommand)]
pub enum DeployTarget {
    /// Deploy to Fly.io with flyctl: the collector, the api, then the worker (fly/*.toml).
    #[command(
        long_about = "Deploys ampel-collector (the OpenTelemetry Collector, private), then ampel-api, \
then ampel-worker, to Fly.io with flyctl.\n\n\
Checks first that flyctl is installed and logged in and that fly/*.toml agree with the binaries \
(ports, /health, /metrics) and with the collector's config (health port, queue volume, 6PN listener). \
Creates an app only if `flyctl apps list` lacks it, and the collector's queue volume only if \
`flyctl volumes list` lacks it, stages the secrets found in --env-file or the environment with \
`flyctl secrets import --stage` (values on stdin, never printed), deploys each app with the commit \
as image label and GIT_COMMIT: the collector first, waiting until its Machines pass their health \
check, then the api and the worker, waiting until the api's /version and the worker's Machines \
report that commit. Stops at the first failed step and says what to try next.\n\n\
Secrets read: OTELCOL_TRACES_ENDPOINT, OTELCOL_LOGS_ENDPOINT, OTELCOL_EXPORT_AUTHORIZATION, \
OTELCOL_METRICS_ENDPOINT, OTELCOL_METRICS_AUTHORIZATION (collector only); DATABASE_URL, REDIS_URL (api and worker); PROVIDER_TOKEN (worker only). \
Authentication is flyctl's own (`flyctl auth login`, or FLY_API_TOKEN in CI)."
    )]
    Fly(DeployFly),
}

/// `cargo xtask deploy fly`: preflight, create missing apps, stage secrets, deploy, verify.
#[derive(Debug, Args)]
pub struct DeployFly {
    /// Deploy only this app (its secrets, deploy and check); default all three, collector first.
    #[arg(long, value_enum)]
    pub only: Option<FlyApp>,
    /// Print the plan (every flyctl command, secret values masked) and change nothing; works
    /// without flyctl (then says what it could not check).
    #[arg(long)]
    pub dry_run: bool,
    /// Read secrets from this file of NAME=VALUE lines; its values win over the environment's.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<std::path::PathBuf>,
    /// The Fly organization new apps are created in.
    #[arg(long, env = "FLY_ORG", default_value = "personal")]
    pub org: String,
    /// Where the deployed api answers; default https://<app>.fly.dev from fly/api.toml.
    #[arg(long, env = "AMPEL_FLY_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// How long the last step waits for the new version to answer, in seconds.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub verify_timeout: u64,
}

/// One of the Fly apps, in the order a full deploy ships them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlyApp {
    /// The OpenTelemetry Collector the other two export to.
    Collector,
    Api,
    Worker,
}

/// Start the local stack (compose/) and wait until every service answers.
#[derive(Debug, Args)]
#[command(
    long_about = "Starts the local stack of compose/compose.yaml (PostgreSQL, Redis, the api and \
worker, the exporters, Prometheus, Grafana, Loki, Tempo) with `compose up -d`, then runs every \
service's compose healthcheck itself (`compose exec`; from the host for an image that can run \
none) until all pass, showing progress, and prints the URLs. Ports come from the compose files. \
It never uses `up --wait`: Podman without systemd never runs healthchecks, so that would hang.\n\n\
On failure it names the service, prints its last log lines and exits non-zero.\n\n\
App images are built when missing or with --build. With AMPEL_APP_TARGET_SUFFIX=-prebuilt the \
Dockerfile only packages binaries, so obs-up first runs `cargo build --release --locked -p \
ampel-api -p ampel-worker` on the host (set AMPEL_RUNTIME_BASE_IMAGE to a base image you have).\n\n\
Images: every AMPEL_*_IMAGE variable overrides one (on a machine without a registry: `source \
.ci/images.env`)."
)]
pub struct ObsUp {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Add compose/compose.peers.yaml: Jaeger and VictoriaLogs instead of Grafana, Loki and Tempo.
    #[arg(long, env = "AMPEL_OBS_PEERS")]
    pub peers: bool,
    /// Build the api and worker images even if they exist.
    #[arg(long, conflicts_with = "no_app")]
    pub build: bool,
    /// Start only the datastores and the observability services, not the api and worker.
    #[arg(long)]
    pub no_app: bool,
    /// How long to wait for every service to answer, in seconds.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Stop the local stack.
#[derive(Debug, Args)]
#[command(
    long_about = "Stops and removes the containers of the local stack, whichever variant \
`obs-up` started (with or without --peers). Data volumes are kept unless --volumes is given."
)]
pub struct ObsDown {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Also delete the named data volumes (PostgreSQL, Redis, Prometheus, logs, traces, Grafana).
    #[arg(long)]
    pub volumes: bool,
}

/// Show each service of the local stack: container state, readiness, URL.
#[derive(Debug, Args)]
#[command(
    long_about = "Prints one row per service of the local stack: the container's state (from \
`compose ps --format json`), whether its compose healthcheck passes right now, and its \
URL. Exits non-zero when a created container is not running or does not answer, or when nothing \
runs. The variant (--peers or not) is recognised from the containers that exist."
)]
pub struct Status {
    #[command(flatten)]
    pub stack: StackArgs,
}

/// What `obs-up`, `obs-down` and `status` share: which compose to drive.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// The compose to use; default the first found of `docker compose`, `docker-compose`,
    /// `podman compose`, `podman-compose`.
    #[arg(long, value_enum, env = "AMPEL_COMPOSE_ENGINE")]
    pub engine: Option<EngineChoice>,
}

/// A container engine family `--engine` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineChoice {
    /// `docker compose` (the Compose v2 plugin).
    Docker,
    /// The standalone `docker-compose` binary.
    DockerCompose,
    /// `podman compose`, else `podman-compose`.
    Podman,
}

/// Check that compose/, observability/, the metric families, the app and fly/ agree (offline).
#[derive(Debug, Args)]
#[command(
    long_about = "Checks, without network or containers, that the pieces of the stack agree: \
the compose files parse, publish ports on 127.0.0.1 only and mount no engine socket; every PromQL \
expression in the alert rules and dashboards parses and uses only metrics the binaries declare, the \
exporters' or `up`; dashboards use provisioned data sources; scrape targets, data-source URLs, \
listen ports and HTTP paths agree across compose/, observability/, the crates, the Dockerfile \
and fly/; alerts carry labels, annotations and a runbook anchor that exists. Runs `promtool check \
config`, `check rules` and `test rules` when promtool is on PATH.\n\n\
Prints one line per problem, `file[:line]: what is wrong; what to change`, and exits non-zero if \
there is any. `cargo test` runs the same checks (xtask's `check` test)."
)]
pub struct Check {}

/// Write the generated files: docs/metrics.md from the declared metric families, the SLO rules
/// and dashboard from observability/slo.yaml.
#[derive(Debug, Args)]
#[command(
    long_about = "Writes docs/metrics.md from the MetricFamily declarations the binaries export \
(ampel_api::EXPORTED_METRIC_FAMILIES, ampel_worker::EXPORTED_METRIC_FAMILIES), and \
observability/prometheus/rules/slo.yml and observability/grafana/dashboards/slo.json from the SLOs \
in observability/slo.yaml. Tests (`metrics_doc_is_fresh`, `slo_files_are_fresh`) fail when a file \
is not what this command would write."
)]
pub struct Codegen {
    /// Write nothing; fail when a generated file is not what the code declares.
    #[arg(long)]
    pub check: bool,
}

/// Measure what telemetry costs the api and the worker; prints tables, writes JSON.
#[derive(Debug, Args)]
#[command(
    long_about = "Measures what telemetry costs, on release builds of ampel-api and ampel-worker, \
and prints four tables: (1) overhead: the same api binary with telemetry on (server span, OTLP \
traces and logs to a counting OTLP sink, JSON logs, metrics) and off (AMPEL_TELEMETRY=off), \
alternating under wrk with server and load generator pinned to separate cores, on a trivial \
route and a PostgreSQL-backed one: req/s, p50/p99, CPU per request, instructions per request \
(callgrind, fixed request count), spans and logs sent vs received; (2) a refusing and a hung \
OTLP endpoint vs a live one: req/s, p99, RSS, dropped items, SIGTERM-to-exit; (3) time from a \
request's end to its trace (Jaeger), log (VictoriaLogs) and counter (Prometheus) being \
queryable, on the e2e's containers, traces and logs through the collector, and the collector's \
CPU per 1000 spans, memory, and the api's p99 and CPU exporting to it vs straight to the sink; (4) worker jobs/s against a local fake provider, telemetry on vs off.\n\n\
Needs wrk, taskset and valgrind on PATH; DATABASE_URL and REDIS_URL (`bash .ci/services.sh`); \
for table 3 a container engine (DOCKER_HOST for Podman) and the images of compose/ \
(`source .ci/images.env`). Wall-clock figures need a quiet machine: the load average is \
printed with each table."
)]
pub struct Bench {
    /// Shorter runs and fewer samples: all four tables in under 3 minutes, noisier figures.
    #[arg(long)]
    pub quick: bool,
    /// Run only these tables (default all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<BenchTable>,
    /// Where the JSON report is written (the tables, for comparison across commits).
    #[arg(long, default_value = "target/bench/bench.json", value_name = "FILE")]
    pub out: std::path::PathBuf,
    /// Measure the ampel-api and ampel-worker in this folder (e.g. another commit's
    /// target/release) instead of building them. Builds without AMPEL_TELEMETRY run their "off"
    /// rows with telemetry on.
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<std::path::PathBuf>,
}

/// One of the tables `bench` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum BenchTable {
    /// Telemetry on vs off: throughput, latency, CPU and instructions per request.
    Overhead,
    /// A refusing and a hung OTLP endpoint vs a live one.
    Backend,
    /// From a request's end to its trace, log and counter being queryable; the collector's cost.
    Visible,
    /// Worker jobs per second, telemetry on vs off.
    Worker,
}
