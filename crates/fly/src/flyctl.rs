//! Finding and running flyctl: JSON queries captured, long commands streamed, the last lines of
//! every run kept for the error message, secret values masked in all of it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::secrets::Mask;

/// How many lines of flyctl output a failed step shows.
const TAIL_LINES: usize = 20;

/// The name commands are shown with when no flyctl was found.
pub const NAME: &str = "flyctl";

/// The flyctl binary found on PATH.
pub struct Flyctl {
    program: PathBuf,
}

/// A failed flyctl run: the command, how it ended and the last lines it printed (masked).
pub struct Failure {
    command: String,
    status: String,
    tail: Vec<String>,
}

impl Failure {
    /// The error of a failed step: which step, how it ended, its last lines, what to try next.
    pub fn error(&self, label: &str, next: &str) -> anyhow::Error {
        let tail = if self.tail.is_empty() {
            String::from("    (no output)")
        } else {
            let lines: Vec<String> = self.tail.iter().map(|line| format!("    {line}")).collect();
            lines.join("\n")
        };
        anyhow::anyhow!(
            "{label} failed: `{}` ({})\n  last lines of its output:\n{tail}\n  next: {next}",
            self.command,
            self.status
        )
    }

    /// The failure on one line, for a check that looks again.
    pub fn summary(&self) -> String {
        let tail = self.tail.join(" / ");
        format!("`{}` failed ({}): {tail}", self.command, self.status)
    }
}

impl Flyctl {
    /// Finds `flyctl`, or `fly` (the same binary under its short name), on PATH; `None` when
    /// neither is there, so the caller can say how its users install it.
    pub fn find() -> Option<Self> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|dir| [dir.join("flyctl"), dir.join("fly")])
            .find(|candidate| is_executable(candidate))
            .map(|program| Self { program })
    }

    /// The name it was found under: `flyctl` or `fly`.
    pub fn name(&self) -> String {
        self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    }

    /// [`Flyctl::json`], failing as the step `label` with what to try `next`.
    pub fn query<T: DeserializeOwned>(
        &self,
        args: &[&str],
        mask: &Mask,
        label: &str,
        next: &str,
    ) -> anyhow::Result<T> {
        self.json(args, mask)
            .map_err(|failure| failure.error(label, next))
    }

    /// Runs a read-only query such as `apps list --json` and parses what it prints.
    pub fn json<T: DeserializeOwned>(&self, args: &[&str], mask: &Mask) -> Result<T, Failure> {
        let output = duct::cmd(&self.program, args)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|err| self.failure(args, format!("could not start: {err}"), ""))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let printed = mask.redact(&format!("{stdout}{stderr}"));
            return Err(self.failure(args, output.status.to_string(), &printed));
        }
        serde_json::from_str(&stdout).map_err(|err| {
            let status = format!("printed something that is not the JSON expected ({err})");
            self.failure(args, status, &mask.redact(&stdout))
        })
    }

    /// Runs a command that changes something, streaming its output (masked, indented) to stderr;
    /// `stdin`, when given, is written to the command's standard input, where secrets go
    /// because argv is readable by other users.
    pub fn stream(
        &self,
        args: &[impl AsRef<str>],
        stdin: Option<String>,
        mask: &Mask,
    ) -> Result<(), Failure> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let expression = duct::cmd(&self.program, &args)
            .stderr_to_stdout()
            .unchecked();
        let expression = match stdin {
            Some(stdin) => expression.stdin_bytes(stdin),
            None => expression.stdin_null(),
        };
        let started =
            |err: std::io::Error| self.failure(&args, format!("could not start: {err}"), "");
        let reader = expression.reader().map_err(started)?;
        let mut printed = String::new();
        for line in BufReader::new(&reader).lines() {
            let (line, unreadable) = match line {
                Ok(line) => (mask.redact(&line), false),
                Err(err) => (
                    format!("(the rest of the output is unreadable: {err})"),
                    true,
                ),
            };
            eprintln!("    {line}");
            printed.push_str(&line);
            printed.push('\n');
            if unreadable {
                break;
            }
        }
        let status = match reader.try_wait() {
            Ok(Some(output)) => output.status,
            Ok(None) => {
                // Only after an unreadable line: stop it rather than leave it running unseen.
                let _ = reader.kill();
                let status = "stopped, its output could not be read".to_owned();
                return Err(self.failure(&args, status, &printed));
            }
            Err(err) => return Err(started(err)),
        };
        if status.success() {
            Ok(())
        } else {
            Err(self.failure(&args, status.to_string(), &printed))
        }
    }

    /// A failure of `args`, keeping the last lines of what it printed (already masked).
    fn failure(&self, args: &[&str], status: String, printed: &str) -> Failure {
        let lines: Vec<String> = printed.lines().map(str::to_owned).collect();
        Failure {
            command: display(&self.name(), args),
            status,
            tail: lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec(),
        }
    }
}

/// A command as a plan shows it, run by the flyctl called `name`.
pub fn display(name: &str, args: &[impl AsRef<str>]) -> String {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    format!("{name} {}", args.join(" "))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
