//! The binary as a caller meets it: built by `FakeFly::new`, run as `flyctl` with the state
//! variable set, its calls and apps read back.

use std::process::Output;

use fake_flyctl::{FAIL_ENV, FakeFly, digest};

fn flyctl(fly: &FakeFly, args: &str, stdin: &str, env: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = args.split(' ').collect();
    fly.run(&args, stdin, env)
}

/// An app created, given a secret and listed; the value is kept only as its digest.
#[test]
fn created_app_keeps_its_secret_as_a_digest() {
    let fly = FakeFly::new().unwrap();
    assert!(
        flyctl(&fly, "apps create my-app --org acme", "", &[])
            .status
            .success()
    );
    let import = flyctl(
        &fly,
        "secrets import --app my-app",
        "TOKEN=\"\"\"s3cr#t\"\"\"\n",
        &[],
    );
    assert!(import.status.success(), "{import:?}");
    let listed = flyctl(&fly, "apps list --json", "", &[]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["Name"], "my-app");
    assert_eq!(listed[0]["Organization"]["Slug"], "acme");

    assert_eq!(
        fly.keys(),
        ["apps create@my-app", "secrets import@my-app", "apps list@"]
    );
    assert_eq!(
        fly.calls()[1].stdin.as_ref().unwrap()["TOKEN"],
        digest("s3cr#t")
    );
    assert_eq!(
        fly.app("my-app").unwrap()["secrets"]["TOKEN"],
        digest("s3cr#t")
    );
    for file in ["calls.jsonl", "apps/my-app.json"] {
        let text = std::fs::read_to_string(fly.state_dir().join(file)).unwrap();
        assert!(!text.contains("s3cr#t"), "{file}: {text}");
    }
}

/// Failures are asked for by key and look like flyctl's; unknown flags are refused unrecorded.
#[test]
fn failures_look_like_flyctl() {
    let fly = FakeFly::new().unwrap();
    let whoami = flyctl(
        &fly,
        "auth whoami --json",
        "",
        &[(FAIL_ENV, "auth whoami@")],
    );
    assert!(!whoami.status.success());
    let stderr = String::from_utf8_lossy(&whoami.stderr);
    assert!(
        stderr.starts_with("Error: no access token available"),
        "{stderr}"
    );
    let unknown = flyctl(&fly, "deploy --detach", "", &[]);
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr),
        "Error: unknown flag: --detach\n"
    );
    let missing = flyctl(&fly, "status --app nope --json", "", &[]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Could not find App \"nope\""));
    assert_eq!(fly.keys(), ["auth whoami@", "status@nope"]);
}

/// A volume is created only with `--yes`, listed in fly-go's shape, and attached by a deploy
/// whose `[mounts]` names it; a status told to fail shows the Machine's checks critical.
#[test]
fn volumes_attach_and_checks_fail_like_fly() {
    let fly = FakeFly::new().unwrap();
    let config = fly.state_dir().join("fly.toml");
    std::fs::write(
        &config,
        "app = \"q\"\nprimary_region = \"ams\"\n[mounts]\n  source = \"queue\"\n  destination = \"/data\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    assert!(
        flyctl(&fly, "apps create q --org acme", "", &[])
            .status
            .success()
    );
    let prompt = flyctl(&fly, "volumes create queue --app q --region ams", "", &[]);
    assert_eq!(
        String::from_utf8_lossy(&prompt.stderr),
        "Error: yes flag must be specified when not running interactively\n"
    );
    let create = flyctl(
        &fly,
        "volumes create queue --app q --region ams --size 1 --yes",
        "",
        &[],
    );
    assert!(create.status.success(), "{create:?}");
    let deploy = flyctl(
        &fly,
        &format!("deploy --config {config} --app q --yes"),
        "",
        &[],
    );
    assert!(deploy.status.success(), "{deploy:?}");
    let listed = flyctl(&fly, "volumes list --app q --json", "", &[]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        (
            &listed[0]["name"],
            &listed[0]["region"],
            &listed[0]["size_gb"]
        ),
        (&"queue".into(), &"ams".into(), &1.into())
    );
    assert_eq!(listed[0]["attached_machine_id"], "3d8d9e1b");
    let app = fly.app("q").unwrap();
    assert_eq!(app["machines"][0]["config"]["mounts"][0]["path"], "/data");

    // A Machine deployed without the mount cannot get it by a deploy, as on Fly.
    let plain = fly.state_dir().join("plain.toml");
    std::fs::write(&plain, "app = \"r\"\nprimary_region = \"ams\"\n").unwrap();
    let plain = plain.to_str().unwrap();
    assert!(
        flyctl(&fly, "apps create r --org acme", "", &[])
            .status
            .success()
    );
    let first = flyctl(
        &fly,
        &format!("deploy --config {plain} --app r --yes"),
        "",
        &[],
    );
    assert!(first.status.success(), "{first:?}");
    let mounted = flyctl(
        &fly,
        &format!("deploy --config {config} --app r --yes"),
        "",
        &[],
    );
    assert!(
        String::from_utf8_lossy(&mounted.stderr)
            .contains("machine 3d8d9e1b does not have a volume configured and fly.toml expects one with destination /data"),
        "{mounted:?}"
    );

    let status = flyctl(&fly, "status --app q --json", "", &[(FAIL_ENV, "status@q")]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["Machines"][0]["checks"][0]["status"], "critical");
}
