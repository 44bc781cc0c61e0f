//! `cargo xtask deploy fly`, run whole, against `fake-flyctl` (xtask/contract/src/bin/fake-flyctl.rs).
//!
//! ```text
//! cargo test -p xtask --test deploy_fly
//! ```
//!
//! Fly's API cannot be reached from CI, so the fake stands in for it: it is put first on PATH as
//! `flyctl`, records every call (secret values only as hashes) and keeps apps, secrets and
//! Machines in a temporary folder, so a second run sees what the first created. Everything else
//! is real: the xtask binary, the repository's fly/*.toml, Dockerfile and git commit, and an HTTP
//! server on 127.0.0.1 playing the deployed api for the final check.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

/// Every variable the deploy reads, so the caller's environment (CI exports DATABASE_URL for
/// the other tests) never leaks into a run.
const DEPLOY_ENV: [&str; 8] = [
    "DATABASE_URL",
    "REDIS_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "PROVIDER_TOKEN",
    "FLY_ORG",
    "FAKE_FLYCTL_FAIL",
    "FLY_API_TOKEN",
];

const SECRETS: [(&str, &str); 3] = [
    ("DATABASE_URL", "postgres://ampel:pw@db.internal:5432/ampel"),
    ("REDIS_URL", "redis://:pw@redis.internal:6379"),
    ("PROVIDER_TOKEN", "ghp_providertoken"),
];

/// The fake Fly: a PATH folder holding `flyctl` and the folder it keeps its state in.
struct FakeFly {
    dir: tempfile::TempDir,
}

impl FakeFly {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_fake-flyctl"),
            dir.path().join("bin/flyctl"),
        )
        .unwrap();
        Self { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Every recorded call: `{"args": [...], "stdin": {name: hash} | null}`.
    fn calls(&self) -> Vec<Value> {
        read_calls(&self.state())
    }

    /// Each call as its command words plus `@app`, e.g. `deploy@ampel-api`, `apps create@ampel-api`.
    fn steps(&self) -> Vec<String> {
        self.calls().iter().map(step_name).collect()
    }

    /// The state of one app, as `apps create` / `deploy` left it.
    fn app(&self, name: &str) -> Option<Value> {
        let text = std::fs::read_to_string(self.state().join(format!("apps/{name}.json"))).ok()?;
        Some(serde_json::from_str(&text).unwrap())
    }

    /// Runs `xtask deploy fly <args>` with `env` and this fake first on PATH.
    fn deploy(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        run_xtask(args, env, &path, &self.state())
    }

    /// A full deploy with the secrets set, the fake failing the flyctl call named by `step`
    /// (`{command}@{app}`, as `FAKE_FLYCTL_FAIL` takes it).
    fn deploy_failing_at(&self, step: &str) -> Run {
        self.deploy(&[], &[SECRETS[0], SECRETS[1], ("FAKE_FLYCTL_FAIL", step)])
    }
}

fn read_calls(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn step_name(call: &Value) -> String {
    let args: Vec<&str> = call["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .collect();
    let app = args
        .iter()
        .position(|arg| *arg == "--app")
        .map(|at| args[at + 1]);
    let words: Vec<&str> = args
        .iter()
        .copied()
        .take_while(|arg| !arg.starts_with('-'))
        .collect();
    match words.as_slice() {
        ["apps", "create", name] => format!("apps create@{name}"),
        words => format!("{}@{}", words.join(" "), app.unwrap_or_default()),
    }
}

struct Run {
    output: Output,
    stdout: String,
    stderr: String,
}

impl Run {
    fn success(&self) -> bool {
        self.output.status.success()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status, self.stdout, self.stderr
        )
    }
}

fn run_xtask(args: &[&str], env: &[(&str, &str)], path: &str, state: &Path) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask-contract"));
    command.args(["deploy", "fly"]).args(args);
    for name in DEPLOY_ENV {
        command.env_remove(name);
    }
    command
        .env("PATH", path)
        .env("FAKE_FLYCTL_STATE", state)
        // Tests never reach out of this machine: without --api-url the check polls a closed
        // loopback port, not https://ampel-api.fly.dev.
        .env("AMPEL_FLY_API_URL", "http://127.0.0.1:9")
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied());
    let output = command.output().unwrap();
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        output,
    }
}

/// The fake's hash of a secret value (the same `DefaultHasher` as fake-flyctl's `digest`).
fn digest(value: &str) -> String {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// What `/version` was asked, and how many flyctl calls had been made by then.
#[derive(Clone, Default)]
struct Hits(Arc<Mutex<Vec<usize>>>);

/// The deployed api as Fly would run it, on 127.0.0.1: `/health`, and `/version` reporting the
/// `GIT_COMMIT` the fake's Machine was deployed with (or `stale_commit`, an old version that
/// keeps answering).
struct ApiDouble {
    url: String,
    hits: Hits,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiDouble {
    fn start(state: PathBuf, stale_commit: Option<&'static str>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Hits::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
            .route(
                "/version",
                get(move |State(hits): State<Hits>| {
                    let state = state.clone();
                    async move {
                        hits.0.lock().unwrap().push(read_calls(&state).len());
                        let deployed = std::fs::read_to_string(state.join("apps/ampel-api.json"))
                            .ok()
                            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                            .and_then(|app| {
                                app["machines"][0]["config"]["env"]["GIT_COMMIT"]
                                    .as_str()
                                    .map(str::to_owned)
                            });
                        let commit = stale_commit
                            .map(str::to_owned)
                            .or(deployed)
                            .unwrap_or_else(|| "unknown".into());
                        Json(json!({ "version": "0.1.0", "commit": commit }))
                    }
                }),
            )
            .with_state(hits.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            url,
            hits,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// For each `/version` request, the number of flyctl calls recorded before it.
    fn version_hits(&self) -> Vec<usize> {
        self.hits.0.lock().unwrap().clone()
    }
}

impl Drop for ApiDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn head_commit() -> String {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The value of `flag` in a recorded call.
fn flag<'a>(call: &'a Value, flag: &str) -> Vec<&'a str> {
    let args: Vec<&str> = call["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .collect();
    args.windows(2)
        .filter(|pair| pair[0] == flag)
        .map(|pair| pair[1])
        .collect()
}

/// A first deploy runs every step once, in order: login check, app list, create both apps,
/// stage each app's secrets, deploy the api (with the commit as image label and GIT_COMMIT),
/// deploy the worker, then check the api over HTTP and the worker's Machines.
#[test]
fn first_deploy_runs_every_step_in_order() {
    let fly = FakeFly::new();
    let api = ApiDouble::start(fly.state(), None);
    let run = fly.deploy(&["--api-url", &api.url, "--verify-timeout", "30"], &SECRETS);
    assert!(run.success(), "{run:?}");

    assert_eq!(
        fly.steps(),
        [
            "auth whoami@",
            "apps list@",
            "apps create@ampel-api",
            "apps create@ampel-worker",
            "secrets import@ampel-api",
            "secrets import@ampel-worker",
            "deploy@ampel-api",
            "deploy@ampel-worker",
            "status@ampel-worker",
        ]
    );
    // The HTTP check ran after both deploys had been handed to flyctl.
    let hits = api.version_hits();
    assert!(
        !hits.is_empty() && hits.iter().all(|&calls| calls == 8),
        "{hits:?}"
    );

    let calls = fly.calls();
    let api_deploy = &calls[6];
    let label = flag(api_deploy, "--image-label")[0];
    assert!(
        label.starts_with(&head_commit()),
        "image label {label} is not HEAD"
    );
    assert_eq!(flag(api_deploy, "--env"), [format!("GIT_COMMIT={label}")]);
    assert_eq!(flag(api_deploy, "--config"), ["fly/api.toml"]);
    assert_eq!(flag(&calls[7], "--config"), ["fly/worker.toml"]);
    assert_eq!(flag(&calls[2], "--org"), ["personal"]);
    // Each app gets its own secrets: the provider token only reaches the worker.
    let staged = |call: &Value| {
        call["stdin"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(staged(&calls[4]), ["DATABASE_URL", "REDIS_URL"]);
    assert_eq!(
        staged(&calls[5]),
        ["DATABASE_URL", "PROVIDER_TOKEN", "REDIS_URL"]
    );
    assert!(
        run.stderr.contains(&format!("Deployed {label}.")),
        "{run:?}"
    );
}

/// A second run finds both apps and creates nothing; it reads their secrets instead, and a
/// second run without any secret in the environment still passes on the ones already on Fly.
#[test]
fn second_deploy_creates_nothing() {
    let fly = FakeFly::new();
    let api = ApiDouble::start(fly.state(), None);
    let args = ["--api-url", api.url.as_str(), "--verify-timeout", "30"];
    let first = fly.deploy(&args, &SECRETS);
    assert!(first.success(), "{first:?}");
    let before = fly.calls().len();

    let second = fly.deploy(&args, &[]);
    assert!(second.success(), "{second:?}");
    let again: Vec<String> = fly.steps().split_off(before);
    assert_eq!(
        again,
        [
            "auth whoami@",
            "apps list@",
            "secrets list@ampel-api",
            "secrets list@ampel-worker",
            "deploy@ampel-api",
            "deploy@ampel-worker",
            "status@ampel-worker",
        ]
    );
}

/// Secret values travel only on flyctl's stdin: never in any argv, never in xtask's output, and
/// they arrive intact through flyctl's import parser (which would cut `#…` and strip quotes).
#[test]
fn secrets_go_through_stdin_only() {
    let fly = FakeFly::new();
    let api = ApiDouble::start(fly.state(), None);
    let database_url = "postgres://ampel:p#ss 'word\"@db.internal:5432/ampel";
    let redis_url = "redis://:s3cr3t@redis.internal:6379";
    let headers = "Authorization=Basic ZGVwbG95OnMzY3IzdA==";
    let env_file = fly.dir.path().join("prod.env");
    std::fs::write(
        &env_file,
        format!("# production\nDATABASE_URL={database_url}\nexport REDIS_URL='{redis_url}'\n"),
    )
    .unwrap();
    let run = fly.deploy(
        &[
            "--env-file",
            env_file.to_str().unwrap(),
            "--api-url",
            &api.url,
            "--verify-timeout",
            "30",
        ],
        &[("OTEL_EXPORTER_OTLP_HEADERS", headers)],
    );
    assert!(run.success(), "{run:?}");

    let values = [database_url, redis_url, headers];
    let calls = fly.calls();
    for value in values {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "a secret was printed: {run:?}"
        );
        for call in &calls {
            assert!(
                !call["args"].to_string().contains(value),
                "a secret was in argv: {call}"
            );
        }
    }
    for app in ["ampel-api", "ampel-worker"] {
        let import = calls
            .iter()
            .find(|call| step_name(call) == format!("secrets import@{app}"))
            .unwrap();
        assert_eq!(
            import["stdin"],
            json!({
                "DATABASE_URL": digest(database_url),
                "OTEL_EXPORTER_OTLP_HEADERS": digest(headers),
                "REDIS_URL": digest(redis_url),
            }),
            "{app} did not get the values as they were"
        );
    }
}

/// When flyctl itself prints a secret (its import parser quotes a line it cannot read), xtask
/// masks it in everything it shows.
#[test]
fn flyctl_output_is_masked() {
    let fly = FakeFly::new();
    let run = fly.deploy_failing_at("secrets import@ampel-api");
    assert!(!run.success(), "{run:?}");
    assert!(
        run.stderr
            .contains("(DATABASE_URL=\"\"\"***\"\"\" is invalid)"),
        "{run:?}"
    );
    for (_, value) in SECRETS {
        assert!(
            !run.stderr.contains(value) && !run.stdout.contains(value),
            "{run:?}"
        );
    }
}

/// A failing deploy stops the run there: non-zero exit, the step named, the end of flyctl's
/// output (the release command's error) and what to try next; the worker is left alone.
#[test]
fn failed_deploy_stops_with_step_and_output_tail() {
    let fly = FakeFly::new();
    let run = fly.deploy_failing_at("deploy@ampel-api");
    assert!(!run.success(), "{run:?}");
    assert!(
        run.stderr
            .contains("step 5/8 (deploy ampel-api) failed: `flyctl deploy --config fly/api.toml"),
        "{run:?}"
    );
    assert!(run.stderr.contains("last lines of its output:"), "{run:?}");
    assert!(
        run.stderr.contains("permission denied for schema public"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("Error: release_command failed running on machine"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("next: ") && run.stderr.contains("flyctl logs --app ampel-api"),
        "{run:?}"
    );
    let steps = fly.steps();
    assert_eq!(
        steps.last().map(String::as_str),
        Some("deploy@ampel-api"),
        "{steps:?}"
    );
    assert!(
        fly.app("ampel-worker").unwrap()["machines"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// The deploy is not done until `/version` reports the new commit: an api that keeps answering
/// with an old one fails the run at its deadline, saying what it saw.
#[test]
fn check_fails_while_the_api_reports_another_commit() {
    let fly = FakeFly::new();
    let api = ApiDouble::start(fly.state(), Some("0123456789abcdef"));
    let started = std::time::Instant::now();
    let run = fly.deploy(
        &[
            "--only",
            "api",
            "--api-url",
            &api.url,
            "--verify-timeout",
            "2",
        ],
        &SECRETS,
    );
    assert!(!run.success(), "{run:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "gave up before the deadline"
    );
    assert!(
        run.stderr.contains("step 4/4 (check ampel-api) failed"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("did not report commit {}", head_commit())),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("/version reports commit 0123456789abcdef"),
        "{run:?}"
    );
    assert!(api.version_hits().len() > 1, "the check did not poll");
}

/// `--dry-run` prints every command of the plan, secrets masked, and changes nothing: flyctl
/// is only asked who is logged in and which apps exist, and the api is never polled.
#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let fly = FakeFly::new();
    let api = ApiDouble::start(fly.state(), None);
    let run = fly.deploy(&["--dry-run", "--api-url", &api.url], &SECRETS);
    assert!(run.success(), "{run:?}");
    for line in [
        "1. create ampel-api: flyctl apps create ampel-api --org personal",
        "3. stage secrets for ampel-api: flyctl secrets import --app ampel-api --stage < stdin: DATABASE_URL=*** REDIS_URL=***",
        "4. stage secrets for ampel-worker: flyctl secrets import --app ampel-worker --stage < stdin: DATABASE_URL=*** REDIS_URL=*** PROVIDER_TOKEN=***",
        "5. deploy ampel-api: flyctl deploy --config fly/api.toml --app ampel-api --image-label ",
        "6. deploy ampel-worker: flyctl deploy --config fly/worker.toml --app ampel-worker --image-label ",
        "7. check ampel-api: poll http://127.0.0.1:",
        "8. check ampel-worker: poll `flyctl status --app ampel-worker --json`",
        "Dry run: nothing was changed.",
    ] {
        assert!(run.stdout.contains(line), "missing {line:?}: {run:?}");
    }
    for (_, value) in SECRETS {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "{run:?}"
        );
    }
    assert_eq!(fly.steps(), ["auth whoami@", "apps list@"]);
    assert!(fly.app("ampel-api").is_none() && fly.app("ampel-worker").is_none());
    assert!(api.version_hits().is_empty());
}

/// A required secret that is neither given nor on Fly stops the run before anything changes.
#[test]
fn missing_required_secret_stops_before_any_change() {
    let fly = FakeFly::new();
    let run = fly.deploy(&[], &[SECRETS[1]]);
    assert!(!run.success(), "{run:?}");
    assert!(
        run.stderr
            .contains("ampel-api needs DATABASE_URL, ampel-worker needs DATABASE_URL"),
        "{run:?}"
    );
    assert_eq!(fly.steps(), ["auth whoami@", "apps list@"]);
}

/// Without a login the run stops at the first flyctl call and says how to log in.
#[test]
fn logged_out_flyctl_says_how_to_log_in() {
    let fly = FakeFly::new();
    let run = fly.deploy_failing_at("auth whoami@");
    assert!(!run.success(), "{run:?}");
    assert!(
        run.stderr
            .contains("check the flyctl login failed: `flyctl auth whoami --json`"),
        "{run:?}"
    );
    assert!(run.stderr.contains("no access token available"), "{run:?}");
    assert!(
        run.stderr.contains("next: run `flyctl auth login`"),
        "{run:?}"
    );
    assert_eq!(fly.steps(), ["auth whoami@"]);
}

/// Without flyctl on PATH the run says how to install it.
#[test]
fn missing_flyctl_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = run_xtask(&[], &SECRETS, empty.path().to_str().unwrap(), state.path());
    assert!(!run.success(), "{run:?}");
    assert!(
        run.stderr.contains("flyctl not found on PATH: install it"),
        "{run:?}"
    );
    assert!(read_calls(state.path()).is_empty());
}

/// A dry run needs no flyctl: with only git on PATH it prints the whole plan, says what it could
/// not check and how to install flyctl, and exits 0.
#[test]
fn dry_run_without_flyctl_prints_the_plan() {
    let bin = tempfile::tempdir().unwrap();
    let git = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("git"))
        .find(|candidate| candidate.is_file())
        .expect("git on PATH");
    std::os::unix::fs::symlink(git, bin.path().join("git")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = run_xtask(
        &["--dry-run"],
        &[SECRETS[1]],
        bin.path().to_str().unwrap(),
        state.path(),
    );
    assert!(run.success(), "{run:?}");
    for line in [
        "Plan: deploy ",
        "1. create ampel-api unless it exists: flyctl apps create ampel-api --org personal",
        "2. create ampel-worker unless it exists: flyctl apps create ampel-worker --org personal",
        "5. deploy ampel-api: flyctl deploy --config fly/api.toml --app ampel-api --image-label ",
        "8. check ampel-worker: poll `flyctl status --app ampel-worker --json`",
        "Dry run: nothing was changed.",
        "flyctl not found on PATH: could not check the login, which apps exist",
        "(ampel-api needs DATABASE_URL, ampel-worker needs DATABASE_URL)",
        "install it (`curl -L https://fly.io/install.sh | sh`",
    ] {
        assert!(run.stdout.contains(line), "missing {line:?}: {run:?}");
    }
    let header = run.stdout.lines().find(|line| line.starts_with("Plan: "));
    assert!(
        header.is_some_and(|line| !line.contains(" as ")),
        "no login was checked: {run:?}"
    );
    assert!(read_calls(state.path()).is_empty());
}

/// `--only worker` creates, stages and deploys the worker alone and never checks the api; what
/// the worker gets is all three of its secrets, kept by the fake as digests only.
#[test]
fn only_worker_leaves_the_api_alone() {
    let fly = FakeFly::new();
    let api = ApiDouble::start(fly.state(), None);
    let run = fly.deploy(
        &[
            "--only",
            "worker",
            "--api-url",
            &api.url,
            "--verify-timeout",
            "30",
        ],
        &SECRETS,
    );
    assert!(run.success(), "{run:?}");
    let worker = fly.app("ampel-worker").unwrap();
    let expected: BTreeMap<String, Value> = SECRETS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::String(digest(value))))
        .collect();
    assert_eq!(worker["secrets"], json!(expected));
    let text = std::fs::read_to_string(fly.state().join("apps/ampel-worker.json")).unwrap();
    for (_, value) in SECRETS {
        assert!(!text.contains(value));
    }
    assert!(
        fly.app("ampel-api").is_none(),
        "--only worker touched the api"
    );
    assert!(
        api.version_hits().is_empty(),
        "--only worker checked the api"
    );
}

/// A DATABASE_URL exported for local work (as CI does for the tests) is refused before flyctl
/// is called, and an `--env-file` given on purpose wins over it.
#[test]
fn env_file_wins_over_a_local_database_url() {
    let fly = FakeFly::new();
    let local = (
        "DATABASE_URL",
        "postgres://ampel:ampel@127.0.0.1:15432/ampel",
    );
    let refused = fly.deploy(&["--dry-run"], &[local, SECRETS[1]]);
    assert!(!refused.success(), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("DATABASE_URL points at this machine (localhost)"),
        "{refused:?}"
    );
    assert!(
        fly.steps().is_empty(),
        "flyctl was called: {:?}",
        fly.steps()
    );

    let env_file = fly.dir.path().join("prod.env");
    std::fs::write(&env_file, format!("DATABASE_URL={}\n", SECRETS[0].1)).unwrap();
    let run = fly.deploy(
        &["--dry-run", "--env-file", env_file.to_str().unwrap()],
        &[local, SECRETS[1]],
    );
    assert!(run.success(), "{run:?}");
}
