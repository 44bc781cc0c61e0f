//! A fake `flyctl` for the tests of a program that deploys with it. Fly's API cannot be reached
//! from CI, so the `fake-flyctl` binary answers the few commands such a deploy runs the way
//! flyctl does (same flags, same JSON shapes, same error texts) and keeps the "platform" in a
//! folder; this library builds that binary, puts it on a PATH as `flyctl` and reads back what it
//! recorded. README.md lists what it fakes and what it does not.
//!
//! ```no_run
//! let fly = fake_flyctl::FakeFly::new().unwrap();
//! // run the program under test with fly.bin() first on PATH and fly.env() set, then:
//! assert_eq!(fly.keys(), ["auth whoami@", "apps list@"]);
//! ```

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The variable naming the folder the binary keeps its [`State`] in; it refuses to run without.
pub const STATE_ENV: &str = "FAKE_FLYCTL_STATE";

/// Comma-separated [`Command::key`]s of the calls to fail the way flyctl fails there, e.g.
/// `deploy@my-app,auth whoami@`.
pub const FAIL_ENV: &str = "FAKE_FLYCTL_FAIL";

/// A fake Fly for one test: a temporary folder with `bin/flyctl` (the fake) and its state.
/// A test helper: its readers panic on a state folder they cannot read.
pub struct FakeFly {
    dir: tempfile::TempDir,
}

impl FakeFly {
    /// A fresh platform without apps; builds the binary on first use in this process.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("bin"))?;
        std::fs::create_dir(dir.path().join("state"))?;
        std::os::unix::fs::symlink(binary()?, dir.path().join("bin/flyctl"))?;
        Ok(Self { dir })
    }

    /// The folder holding `flyctl`, to put first on PATH.
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The state folder (layout: [`State`]).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The variable that points the fake at this platform, to set for the program under test.
    pub fn env(&self) -> (&'static str, PathBuf) {
        (STATE_ENV, self.state_dir())
    }

    /// Runs the fake as the program under test would, `stdin` on its standard input and `env`
    /// set: to call it directly, or to change the platform by hand between two runs.
    pub fn run(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> std::process::Output {
        let (name, state) = self.env();
        let mut child = std::process::Command::new(self.bin().join("flyctl"))
            .args(args)
            .env(name, state)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the fake flyctl");
        let mut input = child.stdin.take().expect("a piped stdin");
        input
            .write_all(stdin.as_bytes())
            .expect("write the fake's stdin");
        drop(input);
        child.wait_with_output().expect("wait for the fake flyctl")
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        State::new(self.state_dir())
            .calls()
            .expect("read the fake's calls")
    }

    /// Every call's [`Command::key`], oldest first.
    pub fn keys(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|call| call.command().key())
            .collect()
    }

    /// One app as `apps create`, `secrets import` and `deploy` left it; `None` if never created.
    pub fn app(&self, name: &str) -> Option<Value> {
        State::new(self.state_dir())
            .app(name)
            .expect("read the fake's app")
    }
}

/// The `fake-flyctl` binary, built at most once per process by the cargo running the tests
/// (`$CARGO`), at the path cargo reports. A test in another package gets no `CARGO_BIN_EXE_` for
/// it, and a binary merely found in the target folder may be missing or older than its source.
pub fn binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
        ])
        .args(["--bin", "fake-flyctl", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    // Cargo gives a test its own package's variables; a build script that reruns when they
    // change would make this build and the caller's next one rebuild each other's work.
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&&*name)
        {
            command.env_remove(&key);
        }
    }
    let output = command
        .output()
        .context("run cargo to build fake-flyctl: is cargo on PATH?")?;
    if !output.status.success() {
        bail!(
            "`cargo build --bin fake-flyctl` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo built fake-flyctl but named no executable")
}

/// The fake's state folder: `calls.jsonl`, one [`Call`] a line, and `apps/<name>.json`, each
/// app as `apps create` made it, with its secrets' [`digest`]s, its volumes and, after `deploy`,
/// its Machine.
#[derive(Clone)]
pub struct State {
    dir: PathBuf,
}

impl State {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> anyhow::Result<Vec<Call>> {
        let text = match std::fs::read_to_string(self.dir.join("calls.jsonl")) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            read => read?,
        };
        text.lines()
            .map(|line| Ok(serde_json::from_str(line)?))
            .collect()
    }

    /// Appends one call to `calls.jsonl`.
    pub fn record(&self, call: &Call) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("calls.jsonl"))?;
        writeln!(file, "{}", serde_json::to_string(call)?)?;
        Ok(())
    }

    /// One app; `None` if it was never created.
    pub fn app(&self, name: &str) -> anyhow::Result<Option<Value>> {
        read_app(&self.app_path(name))
    }

    /// Every app, by name.
    pub fn apps(&self) -> anyhow::Result<Vec<Value>> {
        let mut apps = Vec::new();
        let entries = match std::fs::read_dir(self.dir.join("apps")) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(apps),
            entries => entries?,
        };
        for entry in entries {
            apps.extend(read_app(&entry?.path())?);
        }
        apps.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(apps)
    }

    /// Writes an app, under the name in its `name` field.
    pub fn save_app(&self, app: &Value) -> anyhow::Result<()> {
        let name = app["name"].as_str().context("an app without a name")?;
        std::fs::create_dir_all(self.dir.join("apps"))?;
        std::fs::write(self.app_path(name), format!("{app:#}\n"))?;
        Ok(())
    }

    fn app_path(&self, name: &str) -> PathBuf {
        self.dir.join("apps").join(format!("{name}.json"))
    }
}

fn read_app(path: &Path) -> anyhow::Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        read => Ok(Some(serde_json::from_str(&read?)?)),
    }
}

/// One call as the fake recorded it: its argv and, for `secrets import`, what arrived on stdin,
/// parsed by flyctl's rules, as name -> [`digest`] of the value (never the value).
#[derive(Debug, Serialize, Deserialize)]
pub struct Call {
    pub args: Vec<String>,
    pub stdin: Option<BTreeMap<String, String>>,
}

impl Call {
    /// The argv parsed; the fake records only calls that parse.
    pub fn command(&self) -> Command {
        Command::parse(&self.args).expect("a recorded call parses")
    }
}

/// A command line as flyctl reads it: the command words and the flags it accepts for them.
pub struct Command {
    words: Vec<String>,
    flags: BTreeMap<String, Vec<String>>,
}

impl Command {
    /// Fails, as flyctl does, on a flag it does not know or one without its value.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        const WITH_VALUE: [&str; 7] = [
            "--app",
            "--config",
            "--org",
            "--image-label",
            "--env",
            "--region",
            "--size",
        ];
        const BOOLEAN: [&str; 3] = ["--json", "--stage", "--yes"];
        let mut words = Vec::new();
        let mut flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if WITH_VALUE.contains(&arg.as_str()) {
                let value = args
                    .next()
                    .with_context(|| format!("flag needs an argument: {arg}"))?;
                flags.entry(arg.clone()).or_default().push(value.clone());
            } else if BOOLEAN.contains(&arg.as_str()) {
                flags.entry(arg.clone()).or_default();
            } else if arg.starts_with('-') {
                bail!("unknown flag: {arg}");
            } else {
                words.push(arg.clone());
            }
        }
        Ok(Self { words, flags })
    }

    /// The command words, e.g. `["secrets", "import"]`.
    pub fn words(&self) -> Vec<&str> {
        self.words.iter().map(String::as_str).collect()
    }

    /// The value of a flag; the last one when given twice, as flyctl takes it.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.values(name).last().copied()
    }

    /// Every value given for a flag (`--env` may repeat).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.flags
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    /// The command words, `@` and the app: `deploy@my-app`, `auth whoami@`, for `apps create`,
    /// which names its app as a word, `apps create@my-app`, and for `volumes create`, whose word
    /// is the volume's name, `volumes create@my-app`. [`FAIL_ENV`] takes these.
    pub fn key(&self) -> String {
        match self.words().as_slice() {
            ["apps", "create", name] => format!("apps create@{name}"),
            ["volumes", "create", _] => {
                format!("volumes create@{}", self.flag("--app").unwrap_or_default())
            }
            words => format!(
                "{}@{}",
                words.join(" "),
                self.flag("--app").unwrap_or_default()
            ),
        }
    }
}

/// What the fake keeps of a secret value: a hash, so a test can check what arrived without the
/// value being written anywhere.
pub fn digest(value: &str) -> String {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    /// Keys name the app whichever way the command takes it.
    #[test]
    fn keys_name_the_app() {
        for (line, key) in [
            ("apps create my-app --org personal", "apps create@my-app"),
            (
                "deploy --config fly.toml --app my-app --yes",
                "deploy@my-app",
            ),
            ("auth whoami --json", "auth whoami@"),
            (
                "volumes create queue --app my-app --yes",
                "volumes create@my-app",
            ),
        ] {
            assert_eq!(Command::parse(&args(line)).unwrap().key(), key);
        }
    }

    /// Flags flyctl would refuse are refused, so a caller cannot pass them unnoticed.
    #[test]
    fn unknown_and_valueless_flags_are_refused() {
        let err = Command::parse(&args("deploy --detach")).err().unwrap();
        assert_eq!(err.to_string(), "unknown flag: --detach");
        let err = Command::parse(&args("status --app")).err().unwrap();
        assert_eq!(err.to_string(), "flag needs an argument: --app");
        let command = Command::parse(&args("deploy --env A=1 --env B=2")).unwrap();
        assert_eq!(command.values("--env"), ["A=1", "B=2"]);
        assert_eq!(command.flag("--env"), Some("B=2"));
    }
}
