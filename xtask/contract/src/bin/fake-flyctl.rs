//! A stand-in for `flyctl`, for the tests of `cargo xtask deploy fly` only: Fly's API cannot be
//! reached from CI, so this answers the few commands the deploy uses the way flyctl does (same
//! flags, same JSON shapes, same error texts), keeping the "platform" in a folder.
//!
//! ```text
//! FAKE_FLYCTL_STATE=/tmp/state fake-flyctl apps list --json
//! ```
//!
//! The tests put it first on PATH under the name `flyctl`. State, in `$FAKE_FLYCTL_STATE`:
//! - `calls.jsonl`: one line per call, `{"args": [...], "stdin": {...}}`. For `secrets import`,
//!   stdin is parsed with flyctl's own rules and recorded as name -> hash of the value, so tests
//!   can check what arrived without the value being written anywhere.
//! - `apps/<name>.json`: an app created by `apps create`, its secrets' digests and, after
//!   `deploy`, its Machine (image label, environment, checks), which `status --json` reports.
//!
//! `FAKE_FLYCTL_FAIL=<command>@<app>` (e.g. `deploy@ampel-api`, `auth whoami@`) makes that call
//! fail the way flyctl fails there.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A parsed command line: the command words and the flags flyctl would accept for them.
struct Call {
    words: Vec<String>,
    flags: BTreeMap<String, Vec<String>>,
}

impl Call {
    fn parse(args: &[String]) -> Result<Self, String> {
        const WITH_VALUE: [&str; 5] = ["--app", "--config", "--org", "--image-label", "--env"];
        const BOOLEAN: [&str; 3] = ["--json", "--stage", "--yes"];
        let mut words = Vec::new();
        let mut flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if WITH_VALUE.contains(&arg.as_str()) {
                let value = args
                    .next()
                    .ok_or(format!("flag needs an argument: {arg}"))?;
                flags.entry(arg.clone()).or_default().push(value.clone());
            } else if BOOLEAN.contains(&arg.as_str()) {
                flags.entry(arg.clone()).or_default();
            } else if arg.starts_with('-') {
                return Err(format!("unknown flag: {arg}"));
            } else {
                words.push(arg.clone());
            }
        }
        Ok(Self { words, flags })
    }

    fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|values| values.last())
            .map(String::as_str)
    }

    fn has(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    fn command(&self) -> Vec<&str> {
        self.words.iter().map(String::as_str).collect()
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let state = PathBuf::from(
        std::env::var_os("FAKE_FLYCTL_STATE")
            .ok_or("FAKE_FLYCTL_STATE is not set (fake-flyctl is for tests)")?,
    );
    std::fs::create_dir_all(state.join("apps")).map_err(|err| err.to_string())?;
    let call = Call::parse(args)?;
    let stdin_secrets = if call.command() == ["secrets", "import"] {
        let mut stdin = String::new();
        std::io::stdin()
            .read_to_string(&mut stdin)
            .map_err(|err| err.to_string())?;
        Some(stdin)
    } else {
        None
    };
    let parsed = stdin_secrets.as_deref().map(parse_secrets);
    record(
        &state,
        args,
        parsed.as_ref().and_then(|parsed| parsed.as_ref().ok()),
    )?;

    let app = call.flag("--app").map(str::to_owned);
    let failing = std::env::var("FAKE_FLYCTL_FAIL").unwrap_or_default();
    let key = match call.command().as_slice() {
        ["apps", "create", name] => format!("apps create@{name}"),
        words => format!("{}@{}", words.join(" "), app.clone().unwrap_or_default()),
    };
    let fail = failing.split(',').any(|wanted| wanted == key);

    match call.command().as_slice() {
        ["auth", "whoami"] if fail => {
            Err("no access token available. Please login with 'flyctl auth login'".into())
        }
        ["auth", "whoami"] => print_json(&json!({ "email": "deployer@example.com" })),
        ["apps", "list"] => {
            let apps: Vec<Value> = list_apps(&state)?
                .into_iter()
                .map(|app| {
                    let name = app["name"].as_str().unwrap_or_default().to_owned();
                    let deployed = app["machines"].as_array().is_some_and(|machines| !machines.is_empty());
                    json!({
                        "ID": name, "Name": name, "Status": if deployed { "deployed" } else { "pending" },
                        "Deployed": deployed, "Hostname": format!("{name}.fly.dev"),
                        "Organization": { "Slug": app["org"], "Name": app["org"] },
                    })
                })
                .collect();
            print_json(&Value::Array(apps))
        }
        ["apps", "create", name] => {
            let path = app_path(&state, name);
            if fail || path.exists() {
                return Err("Validation failed: Name has already been taken".into());
            }
            let org = call.flag("--org").unwrap_or("personal");
            save(
                &path,
                &json!({ "name": name, "org": org, "secrets": {}, "machines": [] }),
            )?;
            println!("New app created: {name}");
            Ok(())
        }
        ["secrets", "list"] => {
            let app = load_app(&state, app.as_deref())?;
            let secrets: Vec<Value> = app["secrets"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, digest)| json!({ "name": name, "digest": digest, "status": "Deployed" }))
                .collect();
            print_json(&Value::Array(secrets))
        }
        ["secrets", "import"] => {
            let mut record = load_app(&state, app.as_deref())?;
            if fail {
                // flyctl's parser quotes the line it cannot read, value and all.
                let line = stdin_secrets
                    .as_deref()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default();
                return Err(format!(
                    "Failed to parse secrets from stdin: Secrets must be provided as NAME=VALUE pairs ({line} is invalid)"
                ));
            }
            let parsed = parsed
                .unwrap_or_else(|| Ok(BTreeMap::new()))
                .map_err(|err| format!("Failed to parse secrets from stdin: {err}"))?;
            if parsed.is_empty() {
                return Err("requires at least one SECRET=VALUE pair".into());
            }
            for (name, value) in parsed {
                record["secrets"][name] = Value::String(digest(&value));
            }
            save(
                &app_path(&state, record["name"].as_str().unwrap_or_default()),
                &record,
            )?;
            if call.has("--stage") {
                println!(
                    "Secrets have been staged, but not set on VMs. Deploy or update machines in this app for the secrets to take effect."
                );
            }
            Ok(())
        }
        ["deploy"] => deploy(&state, &call, app.as_deref(), fail),
        ["status"] => {
            let app = load_app(&state, app.as_deref())?;
            print_json(&json!({
                "ID": app["name"], "Name": app["name"], "Status": "deployed", "Deployed": true,
                "Hostname": format!("{}.fly.dev", app["name"].as_str().unwrap_or_default()),
                "Organization": { "Slug": app["org"] }, "Machines": app["machines"],
            }))
        }
        words => Err(format!(
            "unknown command \"{}\" for \"flyctl\"",
            words.join(" ")
        )),
    }
}

/// `flyctl deploy`: prints a build and a rollout, and leaves one Machine running the new image
/// with the config's `[env]` plus `--env` values, as Fly would.
fn deploy(state: &Path, call: &Call, app: Option<&str>, fail: bool) -> Result<(), String> {
    let config_path = call.flag("--config").ok_or("--config is required here")?;
    let config_text = std::fs::read_to_string(config_path)
        .map_err(|err| format!("cannot read {config_path}: {err}"))?;
    let config: toml::Table =
        toml::from_str(&config_text).map_err(|err| format!("invalid {config_path}: {err}"))?;
    let name = app
        .or_else(|| config.get("app").and_then(toml::Value::as_str))
        .ok_or("the config names no app")?
        .to_owned();
    let path = app_path(state, &name);
    if !path.exists() {
        return Err(format!(
            "the app name {name} could not be found, did you create the app or misspell it in the fly.toml file or via -a?"
        ));
    }
    let label = call.flag("--image-label").unwrap_or("deployment-01");
    println!("==> Verifying app config");
    println!("--> Verified app config");
    println!("==> Building image");
    println!("--> Building image done");
    println!("==> Pushing image to fly");
    println!("--> Pushing image done");
    println!("image: registry.fly.io/{name}:{label}");
    if let Some(command) = config
        .get("deploy")
        .and_then(|deploy| deploy.get("release_command"))
        .and_then(toml::Value::as_str)
    {
        println!("Running {name} release_command: {command}");
        if fail {
            println!("  Error: error returned from database: permission denied for schema public");
            return Err(
                "release_command failed running on machine 148e272b with exit code 1.".into(),
            );
        }
    } else if fail {
        println!("Updating existing machines in '{name}' with rolling strategy");
        return Err(
            "timeout reached waiting for health checks to pass for machine 3d8d9e1b".into(),
        );
    }
    let mut env: BTreeMap<String, String> = config
        .get("env")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| value.as_str().map(|value| (key.clone(), value.to_owned())))
        .collect();
    for pair in call.flags.get("--env").into_iter().flatten() {
        let (key, value) = pair
            .split_once('=')
            .ok_or(format!("failed parsing environment: {pair}"))?;
        env.insert(key.to_owned(), value.to_owned());
    }
    let check = if config.contains_key("http_service") {
        "servicecheck-00-http-8080"
    } else {
        "health"
    };
    println!("Updating existing machines in '{name}' with rolling strategy");
    println!("  Machine 3d8d9e1b [app] update finished: success");
    println!("Finished deploying");
    let mut record = load_app(state, Some(&name))?;
    record["machines"] = json!([{
        "id": "3d8d9e1b", "state": "started", "region": config.get("primary_region").and_then(toml::Value::as_str),
        "image_ref": { "registry": "registry.fly.io", "repository": name, "tag": label },
        "config": { "env": env },
        "checks": [{ "name": check, "status": "passing", "output": "[✓] 200 OK" }],
    }]);
    save(&path, &record)
}

/// flyctl's `parseSecrets` (internal/command/secrets/parser.go), rule for rule.
fn parse_secrets(input: &str) -> Result<BTreeMap<String, String>, String> {
    let mut secrets = BTreeMap::new();
    let mut multiline: Option<(String, String)> = None;
    for line in input.lines() {
        if let Some((key, mut value)) = multiline.take() {
            if let Some(before) = line.strip_suffix("\"\"\"") {
                value.push_str(before);
                secrets.insert(key, value);
            } else {
                value.push_str(line);
                value.push('\n');
                multiline = Some((key, value));
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "Secrets must be provided as NAME=VALUE pairs ({line} is invalid)"
            ));
        };
        let key = key.trim().to_owned();
        let mut value = value.trim_start_matches(' ').to_owned();
        if let Some((before, _)) = value.split_once('#')
            && before.matches('"').count() % 2 == 0
        {
            value = before.trim_end_matches(' ').to_owned();
        }
        if value.starts_with("\"\"\"") && value.ends_with("\"\"\"") && value.len() >= 6 {
            secrets.insert(key, value[3..value.len() - 3].to_owned());
        } else if let Some(rest) = value.strip_prefix("\"\"\"") {
            multiline = Some((key, format!("{rest}\n")));
        } else {
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|quote| {
                    value
                        .strip_prefix(*quote)
                        .and_then(|rest| rest.strip_suffix(*quote))
                })
                .map(str::to_owned)
                .unwrap_or(value);
            secrets.insert(key, unquoted);
        }
    }
    Ok(secrets)
}

/// What the fake keeps of a secret value: a hash, never the value.
fn digest(value: &str) -> String {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn record(
    state: &Path,
    args: &[String],
    secrets: Option<&BTreeMap<String, String>>,
) -> Result<(), String> {
    use std::io::Write as _;
    let stdin = secrets.map(|secrets| {
        secrets
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(digest(value))))
            .collect::<serde_json::Map<_, _>>()
    });
    let line = json!({ "args": args, "stdin": stdin });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("calls.jsonl"))
        .map_err(|err| err.to_string())?;
    writeln!(file, "{line}").map_err(|err| err.to_string())
}

fn app_path(state: &Path, name: &str) -> PathBuf {
    state.join("apps").join(format!("{name}.json"))
}

fn load_app(state: &Path, name: Option<&str>) -> Result<Value, String> {
    let name = name.ok_or("the config for your app is missing an app name, add an app field to the fly.toml file or specify with the -a flag")?;
    let text = std::fs::read_to_string(app_path(state, name))
        .map_err(|_| format!("Could not find App \"{name}\""))?;
    serde_json::from_str(&text).map_err(|err| err.to_string())
}

fn list_apps(state: &Path) -> Result<Vec<Value>, String> {
    let mut apps = Vec::new();
    for entry in std::fs::read_dir(state.join("apps")).map_err(|err| err.to_string())? {
        let text = std::fs::read_to_string(entry.map_err(|err| err.to_string())?.path())
            .map_err(|err| err.to_string())?;
        apps.push(serde_json::from_str(&text).map_err(|err| err.to_string())?);
    }
    apps.sort_by(|a: &Value, b: &Value| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(apps)
}

fn save(path: &Path, value: &Value) -> Result<(), String> {
    std::fs::write(path, format!("{value:#}\n")).map_err(|err| err.to_string())
}

fn print_json(value: &Value) -> Result<(), String> {
    println!("{value:#}");
    Ok(())
}
