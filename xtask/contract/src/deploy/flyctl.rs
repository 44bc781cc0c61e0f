//! Finding and running flyctl: JSON queries captured, long commands streamed, the last lines of
//! every run kept for the error message, secret values masked in all of it.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::de::DeserializeOwned;

use super::secrets::Secrets;

/// How many lines of flyctl output a failed step shows.
const TAIL_LINES: usize = 20;

/// How to get a working flyctl, for messages about a missing one.
pub const INSTALL: &str = "install it (`curl -L https://fly.io/install.sh | sh`, `brew install flyctl`, \
    or `nix develop` in this repository), then run `flyctl auth login`";

/// The name commands are shown with when no flyctl was found.
pub const NAME: &str = "flyctl";

/// The flyctl binary found on PATH.
pub struct Flyctl {
    program: PathBuf,
}

/// Why a flyctl run failed: its exit status and the last lines it printed (masked).
pub struct Failure {
    pub status: String,
    pub tail: Vec<String>,
}

impl Flyctl {
    /// Finds `flyctl`, or `fly` (the same binary under its short name), on PATH.
    pub fn find() -> anyhow::Result<Self> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|dir| [dir.join("flyctl"), dir.join("fly")])
            .find(|candidate| is_executable(candidate))
            .map(|program| Self { program })
            .with_context(|| format!("flyctl not found on PATH: {INSTALL}"))
    }

    /// The name it was found under: `flyctl` or `fly`.
    pub fn name(&self) -> String {
        self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    }

    /// How the plan and the progress lines show a command.
    pub fn display(&self, args: &[String]) -> String {
        display(&self.name(), args)
    }

    /// Runs a read-only query such as `apps list --json` and parses what it prints.
    pub fn json<T: DeserializeOwned>(
        &self,
        args: &[String],
        secrets: &Secrets,
    ) -> Result<T, Failure> {
        let output = duct::cmd(&self.program, args)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|err| Failure {
                status: format!("could not start: {err}"),
                tail: Vec::new(),
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Failure {
                status: output.status.to_string(),
                tail: tail(&secrets.redact(&format!("{stdout}{stderr}"))),
            });
        }
        serde_json::from_str(&stdout).map_err(|err| Failure {
            status: format!("printed something that is not the JSON expected ({err})"),
            tail: tail(&secrets.redact(&stdout)),
        })
    }

    /// Runs a command that changes something, streaming its output (masked, indented) to stderr;
    /// `stdin`, when given, is written to the command's standard input.
    pub fn stream(
        &self,
        args: &[String],
        stdin: Option<String>,
        secrets: &Secrets,
    ) -> Result<(), Failure> {
        let mut expression = duct::cmd(&self.program, args)
            .stderr_to_stdout()
            .unchecked();
        expression = match stdin {
            Some(stdin) => expression.stdin_bytes(stdin),
            None => expression.stdin_null(),
        };
        let started = |err: std::io::Error| Failure {
            status: format!("could not start: {err}"),
            tail: Vec::new(),
        };
        let reader = expression.reader().map_err(started)?;
        let mut last = VecDeque::with_capacity(TAIL_LINES);
        for line in BufReader::new(&reader).lines() {
            let (line, unreadable) = match line {
                Ok(line) => (secrets.redact(&line), false),
                Err(err) => (
                    format!("(the rest of the output is unreadable: {err})"),
                    true,
                ),
            };
            eprintln!("    {line}");
            if last.len() == TAIL_LINES {
                last.pop_front();
            }
            last.push_back(line);
            if unreadable {
                break;
            }
        }
        let status = match reader.try_wait() {
            Ok(Some(output)) => output.status,
            Ok(None) => {
                // Only after an unreadable line: stop it rather than leave it running unseen.
                let _ = reader.kill();
                return Err(Failure {
                    status: "stopped, its output could not be read".into(),
                    tail: last.into(),
                });
            }
            Err(err) => return Err(started(err)),
        };
        if status.success() {
            Ok(())
        } else {
            Err(Failure {
                status: status.to_string(),
                tail: last.into(),
            })
        }
    }
}

/// A command as the plan shows it, run by the flyctl called `name`.
pub fn display(name: &str, args: &[String]) -> String {
    format!("{name} {}", args.join(" "))
}

fn tail(text: &str) -> Vec<String> {
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
