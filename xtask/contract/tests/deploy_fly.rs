//! `cargo xtask deploy fly`, run whole, against the fake flyctl of crates/fake-flyctl.
//!
//! ```text
//! cargo test -p xtask-contract --test deploy_fly
//! ```
//!
//! Fly's API cannot be reached from CI, so the fake stands in for it: it is put first on PATH as
//! `flyctl`, records every call (secret values only as digests) and keeps apps, secrets and
//! Machines in a temporary folder, so a second run sees what the first created. Everything else
//! is real: the xtask binary, the repository's fly/*.toml, Dockerfile and git commit, and an HTTP
//! server on 127.0.0.1 playing the deployed api for the final check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{Json, Router, routing::get};
use fake_flyctl::{FAIL_ENV, FakeFly, digest};
use serde_json::json;

const DATABASE_URL: (&str, &str) = ("DATABASE_URL", "postgres://ampel:pw@db.internal:5432/ampel");
const REDIS_URL: (&str, &str) = ("REDIS_URL", "redis://:pw@redis.internal:6379");
const PROVIDER_TOKEN: (&str, &str) = ("PROVIDER_TOKEN", "ghp_providertoken");

/// The collector's hosted backend, all required.
const COLLECTOR: [(&str, &str); 5] = [
    (
        "OTELCOL_TRACES_ENDPOINT",
        "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp",
    ),
    ("OTELCOL_LOGS_ENDPOINT", "https://logs.example.net/otlp"),
    (
        "OTELCOL_EXPORT_AUTHORIZATION",
        "Basic MTIzNDU2OmdsY190b2tlbg==",
    ),
    (
        "OTELCOL_METRICS_ENDPOINT",
        "https://prometheus.example.net/api/prom/push",
    ),
    (
        "OTELCOL_METRICS_AUTHORIZATION",
        "Basic NjU0MzIxOmdsY190b2tlbg==",
    ),
];

const SECRETS: [(&str, &str); 8] = [
    DATABASE_URL,
    REDIS_URL,
    COLLECTOR[0],
    COLLECTOR[1],
    COLLECTOR[2],
    COLLECTOR[3],
    COLLECTOR[4],
    PROVIDER_TOKEN,
];

/// Every secret, with DATABASE_URL empty, which counts as unset.
const NO_DATABASE_URL: [(&str, &str); 8] = {
    let mut env = SECRETS;
    env[0] = ("DATABASE_URL", "");
    env
};

/// A DATABASE_URL exported for local work, as CI does for the other tests.
const LOCAL_DATABASE_URL: (&str, &str) = (
    "DATABASE_URL",
    "postgres://ampel:ampel@127.0.0.1:15432/ampel",
);

/// Every secret, with DATABASE_URL exported for local work.
const LOCAL_DATABASE: [(&str, &str); 8] = {
    let mut env = SECRETS;
    env[0] = LOCAL_DATABASE_URL;
    env
};

/// The required secrets, and the fake failing the flyctl call with this key.
const fn failing_at(key: &'static str) -> [(&'static str, &'static str); 8] {
    let mut env = SECRETS;
    env[7] = (FAIL_ENV, key);
    env
}

/// The flyctl calls of a first deploy, in order, by key (`{command}@{app}`).
const FIRST_DEPLOY: [&str; 14] = [
    "auth whoami@",
    "apps list@",
    "apps create@ampel-collector",
    "apps create@ampel-api",
    "apps create@ampel-worker",
    "volumes create@ampel-collector",
    "secrets import@ampel-collector",
    "secrets import@ampel-api",
    "secrets import@ampel-worker",
    "deploy@ampel-collector",
    "status@ampel-collector",
    "deploy@ampel-api",
    "deploy@ampel-worker",
    "status@ampel-worker",
];

/// One run of the deploy: how it is started, what it must say, which flyctl calls it makes.
struct Case {
    rule: &'static str,
    /// Whether the fake is on PATH; otherwise only git is.
    flyctl: bool,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// Written to a file passed as `--env-file`, when not empty.
    env_file: &'static [(&'static str, &'static str)],
    /// What it prints: on stderr when it fails, on stdout when it succeeds.
    says: &'static [&'static str],
    /// How many flyctl calls it makes: the first ones of [`FIRST_DEPLOY`].
    calls: usize,
}

const CASE: Case = Case {
    rule: "",
    flyctl: true,
    args: &[],
    env: &SECRETS,
    env_file: &[],
    says: &[],
    calls: 0,
};

impl Case {
    /// Runs the case with the api double behind `--api-url`, then checks what every case
    /// must hold: it said what it should, made exactly its calls, showed no secret value and
    /// never polled the api.
    fn run(&self, succeeds: bool) -> FakeFly {
        let fly = FakeFly::new().unwrap();
        let api = ApiDouble::start(&fly, None);
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("prod.env");
        let env_file = env_file.to_str().unwrap();
        let mut args = [self.args, &api.flags("30")].concat();
        if !self.env_file.is_empty() {
            let lines = self
                .env_file
                .iter()
                .map(|(name, value)| format!("{name}={value}\n"));
            std::fs::write(env_file, lines.collect::<String>()).unwrap();
            args.extend(["--env-file", env_file]);
        }
        let run = deploy(&fly, self.flyctl, &args, self.env);
        let rule = self.rule;
        assert_eq!(run.success, succeeds, "{rule}: {run:?}");
        let said = if succeeds { &run.stdout } else { &run.stderr };
        for text in self.says {
            assert!(said.contains(text), "{rule}: no {text:?} in {run:?}");
        }
        if succeeds {
            let header = run.stdout.lines().find(|line| line.starts_with("Plan: "));
            assert_eq!(
                header.map(|line| line.contains(" as ")),
                Some(self.flyctl),
                "{rule}: the plan names the login exactly when it was checked"
            );
        }
        assert_eq!(fly.keys(), FIRST_DEPLOY[..self.calls], "{rule}");
        assert_no_secret_shown(&run);
        assert!(api.version_hits().is_empty(), "{rule}: the api was polled");
        fly
    }
}

/// Runs that must stop, and say why, before they change what they should not.
const REFUSED: &[Case] = &[
    Case {
        rule: "without a login the run stops at the first flyctl call and says how to log in",
        env: &failing_at("auth whoami@"),
        says: &[
            "check the flyctl login failed: `flyctl auth whoami --json`",
            "no access token available",
            "next: run `flyctl auth login`",
        ],
        calls: 1, // whoami
        ..CASE
    },
    Case {
        rule: "without flyctl on PATH the run says how to install it",
        flyctl: false,
        says: &["flyctl not found on PATH: install it"],
        ..CASE
    },
    Case {
        rule: "a required secret that is neither given nor on Fly stops the run before any change",
        env: &NO_DATABASE_URL,
        says: &[", which is neither in the environment nor in --env-file nor set on Fly"],
        calls: 2, // whoami, apps list
        ..CASE
    },
    Case {
        rule: "the collector's hosted backend is required: without it the run stops before any change",
        env: &[DATABASE_URL, REDIS_URL],
        says: &[
            "ampel-collector needs OTELCOL_TRACES_ENDPOINT, ampel-collector needs OTELCOL_LOGS_ENDPOINT, \
                 ampel-collector needs OTELCOL_EXPORT_AUTHORIZATION",
        ],
        calls: 2, // whoami, apps list
        ..CASE
    },
    Case {
        rule: "a DATABASE_URL exported for local work is refused before flyctl is called",
        args: &["--dry-run"],
        env: &[LOCAL_DATABASE_URL, REDIS_URL],
        says: &["DATABASE_URL points at this machine (localhost)"],
        ..CASE
    },
    Case {
        rule: "when flyctl itself prints a secret (its import parser quotes a line it cannot \
               read), xtask masks it in everything it shows",
        env: &failing_at("secrets import@ampel-collector"),
        says: &["(OTELCOL_TRACES_ENDPOINT=\"\"\"***\"\"\" is invalid)"],
        calls: 7, // up to the failing import
        ..CASE
    },
    Case {
        rule: "a failing deploy stops the run there: the step, the end of flyctl's output (the \
               release command's error) and what to try next; the worker is left alone",
        env: &failing_at("deploy@ampel-api"),
        says: &[
            "step 10/13 (deploy ampel-api) failed: `flyctl deploy --config fly/api.toml",
            "last lines of its output:",
            "permission denied for schema public",
            "Error: release_command failed running on machine",
            "next: ",
            "flyctl logs --app ampel-api",
        ],
        calls: 12, // up to the failing deploy
        ..CASE
    },
    Case {
        rule: "a collector whose rollout fails stops the run before the apps, which would export to it",
        env: &failing_at("deploy@ampel-collector"),
        says: &[
            "step 8/13 (deploy ampel-collector) failed: `flyctl deploy --config fly/collector.toml",
            "timeout reached waiting for health checks to pass",
            "cargo xtask deploy fly --only collector",
        ],
        calls: 10, // up to the failing deploy
        ..CASE
    },
];

#[test]
fn refused_runs_say_why_and_change_nothing_more() {
    for case in REFUSED {
        let fly = case.run(false);
        // The collector is deployed before the apps; a failure there leaves both alone.
        for app in ["ampel-api", "ampel-worker"] {
            let machines = fly.app(app).map(|app| app["machines"].clone());
            assert!(
                machines.is_none_or(|machines| machines == json!([])),
                "{}: {app} was deployed",
                case.rule
            );
        }
    }
}

/// Dry runs: the plan printed, nothing changed.
const DRY_RUNS: &[Case] = &[
    Case {
        rule: "with flyctl: every command of the plan, secrets masked; flyctl is only asked who \
               is logged in and which apps exist",
        args: &["--dry-run"],
        says: &[
            "1. create ampel-collector: flyctl apps create ampel-collector --org personal",
            "2. create ampel-api: flyctl apps create ampel-api --org personal",
            "4. create volume otelcol_queue for ampel-collector: flyctl volumes create otelcol_queue --app ampel-collector --region ams --size 1 --yes",
            "5. stage secrets for ampel-collector: flyctl secrets import --app ampel-collector --stage < stdin: OTELCOL_TRACES_ENDPOINT=*** \
             OTELCOL_LOGS_ENDPOINT=*** OTELCOL_EXPORT_AUTHORIZATION=*** OTELCOL_METRICS_ENDPOINT=*** OTELCOL_METRICS_AUTHORIZATION=***",
            "6. stage secrets for ampel-api: flyctl secrets import --app ampel-api --stage < stdin: DATABASE_URL=*** REDIS_URL=***",
            "7. stage secrets for ampel-worker: flyctl secrets import --app ampel-worker --stage < stdin: DATABASE_URL=*** REDIS_URL=*** PROVIDER_TOKEN=***",
            "8. deploy ampel-collector: flyctl deploy --config fly/collector.toml --app ampel-collector --image-label ",
            "9. check ampel-collector: poll `flyctl status --app ampel-collector --json` until every Machine is started on image ",
            "10. deploy ampel-api: flyctl deploy --config fly/api.toml --app ampel-api --image-label ",
            "11. deploy ampel-worker: flyctl deploy --config fly/worker.toml --app ampel-worker --image-label ",
            "12. check ampel-api: poll http://127.0.0.1:",
            "13. check ampel-worker: poll `flyctl status --app ampel-worker --json`",
            "Dry run: nothing was changed.",
        ],
        calls: 2, // whoami, apps list
        ..CASE
    },
    Case {
        rule: "without flyctl (only git on PATH): the whole plan, what it could not check and \
               how to install flyctl",
        flyctl: false,
        args: &["--dry-run"],
        env: &[REDIS_URL],
        says: &[
            "Plan: deploy ",
            "1. create ampel-collector unless it exists: flyctl apps create ampel-collector --org personal",
            "3. create ampel-worker unless it exists: flyctl apps create ampel-worker --org personal",
            "4. create volume otelcol_queue for ampel-collector unless it exists: flyctl volumes create otelcol_queue",
            "7. deploy ampel-collector: flyctl deploy --config fly/collector.toml",
            "9. deploy ampel-api: flyctl deploy --config fly/api.toml --app ampel-api --image-label ",
            "12. check ampel-worker: poll `flyctl status --app ampel-worker --json`",
            "Dry run: nothing was changed.",
            "flyctl not found on PATH: could not check the login, which apps exist",
            "(ampel-collector needs OTELCOL_TRACES_ENDPOINT, ampel-collector needs OTELCOL_LOGS_ENDPOINT, ",
            "ampel-api needs DATABASE_URL, ampel-worker needs DATABASE_URL)",
            "install it (`curl -L https://fly.io/install.sh | sh`",
        ],
        ..CASE
    },
    Case {
        rule: "an --env-file given on purpose wins over a local DATABASE_URL in the environment",
        args: &["--dry-run"],
        env: &LOCAL_DATABASE,
        env_file: &[DATABASE_URL],
        says: &["Dry run: nothing was changed."],
        calls: 2, // whoami, apps list
        ..CASE
    },
    Case {
        rule: "--only collector: its app, volume, secrets, deploy and check, nothing of the apps",
        args: &["--dry-run", "--only", "collector"],
        says: &[
            "1. create ampel-collector: ",
            "2. create volume otelcol_queue for ampel-collector: ",
            "3. stage secrets for ampel-collector: ",
            "4. deploy ampel-collector: ",
            "5. check ampel-collector: poll `flyctl status --app ampel-collector --json`",
            "Dry run: nothing was changed.",
        ],
        calls: 2, // whoami, apps list
        ..CASE
    },
];

#[test]
fn dry_runs_print_the_plan_and_change_nothing() {
    for case in DRY_RUNS {
        let fly = case.run(true);
        for app in ["ampel-collector", "ampel-api", "ampel-worker"] {
            assert!(fly.app(app).is_none(), "{}: {app} was created", case.rule);
        }
    }
}

/// A first deploy runs every step once, in order: login check, app list, create the three apps
/// and the collector's queue volume, stage each app's secrets, deploy the collector and check it,
/// deploy the api (with the commit as image label and GIT_COMMIT) and the worker, then check the
/// api over HTTP and the worker's Machines. The apps export to the collector over 6PN.
///
/// Secret values travel only on flyctl's stdin: never in any argv, never in xtask's output, and
/// they arrive intact through flyctl's import parser (which would cut `#…` and strip quotes).
///
/// A second run finds the apps and the volume and creates nothing; it reads their secrets
/// instead, and without any secret in the environment still passes on the ones already on Fly.
/// A third, after an OTLP endpoint was set as a secret of the api (as deploys did before the
/// collector), refuses: the secret would override the [env] that points at the collector.
#[test]
fn first_deploy_runs_every_step_in_order_and_a_second_creates_nothing() {
    let fly = FakeFly::new().unwrap();
    let api = ApiDouble::start(&fly, None);
    let database_url = "postgres://ampel:p#ss 'word\"@db.internal:5432/ampel";
    let redis_url = "redis://:s3cr3t@redis.internal:6379";
    let authorization = "Basic ZGVwbG95OnMzY3IzdA==";
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("prod.env");
    let env_file_text = format!(
        "# production\nDATABASE_URL={database_url}\nexport REDIS_URL='{redis_url}'\nOTELCOL_EXPORT_AUTHORIZATION={authorization}\n"
    );
    std::fs::write(&env_file, env_file_text).unwrap();
    let args = [
        &["--env-file", env_file.to_str().unwrap()][..],
        &api.flags("30"),
    ]
    .concat();
    let mut env = COLLECTOR.to_vec();
    env.push(PROVIDER_TOKEN);
    let run = deploy(&fly, true, &args, &env);
    assert!(run.success, "{run:?}");
    assert_eq!(fly.keys(), FIRST_DEPLOY);
    // The HTTP check ran after every deploy had been handed to flyctl.
    let hits = api.version_hits();
    assert!(
        !hits.is_empty() && hits.iter().all(|&calls| calls == 13),
        "{hits:?}"
    );

    let recorded = fly.calls();
    let calls: Vec<_> = recorded.iter().map(|call| call.command()).collect();
    let label = calls[11].flag("--image-label").unwrap();
    assert!(
        label.starts_with(&head_commit()),
        "image label {label} is not HEAD"
    );
    assert_eq!(calls[11].values("--env"), [format!("GIT_COMMIT={label}")]);
    assert_eq!(calls[9].values("--config"), ["fly/collector.toml"]);
    assert_eq!(calls[9].flag("--image-label"), Some(label));
    assert_eq!(calls[11].values("--config"), ["fly/api.toml"]);
    assert_eq!(calls[12].values("--config"), ["fly/worker.toml"]);
    assert_eq!(calls[2].values("--org"), ["personal"]);
    assert_eq!(
        recorded[5].args,
        [
            "volumes",
            "create",
            "otelcol_queue",
            "--app",
            "ampel-collector",
            "--region",
            "ams",
            "--size",
            "1",
            "--yes"
        ]
    );
    assert!(
        run.stderr.contains(&format!("Deployed {label}.")),
        "{run:?}"
    );
    let values = [database_url, redis_url, authorization].into_iter();
    for value in values.chain(env.iter().map(|(_, value)| *value)) {
        let shown = run.stdout.contains(value) || run.stderr.contains(value);
        assert!(!shown, "a secret was printed: {run:?}");
        for call in &recorded {
            let in_argv = call.args.iter().any(|arg| arg.contains(value));
            assert!(!in_argv, "a secret was in argv: {call:?}");
        }
    }
    // Each app gets its own secrets, as they were: the backend's only reach the collector, the
    // provider token only the worker.
    let mut collector: BTreeMap<String, String> = COLLECTOR
        .iter()
        .map(|(name, value)| ((*name).to_owned(), digest(value)))
        .collect();
    collector.insert(
        "OTELCOL_EXPORT_AUTHORIZATION".to_owned(),
        digest(authorization),
    );
    assert_eq!(recorded[6].stdin.as_ref(), Some(&collector));
    let mut expected = BTreeMap::from([
        ("DATABASE_URL".to_owned(), digest(database_url)),
        ("REDIS_URL".to_owned(), digest(redis_url)),
    ]);
    assert_eq!(recorded[7].stdin.as_ref(), Some(&expected));
    expected.insert(PROVIDER_TOKEN.0.to_owned(), digest(PROVIDER_TOKEN.1));
    assert_eq!(recorded[8].stdin.as_ref(), Some(&expected));
    // The collector's Machine has the volume the deploy created at the queue's directory, and
    // the apps export to it by its private name.
    let collector = fly.app("ampel-collector").unwrap();
    let volume = &collector["volumes"][0];
    assert_eq!(collector["volumes"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        volume["attached_machine_id"],
        collector["machines"][0]["id"]
    );
    assert_eq!(
        collector["machines"][0]["config"]["mounts"][0]["path"],
        "/var/lib/otelcol/file_storage"
    );
    for app in ["ampel-api", "ampel-worker"] {
        let machine = &fly.app(app).unwrap()["machines"][0];
        assert_eq!(
            machine["config"]["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "http://ampel-collector.internal:4318",
            "{app}"
        );
    }

    let second = deploy(&fly, true, &api.flags("30"), &[]);
    assert!(second.success, "{second:?}");
    let first_calls = calls.len();
    assert_eq!(
        fly.keys()[first_calls..],
        [
            "auth whoami@",
            "apps list@",
            "secrets list@ampel-collector",
            "volumes list@ampel-collector",
            "secrets list@ampel-api",
            "secrets list@ampel-worker",
            "deploy@ampel-collector",
            "status@ampel-collector",
            "deploy@ampel-api",
            "deploy@ampel-worker",
            "status@ampel-worker",
        ]
    );
    assert_eq!(
        fly.app("ampel-collector").unwrap()["volumes"],
        collector["volumes"]
    );

    let stale =
        "OTEL_EXPORTER_OTLP_ENDPOINT=https://otlp-gateway-prod-eu-west-2.grafana.net/otlp\n";
    let import = ["secrets", "import", "--app", "ampel-api", "--stage"];
    assert!(fly.run(&import, stale, &[]).status.success());
    let before = fly.keys().len();
    let third = deploy(&fly, true, &api.flags("30"), &[]);
    assert!(!third.success, "{third:?}");
    assert!(
        third.stderr.contains(
            "secrets on Fly would override the configs' [env]; run `flyctl secrets unset --app ampel-api --stage \
             OTEL_EXPORTER_OTLP_ENDPOINT` (OTEL_EXPORTER_OTLP_ENDPOINT is in fly/api.toml's [env])"
        ),
        "{third:?}"
    );
    assert!(
        !fly.keys()[before..]
            .iter()
            .any(|key| key.starts_with("deploy")),
        "the third run deployed"
    );
}

/// The apps wait for a healthy collector: one whose Machines fail their health check fails the
/// run at its deadline, before the api and the worker are deployed.
#[test]
fn an_unhealthy_collector_stops_the_run_before_the_apps() {
    let fly = FakeFly::new().unwrap();
    let api = ApiDouble::start(&fly, None);
    let started = Instant::now();
    let env = failing_at("status@ampel-collector");
    let run = deploy(&fly, true, &api.flags("2"), &env);
    assert!(!run.success, "{run:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "gave up before the deadline"
    );
    for text in [
        "step 9/13 (check ampel-collector) failed",
        "ampel-collector's Machines did not all run",
        "with checks [health=critical]",
        "flyctl logs --app ampel-collector",
    ] {
        assert!(run.stderr.contains(text), "no {text:?} in {run:?}");
    }
    let keys = fly.keys();
    assert!(
        keys.iter()
            .filter(|key| *key == "status@ampel-collector")
            .count()
            > 1,
        "the check did not poll: {keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|key| key == "deploy@ampel-api" || key == "deploy@ampel-worker"),
        "{keys:?}"
    );
    assert!(api.version_hits().is_empty(), "the api was checked");
}

/// The deploy is not done until `/version` reports the new commit: an api that keeps answering
/// with an old one fails the run at its deadline, saying what it saw.
#[test]
fn check_fails_while_the_api_reports_another_commit() {
    let fly = FakeFly::new().unwrap();
    let api = ApiDouble::start(&fly, Some("0123456789abcdef"));
    let started = Instant::now();
    let args = [&["--only", "api"][..], &api.flags("2")].concat();
    let run = deploy(&fly, true, &args, &SECRETS);
    assert!(!run.success, "{run:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "gave up before the deadline"
    );
    for text in [
        "step 4/4 (check ampel-api) failed",
        &format!("did not report commit {}", head_commit()),
        "/version reports commit 0123456789abcdef",
    ] {
        assert!(run.stderr.contains(text), "no {text:?} in {run:?}");
    }
    assert!(api.version_hits().len() > 1, "the check did not poll");
}

/// `--only worker` creates, stages and deploys the worker alone and never checks the api; what
/// the worker gets is all three of its secrets (none of the collector's), kept by the fake as
/// digests only.
#[test]
fn only_worker_leaves_the_api_alone() {
    let fly = FakeFly::new().unwrap();
    let api = ApiDouble::start(&fly, None);
    let args = [&["--only", "worker"][..], &api.flags("30")].concat();
    let run = deploy(&fly, true, &args, &SECRETS);
    assert!(run.success, "{run:?}");
    let expected: BTreeMap<&str, String> = [DATABASE_URL, REDIS_URL, PROVIDER_TOKEN]
        .iter()
        .map(|(name, value)| (*name, digest(value)))
        .collect();
    assert_eq!(fly.app("ampel-worker").unwrap()["secrets"], json!(expected));
    let text = std::fs::read_to_string(fly.state_dir().join("apps/ampel-worker.json")).unwrap();
    for (_, value) in SECRETS {
        assert!(!text.contains(value));
    }
    for app in ["ampel-api", "ampel-collector"] {
        assert!(fly.app(app).is_none(), "--only worker touched {app}");
    }
    assert!(
        api.version_hits().is_empty(),
        "--only worker checked the api"
    );
}

struct Run {
    status: ExitStatus,
    success: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (status, stdout, stderr) = (self.status, &self.stdout, &self.stderr);
        write!(f, "{status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    }
}

/// Runs `xtask deploy fly <args>` with `env`, the fake's state and, when `flyctl`, the fake
/// first on PATH; otherwise a PATH with only git, which the deploy needs for the commit.
fn deploy(fly: &FakeFly, flyctl: bool, args: &[&str], env: &[(&str, &str)]) -> Run {
    let only_git = tempfile::tempdir().unwrap();
    let path = if flyctl {
        let path = std::env::var_os("PATH").unwrap();
        std::env::join_paths(std::iter::once(fly.bin()).chain(std::env::split_paths(&path)))
            .unwrap()
    } else {
        std::os::unix::fs::symlink(which("git"), only_git.path().join("git")).unwrap();
        only_git.path().as_os_str().to_owned()
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask-contract"));
    // Nothing of the caller's environment leaks into a run (CI exports DATABASE_URL for the
    // other tests; flyctl reads FLY_* variables) but HOME, where git finds its configuration.
    command.args(["deploy", "fly"]).args(args).env_clear();
    if let Some(home) = std::env::var_os("HOME") {
        command.env("HOME", home);
    }
    let (state_env, state) = fly.env();
    command
        .env("PATH", path)
        .env(state_env, state)
        // Tests never reach out of this machine: without --api-url the check polls a closed
        // loopback port, not https://ampel-api.fly.dev.
        .env("AMPEL_FLY_API_URL", "http://127.0.0.1:9")
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied());
    let output = command.output().unwrap();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status: output.status,
    }
}

fn which(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} on PATH"))
}

/// None of the test's secret values is in what xtask printed.
fn assert_no_secret_shown(run: &Run) {
    for (_, value) in SECRETS {
        assert!(
            !run.stderr.contains(value) && !run.stdout.contains(value),
            "{run:?}"
        );
    }
}

fn head_commit() -> String {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The deployed api as Fly would run it, on 127.0.0.1: `/health`, and `/version` reporting the
/// `GIT_COMMIT` the fake's Machine was deployed with (or `stale_commit`, an old version that
/// keeps answering). Serves until dropped, with its runtime.
struct ApiDouble {
    url: String,
    /// For each `/version` request, the number of flyctl calls recorded before it.
    hits: Arc<Mutex<Vec<usize>>>,
    _runtime: tokio::runtime::Runtime,
}

impl ApiDouble {
    fn start(fly: &FakeFly, stale_commit: Option<&'static str>) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::<Mutex<Vec<usize>>>::default();
        let (state, seen) = (fake_flyctl::State::new(fly.state_dir()), hits.clone());
        let version = move || {
            let (state, seen) = (state.clone(), seen.clone());
            async move {
                seen.lock().unwrap().push(state.calls().unwrap().len());
                let deployed = state.app("ampel-api").unwrap().and_then(|app| {
                    app["machines"][0]["config"]["env"]["GIT_COMMIT"]
                        .as_str()
                        .map(str::to_owned)
                });
                let commit = stale_commit.map(str::to_owned).or(deployed);
                let commit = commit.unwrap_or_else(|| "unknown".into());
                Json(json!({ "version": "0.1.0", "commit": commit }))
            }
        };
        let app = Router::new()
            .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
            .route("/version", get(version));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            hits,
            _runtime: runtime,
        }
    }

    /// `--api-url` of this double, and a `--verify-timeout` for the check.
    fn flags(&self, verify_timeout: &'static str) -> [&str; 4] {
        ["--api-url", &self.url, "--verify-timeout", verify_timeout]
    }

    fn version_hits(&self) -> Vec<usize> {
        self.hits.lock().unwrap().clone()
    }
}
