//! `cargo xtask deploy fly`: the api, then the worker, to Fly.io.
//!
//! ```text
//! cargo xtask deploy fly --dry-run --env-file prod.env
//! ```
//!
//! First everything that changes nothing: flyctl on PATH, `fly/*.toml` against the binaries
//! ([`preflight::fly_problems`]), the commit, the secrets, `flyctl auth whoami`, `flyctl apps
//! list` and, for apps that exist, `flyctl secrets list`. From that comes the plan: create the
//! missing apps, stage secrets, deploy the api, deploy the worker, check both. `--dry-run`
//! prints it and stops (without flyctl too, saying what it could not check); otherwise it runs
//! step by step and stops at the first failure with the step, the end of flyctl's output and
//! what to try next. Running it again is safe: apps that exist are not created, and a deploy of
//! the same commit replaces Machines with the same image.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::flyctl::{self, Failure, Flyctl};
use super::secrets::Secrets;
use super::{preflight, verify};
use xtask::flags::{self, FlyApp};
use xtask::util;

/// The variable the deploy sets to the revision on every Machine; `GET /version` of the api
/// reports it as `commit` (crates/api/src/routes/health.rs).
pub const COMMIT_ENV: &str = "GIT_COMMIT";

/// One app of this deploy, as named in its fly config.
struct Target {
    app: FlyApp,
    name: String,
    /// `None` when flyctl could not be asked (a dry run without it).
    exists: Option<bool>,
}

/// One thing the deploy does, in order.
struct Step {
    label: String,
    action: Action,
    /// What to try when the step fails.
    next: String,
}

enum Action {
    /// A flyctl command; for `secrets import`, the app whose secrets go to its stdin.
    Flyctl {
        args: Vec<String>,
        secrets_of: Option<FlyApp>,
    },
    /// Poll the api's /health and /version.
    CheckApi { url: String },
    /// Poll `flyctl status` of an app without a public address.
    CheckMachines { name: String },
}

/// `flyctl auth whoami --json`.
#[derive(Deserialize)]
struct WhoAmI {
    email: String,
}

/// One entry of `flyctl apps list --json` (fly-go's `App`, whose fields are capitalized).
#[derive(Deserialize)]
struct ListedApp {
    #[serde(rename = "Name")]
    name: String,
}

/// One entry of `flyctl secrets list --json`.
#[derive(Deserialize)]
struct ListedSecret {
    name: String,
}

/// What Fly says about the account: who is logged in and which apps exist.
struct Account {
    email: String,
    apps: Vec<String>,
}

impl Account {
    fn query(flyctl: &Flyctl, secrets: &Secrets) -> anyhow::Result<Self> {
        let whoami = ["auth", "whoami", "--json"].map(String::from);
        let who: WhoAmI = flyctl.json(&whoami, secrets).map_err(|failure| {
            failed(
                "check the flyctl login",
                &flyctl.display(&whoami),
                &failure,
                "run `flyctl auth login` (in CI, set FLY_API_TOKEN to an organization token from `flyctl tokens create org`)",
            )
        })?;
        eprintln!("flyctl is logged in as {}", who.email);
        let list = ["apps", "list", "--json"].map(String::from);
        let listed: Vec<ListedApp> = flyctl.json(&list, secrets).map_err(|failure| {
            failed(
                "list the Fly apps",
                &flyctl.display(&list),
                &failure,
                "an app-scoped token (`flyctl tokens create deploy`) cannot list apps: use `flyctl auth login` or an \
                 organization token (`flyctl tokens create org`)",
            )
        })?;
        Ok(Self {
            email: who.email,
            apps: listed.into_iter().map(|app| app.name).collect(),
        })
    }
}

impl crate::Run for flags::DeployFly {
    fn run(self) -> anyhow::Result<()> {
        let root = util::project_root();
        let flyctl = match Flyctl::find() {
            Ok(flyctl) => Some(flyctl),
            // A dry run plans without it and says what it could not check.
            Err(_) if self.dry_run => None,
            Err(err) => return Err(err),
        };
        let problems = preflight::fly_problems(&root);
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            bail!(
                "the Fly configs do not fit the binaries; fix these, then run the deploy again:\n  {}",
                lines.join("\n  ")
            );
        }
        let revision = revision(&root)?;
        let secrets = Secrets::collect(self.env_file.as_deref())?;
        let apps = match self.only {
            Some(app) => vec![app],
            None => vec![FlyApp::Api, FlyApp::Worker],
        };
        let account = flyctl
            .as_ref()
            .map(|flyctl| Account::query(flyctl, &secrets))
            .transpose()?;

        let mut targets = Vec::new();
        let mut missing = Vec::new();
        let mut unchecked = Vec::new();
        for app in apps {
            let name = preflight::load(&root, app)?.app.into_inner();
            let (exists, on_fly) = match (&flyctl, &account) {
                (Some(flyctl), Some(account)) => {
                    let exists = account.apps.contains(&name);
                    let on_fly = if exists {
                        secret_names(flyctl, &name, &secrets)?
                    } else {
                        Vec::new()
                    };
                    (Some(exists), Some(on_fly))
                }
                _ => (None, None),
            };
            for secret in secrets.missing_required(app) {
                match &on_fly {
                    Some(set) if set.iter().any(|set| set == secret) => {}
                    Some(_) => missing.push(format!("{name} needs {secret}")),
                    None => unchecked.push(format!("{name} needs {secret}")),
                }
            }
            targets.push(Target { app, name, exists });
        }
        if !missing.is_empty() {
            bail!(
                "{}, which is neither in the environment nor in --env-file nor set on Fly: export it or add it to the env file",
                missing.join(", ")
            );
        }

        let timeout = Duration::from_secs(self.verify_timeout);
        let steps = plan(&targets, &secrets, &revision, &self);
        let program = flyctl
            .as_ref()
            .map_or_else(|| flyctl::NAME.to_owned(), Flyctl::name);
        match &account {
            Some(account) => println!("Plan: deploy {revision} as {}", account.email),
            None => println!("Plan: deploy {revision}"),
        }
        for (number, step) in steps.iter().enumerate() {
            println!(
                "  {}. {}: {}",
                number + 1,
                step.label,
                describe(&program, step, &secrets, &revision, timeout)
            );
        }
        // Without flyctl this is a dry run: `find` failed otherwise.
        let Some(flyctl) = flyctl.filter(|_| !self.dry_run) else {
            println!("Dry run: nothing was changed.");
            if account.is_none() {
                let secrets = if unchecked.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", unchecked.join(", "))
                };
                println!(
                    "flyctl not found on PATH: could not check the login, which apps exist (a deploy \
                     creates only the missing ones) or the secrets already set on Fly{secrets}; {}",
                    flyctl::INSTALL
                );
            }
            return Ok(());
        };

        for (number, step) in steps.iter().enumerate() {
            let shown = describe(&program, step, &secrets, &revision, timeout);
            eprintln!("==> {}/{} {}: {shown}", number + 1, steps.len(), step.label);
            let label = format!("step {}/{} ({})", number + 1, steps.len(), step.label);
            match &step.action {
                Action::Flyctl { args, secrets_of } => {
                    let stdin = secrets_of.map(|app| secrets.import_stdin(app));
                    flyctl
                        .stream(args, stdin, &secrets)
                        .map_err(|failure| failed(&label, &shown, &failure, &step.next))?;
                }
                Action::CheckApi { url } => verify::api(url, &revision, timeout)
                    .with_context(|| format!("{label} failed; next: {}", step.next))?,
                Action::CheckMachines { name } => {
                    verify::machines(&flyctl, name, &revision, timeout, &secrets)
                        .with_context(|| format!("{label} failed; next: {}", step.next))?;
                }
            }
        }
        eprintln!("Deployed {revision}.");
        Ok(())
    }
}

/// The steps, in the order they run: create, stage secrets, deploy api, deploy worker, check.
fn plan(
    targets: &[Target],
    secrets: &Secrets,
    revision: &str,
    flags: &flags::DeployFly,
) -> Vec<Step> {
    let owned = |args: &[&str]| args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
    let mut steps = Vec::new();
    for target in targets.iter().filter(|target| target.exists != Some(true)) {
        let unless = if target.exists.is_none() {
            " unless it exists"
        } else {
            ""
        };
        steps.push(Step {
            label: format!("create {}{unless}", target.name),
            action: Action::Flyctl {
                args: owned(&["apps", "create", &target.name, "--org", &flags.org]),
                secrets_of: None,
            },
            next: format!(
                "app names are global on Fly: if {} is taken, change `app` in {}; if the organization is wrong, pass --org",
                target.name,
                preflight::config_path(target.app)
            ),
        });
    }
    for target in targets
        .iter()
        .filter(|target| !secrets.names_for(target.app).is_empty())
    {
        steps.push(Step {
            label: format!("stage secrets for {}", target.name),
            action: Action::Flyctl {
                args: owned(&["secrets", "import", "--app", &target.name, "--stage"]),
                secrets_of: Some(target.app),
            },
            next: format!(
                "`flyctl secrets list --app {}` shows what is set; fix the value and run again",
                target.name
            ),
        });
    }
    for target in targets {
        let only = match target.app {
            FlyApp::Api => "api",
            FlyApp::Worker => "worker",
        };
        let commit = format!("{COMMIT_ENV}={revision}");
        steps.push(Step {
            label: format!("deploy {}", target.name),
            action: Action::Flyctl {
                args: owned(&[
                    "deploy",
                    "--config",
                    preflight::config_path(target.app),
                    "--app",
                    &target.name,
                    "--image-label",
                    revision,
                    "--env",
                    &commit,
                    // Never wait on a prompt: there is nobody at stdin in CI.
                    "--yes",
                ]),
                secrets_of: None,
            },
            next: format!(
                "the output above says which part failed (the api's `migrate` release command prints its error there); \
                 see `flyctl logs --app {}`, fix it, then run `cargo xtask deploy fly --only {only}`",
                target.name
            ),
        });
    }
    for target in targets {
        let back = format!(
            "`flyctl status --app {name}` and `flyctl logs --app {name}` show why; `flyctl releases --app {name} --image` \
             lists earlier images to go back to with `flyctl deploy --config {config} --image <image>`",
            name = target.name,
            config = preflight::config_path(target.app)
        );
        let action = match target.app {
            FlyApp::Api => Action::CheckApi {
                url: flags
                    .api_url
                    .clone()
                    .unwrap_or_else(|| format!("https://{}.fly.dev", target.name))
                    .trim_end_matches('/')
                    .to_owned(),
            },
            FlyApp::Worker => Action::CheckMachines {
                name: target.name.clone(),
            },
        };
        steps.push(Step {
            label: format!("check {}", target.name),
            action,
            next: back,
        });
    }
    steps
}

/// A step as the plan and the progress lines show it: the exact command as `program` runs it,
/// secret values masked.
fn describe(
    program: &str,
    step: &Step,
    secrets: &Secrets,
    revision: &str,
    timeout: Duration,
) -> String {
    let seconds = timeout.as_secs();
    match &step.action {
        Action::Flyctl {
            args,
            secrets_of: None,
        } => flyctl::display(program, args),
        Action::Flyctl {
            args,
            secrets_of: Some(app),
        } => {
            let masked: Vec<String> = secrets
                .names_for(*app)
                .iter()
                .map(|name| format!("{name}=***"))
                .collect();
            format!(
                "{} < stdin: {}",
                flyctl::display(program, args),
                masked.join(" ")
            )
        }
        Action::CheckApi { url } => {
            format!(
                "poll {url}/health, then {url}/version until \"commit\" is {revision} (up to {seconds} s)"
            )
        }
        Action::CheckMachines { name } => format!(
            "poll `{}` until every Machine is started on image {revision} and passes its checks (up to {seconds} s)",
            flyctl::display(
                program,
                &["status", "--app", name, "--json"].map(String::from)
            )
        ),
    }
}

/// The names of the secrets already set on an existing app.
fn secret_names(flyctl: &Flyctl, app: &str, secrets: &Secrets) -> anyhow::Result<Vec<String>> {
    let args = ["secrets", "list", "--app", app, "--json"].map(String::from);
    let listed: Vec<ListedSecret> = flyctl.json(&args, secrets).map_err(|failure| {
        failed(
            &format!("list the secrets of {app}"),
            &flyctl.display(&args),
            &failure,
            "check that the token may read this app (`flyctl secrets list --app <app>`)",
        )
    })?;
    Ok(listed.into_iter().map(|secret| secret.name).collect())
}

/// The commit being deployed; with uncommitted changes, which the build context includes, the
/// commit plus `-dirty`, so `/version` never claims a commit that is not what runs.
fn revision(root: &Path) -> anyhow::Result<String> {
    let git = |args: &[&str]| {
        duct::cmd("git", args)
            .dir(root)
            .stderr_capture()
            .read()
            .with_context(|| {
                format!(
                    "`git {}` failed: run the deploy from a git checkout",
                    args.join(" ")
                )
            })
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    if git(&["status", "--porcelain"])?.trim().is_empty() {
        Ok(commit)
    } else {
        eprintln!("warning: uncommitted changes are deployed too; the version is {commit}-dirty");
        Ok(format!("{commit}-dirty"))
    }
}

/// The error of a failed flyctl step: which step, how it ended, its last lines, what next.
fn failed(label: &str, command: &str, failure: &Failure, next: &str) -> anyhow::Error {
    let tail = if failure.tail.is_empty() {
        String::from("    (no output)")
    } else {
        failure
            .tail
            .iter()
            .map(|line| format!("    {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    anyhow::anyhow!(
        "{label} failed: `{command}` ({})\n  last lines of its output:\n{tail}\n  next: {next}",
        failure.status
    )
}
