//! `cargo xtask deploy fly`: the collector, then the api and the worker, to Fly.io.
//!
//! ```text
//! cargo xtask deploy fly --dry-run --env-file prod.env
//! ```
//!
//! First everything that changes nothing: flyctl on PATH, `fly/*.toml` against the binaries
//! ([`preflight::fly_problems`]), the commit, the secrets, `flyctl auth whoami`, `flyctl apps
//! list` and, for apps that exist, `flyctl secrets list` (and the collector's `flyctl volumes
//! list`). From that comes the plan: create the missing apps and the collector's missing queue
//! volume, stage secrets, deploy the collector and check it (the apps export to it, so they wait
//! for a healthy one), deploy the api, deploy the worker, check both. `--dry-run`
//! prints it and stops (without flyctl too, saying what it could not check); otherwise it runs
//! step by step and stops at the first failure with the step, the end of flyctl's output and
//! what to try next. Running it again is safe: apps and volumes that exist are not created, and a
//! deploy of the same commit replaces Machines with the same image.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use fly_deploy::config::Volume;
use fly_deploy::flyctl::{self, Flyctl};
use fly_deploy::status;

use super::preflight;
use super::secrets::Secrets;
use super::verify;
use xtask::flags::{self, FlyApp};
use xtask::util;

/// How to get a working flyctl, for messages about a missing one.
const INSTALL: &str = "install it (`curl -L https://fly.io/install.sh | sh`, `brew install flyctl`, \
    or `nix develop` in this repository), then run `flyctl auth login`";

/// The variable the deploy sets to the revision on every Machine; `GET /version` of the api
/// reports it as `commit` (crates/api/src/routes/health.rs).
pub const COMMIT_ENV: &str = "GIT_COMMIT";

/// One app of this deploy, as named in its fly config.
struct Target {
    app: FlyApp,
    name: String,
    /// `None` when flyctl could not be asked (a dry run without it).
    exists: Option<bool>,
    /// The volume its config mounts, and whether it exists (`None`: could not be asked).
    volume: Option<(Volume, Option<bool>)>,
}

/// One thing the deploy does, in order.
struct Step {
    label: String,
    /// The step as the plan and the progress lines show it: the exact command as it runs,
    /// secret values masked.
    shown: String,
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
    /// Poll `flyctl status` of an app without a public address: its Machines and their checks.
    CheckMachines { name: String },
}

/// flyctl, and what Fly says through it: who is logged in and which apps exist.
struct Fly {
    flyctl: Flyctl,
    email: String,
    apps: Vec<String>,
}

impl Fly {
    fn connect(flyctl: Flyctl, secrets: &Secrets) -> anyhow::Result<Self> {
        let email = flyctl.whoami(secrets.mask())?;
        eprintln!("flyctl is logged in as {email}");
        let apps = flyctl.apps(secrets.mask())?;
        Ok(Self {
            flyctl,
            email,
            apps,
        })
    }

    /// The names of the secrets already set on `app`; none when it does not exist yet.
    fn secret_names(&self, app: &str, secrets: &Secrets) -> anyhow::Result<Vec<String>> {
        if !self.apps.iter().any(|name| name == app) {
            return Ok(Vec::new());
        }
        self.flyctl.secret_names(app, secrets.mask())
    }

    /// Whether `app` has `volume` (by name, in its region); not when the app does not exist yet.
    fn has_volume(&self, app: &str, volume: &Volume, secrets: &Secrets) -> anyhow::Result<bool> {
        if !self.apps.iter().any(|name| name == app) {
            return Ok(false);
        }
        let listed = self.flyctl.volumes(app, secrets.mask())?;
        Ok(listed
            .iter()
            .any(|listed| listed.name == volume.name && listed.region == volume.region))
    }
}

impl crate::Run for flags::DeployFly {
    fn run(self) -> anyhow::Result<()> {
        let root = util::project_root();
        let flyctl = match Flyctl::find() {
            Some(flyctl) => Some(flyctl),
            // A dry run plans without it and says what it could not check.
            None if self.dry_run => None,
            None => bail!("flyctl not found on PATH: {INSTALL}"),
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
        let program = flyctl
            .as_ref()
            .map_or_else(|| flyctl::NAME.to_owned(), Flyctl::name);
        let fly = flyctl
            .map(|flyctl| Fly::connect(flyctl, &secrets))
            .transpose()?;

        let apps = match self.only {
            Some(app) => vec![app],
            None => vec![FlyApp::Collector, FlyApp::Api, FlyApp::Worker],
        };
        let mut targets = Vec::new();
        let (mut missing, mut unchecked, mut shadowing) = (Vec::new(), Vec::new(), Vec::new());
        for app in apps {
            let config = preflight::load(&root, app)?;
            let name = config.app.get_ref().clone();
            let on_fly = fly
                .as_ref()
                .map(|fly| fly.secret_names(&name, &secrets))
                .transpose()?;
            // Fly gives a secret precedence over the [env] value of the same name, so the config
            // would not be what runs (an OTLP endpoint staged before the collector existed).
            for var in config.env_names() {
                if on_fly.iter().flatten().any(|set| set == var) {
                    shadowing.push(format!(
                        "`flyctl secrets unset --app {name} --stage {var}` ({var} is in {}'s [env])",
                        preflight::config_path(app)
                    ));
                }
            }
            for secret in secrets.missing_required(app) {
                let needs = format!("{name} needs {secret}");
                match &on_fly {
                    Some(set) if set.iter().any(|set| set == secret) => {}
                    Some(_) => missing.push(needs),
                    None => unchecked.push(needs),
                }
            }
            let exists = fly.as_ref().map(|fly| fly.apps.contains(&name));
            let volume = match config.volume() {
                Some(volume) => {
                    let found = fly
                        .as_ref()
                        .map(|fly| fly.has_volume(&name, &volume, &secrets))
                        .transpose()?;
                    Some((volume, found))
                }
                None => None,
            };
            targets.push(Target {
                app,
                name,
                exists,
                volume,
            });
        }
        if !shadowing.is_empty() {
            bail!(
                "secrets on Fly would override the configs' [env]; run {}, then the deploy again",
                shadowing.join(", ")
            );
        }
        if !missing.is_empty() {
            bail!(
                "{}, which is neither in the environment nor in --env-file nor set on Fly: export it or add it to the env file",
                missing.join(", ")
            );
        }

        let steps = plan(&targets, &secrets, &revision, &self, &program);
        match &fly {
            Some(fly) => println!("Plan: deploy {revision} as {}", fly.email),
            None => println!("Plan: deploy {revision}"),
        }
        for (number, step) in steps.iter().enumerate() {
            println!("  {}. {}: {}", number + 1, step.label, step.shown);
        }
        let could_ask = fly.is_some();
        // Without flyctl this is a dry run: `find` failed otherwise.
        let Some(fly) = fly.filter(|_| !self.dry_run) else {
            println!("Dry run: nothing was changed.");
            if !could_ask {
                let secrets = if unchecked.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", unchecked.join(", "))
                };
                println!(
                    "flyctl not found on PATH: could not check the login, which apps exist (a deploy \
                     creates only the missing ones) or the secrets already set on Fly{secrets}; {}",
                    INSTALL
                );
            }
            return Ok(());
        };

        let timeout = Duration::from_secs(self.verify_timeout);
        for (number, step) in steps.iter().enumerate() {
            let position = format!("{}/{}", number + 1, steps.len());
            eprintln!("==> {position} {}: {}", step.label, step.shown);
            let label = format!("step {position} ({})", step.label);
            let check_failed = || format!("{label} failed; next: {}", step.next);
            match &step.action {
                Action::Flyctl { args, secrets_of } => {
                    let stdin = secrets_of.map(|app| secrets.import_stdin(app));
                    fly.flyctl
                        .stream(args, stdin, secrets.mask())
                        .map_err(|failure| failure.error(&label, &step.next))?;
                }
                Action::CheckApi { url } => {
                    verify::api(url, &revision, timeout).with_context(check_failed)?;
                }
                Action::CheckMachines { name } => {
                    verify::machines(&fly.flyctl, name, &revision, timeout, &secrets)
                        .with_context(check_failed)?;
                }
            }
        }
        eprintln!("Deployed {revision}.");
        Ok(())
    }
}

/// The steps, in the order they run: create apps and volumes, stage secrets, deploy and check
/// the collector, deploy the api and the worker, check them; commands shown as `program` runs them.
fn plan(
    targets: &[Target],
    secrets: &Secrets,
    revision: &str,
    flags: &flags::DeployFly,
    program: &str,
) -> Vec<Step> {
    let flyctl = |label: String, args: &[&str], secrets_of: Option<FlyApp>, next: String| {
        let mut shown = flyctl::display(program, args);
        if let Some(app) = secrets_of {
            let masked: Vec<String> = secrets
                .names_for(app)
                .iter()
                .map(|name| format!("{name}=***"))
                .collect();
            shown = format!("{shown} < stdin: {}", masked.join(" "));
        }
        let args = args.iter().map(|arg| (*arg).to_owned()).collect();
        Step {
            label,
            shown,
            action: Action::Flyctl { args, secrets_of },
            next,
        }
    };
    let unless = |exists: Option<bool>| match exists {
        None => " unless it exists",
        Some(_) => "",
    };
    let mut steps = Vec::new();
    for target in targets.iter().filter(|target| target.exists != Some(true)) {
        let (name, config) = (&target.name, preflight::config_path(target.app));
        steps.push(flyctl(
            format!("create {name}{}", unless(target.exists)),
            &["apps", "create", name, "--org", &flags.org],
            None,
            format!(
                "app names are global on Fly: if {name} is taken, change `app` in {config}; if the organization is wrong, pass --org"
            ),
        ));
    }
    for target in targets {
        let Some((volume, exists)) = &target.volume else {
            continue;
        };
        if *exists == Some(true) {
            continue;
        }
        let (name, size) = (&target.name, volume.size_gb.to_string());
        steps.push(flyctl(
            format!("create volume {} for {name}{}", volume.name, unless(*exists)),
            &[
                "volumes", "create", &volume.name, "--app", name, "--region", &volume.region,
                "--size", &size,
                // Without it flyctl asks whether one volume (on one host) is enough.
                "--yes",
            ],
            None,
            format!("`flyctl volumes list --app {name}` shows what exists; a region without capacity needs another primary_region"),
        ));
    }
    for target in targets
        .iter()
        .filter(|target| !secrets.names_for(target.app).is_empty())
    {
        let name = &target.name;
        steps.push(flyctl(
            format!("stage secrets for {name}"),
            &["secrets", "import", "--app", name, "--stage"],
            Some(target.app),
            format!(
                "`flyctl secrets list --app {name}` shows what is set; fix the value and run again"
            ),
        ));
    }
    let commit = format!("{COMMIT_ENV}={revision}");
    let deploy = |target: &Target| {
        let (name, config) = (&target.name, preflight::config_path(target.app));
        let only = match target.app {
            FlyApp::Collector => "collector",
            FlyApp::Api => "api",
            FlyApp::Worker => "worker",
        };
        flyctl(
            format!("deploy {name}"),
            &[
                "deploy",
                "--config",
                config,
                "--app",
                name,
                "--image-label",
                revision,
                "--env",
                &commit,
                // Never wait on a prompt: there is nobody at stdin in CI.
                "--yes",
            ],
            None,
            format!(
                "the output above says which part failed (the api's `migrate` release command prints its error there); \
                 see `flyctl logs --app {name}`, fix it, then run `cargo xtask deploy fly --only {only}`"
            ),
        )
    };
    let seconds = flags.verify_timeout;
    let check = |target: &Target| {
        let (name, config) = (&target.name, preflight::config_path(target.app));
        let (shown, action) = match target.app {
            FlyApp::Api => {
                let url = flags
                    .api_url
                    .clone()
                    .unwrap_or_else(|| format!("https://{name}.fly.dev"))
                    .trim_end_matches('/')
                    .to_owned();
                let shown = format!(
                    "poll {url}/health, then {url}/version until \"commit\" is {revision} (up to {seconds} s)"
                );
                (shown, Action::CheckApi { url })
            }
            FlyApp::Collector | FlyApp::Worker => {
                let status = flyctl::display(program, &status::status_args(name));
                let shown = format!(
                    "poll `{status}` until every Machine is started on image {revision} and passes its checks (up to {seconds} s)"
                );
                (shown, Action::CheckMachines { name: name.clone() })
            }
        };
        Step {
            label: format!("check {name}"),
            shown,
            action,
            next: format!(
                "`flyctl status --app {name}` and `flyctl logs --app {name}` show why; `flyctl releases --app {name} --image` \
                 lists earlier images to go back to with `flyctl deploy --config {config} --image <image>`"
            ),
        }
    };
    // The apps export to the collector, so it must be healthy before they roll.
    let (collector, apps): (Vec<&Target>, Vec<&Target>) = targets
        .iter()
        .partition(|target| target.app == FlyApp::Collector);
    for target in collector {
        steps.push(deploy(target));
        steps.push(check(target));
    }
    steps.extend(apps.iter().map(|target| deploy(target)));
    steps.extend(apps.iter().map(|target| check(target)));
    steps
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
