//! The binary as a caller meets it: built by `FakeFly::new`, run as `flyctl` with the state
//! variable set, its calls and apps read back.

use std::process::{Command, Output};

use fake_flyctl::{FAIL_ENV, FakeFly, digest};

fn flyctl(fly: &FakeFly, args: &str, stdin: &str, env: &[(&str, &str)]) -> Output {
    use std::io::Write as _;
    let (name, state) = fly.env();
    let mut child = Command::new(fly.bin().join("flyctl"))
        .args(args.split(' '))
        .env(name, state)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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
