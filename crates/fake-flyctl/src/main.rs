//! `fake-flyctl`: answers the flyctl commands README.md lists from the state folder named by
//! `$FAKE_FLYCTL_STATE` (layout: the library's `State`), recording each call first.
//!
//! ```text
//! FAKE_FLYCTL_STATE=/tmp/state fake-flyctl apps list --json
//! ```

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use fake_flyctl::{Call, Command, FAIL_ENV, STATE_ENV, State, digest};
use serde_json::{Value, json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let state = State::new(
        std::env::var_os(STATE_ENV)
            .with_context(|| format!("{STATE_ENV} is not set (fake-flyctl is for tests)"))?,
    );
    let command = Command::parse(args)?;
    let stdin = if command.words() == ["secrets", "import"] {
        let mut stdin = String::new();
        std::io::stdin().read_to_string(&mut stdin)?;
        Some(stdin)
    } else {
        None
    };
    let parsed = stdin.as_deref().map(parse_secrets);
    let digests = parsed
        .as_ref()
        .and_then(|parsed| parsed.as_ref().ok())
        .map(|secrets| {
            secrets
                .iter()
                .map(|(name, value)| (name.clone(), digest(value)))
                .collect()
        });
    state.record(&Call {
        args: args.to_vec(),
        stdin: digests,
    })?;

    let app = command.flag("--app");
    let fail = std::env::var(FAIL_ENV)
        .unwrap_or_default()
        .split(',')
        .any(|wanted| wanted == command.key());
    match command.words().as_slice() {
        ["auth", "whoami"] if fail => {
            bail!("no access token available. Please login with 'flyctl auth login'")
        }
        ["auth", "whoami"] => print_json(&json!({ "email": "deployer@example.com" })),
        ["apps", "list"] => {
            let apps: Vec<Value> = state
                .apps()?
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
            if fail || state.app(name)?.is_some() {
                bail!("Validation failed: Name has already been taken");
            }
            let org = command.flag("--org").unwrap_or("personal");
            state.save_app(
                &json!({ "name": name, "org": org, "secrets": {}, "volumes": [], "machines": [] }),
            )?;
            println!("New app created: {name}");
            Ok(())
        }
        ["secrets", "list"] => {
            let app = load_app(&state, app)?;
            let secrets: Vec<Value> = app["secrets"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, digest)| json!({ "name": name, "digest": digest, "status": "Deployed" }))
                .collect();
            print_json(&Value::Array(secrets))
        }
        ["secrets", "import"] => {
            let mut record = load_app(&state, app)?;
            if fail {
                // flyctl's parser quotes the line it cannot read, value and all.
                let line = stdin.as_deref().and_then(|stdin| stdin.lines().next());
                bail!(
                    "Failed to parse secrets from stdin: Secrets must be provided as NAME=VALUE pairs ({} is invalid)",
                    line.unwrap_or_default()
                );
            }
            let parsed = parsed
                .unwrap_or_else(|| Ok(BTreeMap::new()))
                .map_err(|err| anyhow::anyhow!("Failed to parse secrets from stdin: {err}"))?;
            if parsed.is_empty() {
                bail!("requires at least one SECRET=VALUE pair");
            }
            for (name, value) in parsed {
                record["secrets"][name] = Value::String(digest(&value));
            }
            state.save_app(&record)?;
            if command.has("--stage") {
                println!(
                    "Secrets have been staged, but not set on VMs. Deploy or update machines in this app for the secrets to take effect."
                );
            }
            Ok(())
        }
        ["volumes", "list"] => {
            let app = load_app(&state, app)?;
            print_json(&app["volumes"])
        }
        ["volumes", "create", volume] => {
            let mut record = load_app(&state, app)?;
            if !command.has("--yes") {
                bail!("yes flag must be specified when not running interactively");
            }
            let region = command
                .flag("--region")
                .context("requires a region: pass --region or set primary_region in fly.toml")?;
            let size: u32 = command.flag("--size").unwrap_or("1").parse()?;
            let created = new_volume(&record, volume, region, size);
            println!(
                "                  ID: {}
                Name: {volume}
              Region: {region}
             Size GB: {size}",
                created["id"].as_str().unwrap_or_default()
            );
            push(&mut record["volumes"], created);
            state.save_app(&record)
        }
        ["deploy"] => deploy(&state, &command, fail),
        ["status"] => {
            let mut app = load_app(&state, app)?;
            if fail {
                // As Fly shows a Machine whose process does not answer its check.
                for machine in app["machines"].as_array_mut().into_iter().flatten() {
                    for check in machine["checks"].as_array_mut().into_iter().flatten() {
                        check["status"] = json!("critical");
                        check["output"] =
                            json!("dial tcp [fdaa::3]:13133: connect: connection refused");
                    }
                }
            }
            print_json(&json!({
                "ID": app["name"], "Name": app["name"], "Status": "deployed", "Deployed": true,
                "Hostname": format!("{}.fly.dev", app["name"].as_str().unwrap_or_default()),
                "Organization": { "Slug": app["org"] }, "Machines": app["machines"],
            }))
        }
        words => bail!("unknown command \"{}\" for \"flyctl\"", words.join(" ")),
    }
}

/// `flyctl deploy`: prints a build and a rollout, and leaves one Machine running the new image
/// with the config's `[env]` plus `--env` values, as Fly would.
fn deploy(state: &State, command: &Command, fail: bool) -> anyhow::Result<()> {
    let config_path = command
        .flag("--config")
        .context("--config is required here")?;
    let config_text = std::fs::read_to_string(config_path)
        .with_context(|| format!("cannot read {config_path}"))?;
    let config: toml::Table =
        toml::from_str(&config_text).with_context(|| format!("invalid {config_path}"))?;
    let name = command
        .flag("--app")
        .or_else(|| config.get("app").and_then(toml::Value::as_str))
        .context("the config names no app")?;
    let Some(mut record) = state.app(name)? else {
        bail!(
            "the app name {name} could not be found, did you create the app or misspell it in the fly.toml file or via -a?"
        );
    };
    let label = command.flag("--image-label").unwrap_or("deployment-01");
    println!("==> Verifying app config");
    println!("--> Verified app config");
    println!("==> Building image");
    println!("--> Building image done");
    println!("==> Pushing image to fly");
    println!("--> Pushing image done");
    println!("image: registry.fly.io/{name}:{label}");
    if let Some(release) = config
        .get("deploy")
        .and_then(|deploy| deploy.get("release_command"))
        .and_then(toml::Value::as_str)
    {
        println!("Running {name} release_command: {release}");
        if fail {
            println!("  Error: error returned from database: permission denied for schema public");
            bail!("release_command failed running on machine 148e272b with exit code 1.");
        }
    } else if fail {
        println!("Updating existing machines in '{name}' with rolling strategy");
        bail!("timeout reached waiting for health checks to pass for machine 3d8d9e1b");
    }
    let mut env: BTreeMap<String, String> = config
        .get("env")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| value.as_str().map(|value| (key.clone(), value.to_owned())))
        .collect();
    for pair in command.values("--env") {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("failed parsing environment: {pair}"))?;
        env.insert(key.to_owned(), value.to_owned());
    }
    let check = if config.contains_key("http_service") {
        "servicecheck-00-http-8080"
    } else {
        "health"
    };
    let mounts = attach_volume(&mut record, &config)?;
    println!("Updating existing machines in '{name}' with rolling strategy");
    println!("  Machine 3d8d9e1b [app] update finished: success");
    println!("Finished deploying");
    record["machines"] = json!([{
        "id": "3d8d9e1b", "state": "started", "region": config.get("primary_region").and_then(toml::Value::as_str),
        "image_ref": { "registry": "registry.fly.io", "repository": name, "tag": label },
        "config": { "env": env, "mounts": mounts },
        "checks": [{ "name": check, "status": "passing", "output": "[✓] 200 OK" }],
    }]);
    state.save_app(&record)
}

/// The config's `[mounts]` on the app's Machine: the volume of that name in the region, which
/// flyctl creates on the app's first deploy when it is missing, as Fly does. `[]` without mounts.
fn attach_volume(record: &mut Value, config: &toml::Table) -> anyhow::Result<Value> {
    let Some(mount) = config.get("mounts") else {
        return Ok(json!([]));
    };
    let mount = mount
        .as_array()
        .and_then(|all| all.first())
        .unwrap_or(mount);
    let field = |key| {
        mount
            .get(key)
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
    };
    let (source, destination) = (field("source"), field("destination"));
    let region = config
        .get("primary_region")
        .and_then(toml::Value::as_str)
        .unwrap_or_default();
    let found = record["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .position(|volume| volume["name"] == source && volume["region"] == region);
    let index = match found {
        Some(index) => index,
        None if record["machines"].as_array().is_none_or(Vec::is_empty) => {
            println!(
                "Creating a 1 GB volume named '{source}' for process group 'app'. Use 'fly vol extend' to increase its size"
            );
            let created = new_volume(record, source, region, 1);
            push(&mut record["volumes"], created);
            record["volumes"].as_array().map_or(0, |all| all.len() - 1)
        }
        None => bail!(
            "machine 3d8d9e1b does not have a volume configured and fly.toml expects one with destination {destination}; remove the [mounts] configuration in fly.toml or use the machines API to add a volume to this machine"
        ),
    };
    let volume = &mut record["volumes"][index];
    volume["attached_machine_id"] = json!("3d8d9e1b");
    Ok(json!([{ "volume": volume["id"], "name": source, "path": destination }]))
}

/// A volume in fly-go's shape, unattached, with an id that is new for the app.
fn new_volume(record: &Value, name: &str, region: &str, size_gb: u32) -> Value {
    let count = record["volumes"].as_array().map_or(0, Vec::len);
    json!({
        "id": format!("vol_{:016x}", count + 1), "name": name, "state": "created", "size_gb": size_gb,
        "region": region, "zone": "b2c4", "encrypted": true, "attached_machine_id": null,
        "attached_alloc_id": null, "created_at": "2026-01-01T00:00:00Z", "snapshot_retention": 5,
        "auto_backup_enabled": true, "host_status": "ok",
    })
}

/// Appends to a JSON array, making one of a missing field.
fn push(array: &mut Value, item: Value) {
    match array.as_array_mut() {
        Some(items) => items.push(item),
        None => *array = json!([item]),
    }
}

/// An app named by `--app`, with flyctl's errors for a missing flag or app.
fn load_app(state: &State, name: Option<&str>) -> anyhow::Result<Value> {
    let name = name.context("the config for your app is missing an app name, add an app field to the fly.toml file or specify with the -a flag")?;
    state
        .app(name)?
        .with_context(|| format!("Could not find App \"{name}\""))
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

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{value:#}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_secrets;

    /// The import parser changes values the way flyctl's does, which is what a caller must
    /// quote against: `#` starts a comment after an even number of `"`, one pair of quotes is
    /// removed, `"""` keeps the value as it is, across lines too.
    #[test]
    fn secrets_parse_as_flyctl_parses_them() {
        let parsed = parse_secrets(
            "# comment\nA=x #cut\nB=\"quoted\"\nC=\"\"\"kept #\"\"\"\nD=\"\"\"two\nlines\"\"\"\n",
        )
        .unwrap();
        let expected = [
            ("A", "x"),
            ("B", "quoted"),
            ("C", "kept #"),
            ("D", "two\nlines"),
        ];
        assert_eq!(
            parsed,
            expected
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .into()
        );
        assert_eq!(
            parse_secrets("no pair\n").unwrap_err(),
            "Secrets must be provided as NAME=VALUE pairs (no pair is invalid)"
        );
    }
}
