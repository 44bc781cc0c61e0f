//! Small helpers shared by the commands: paths and a thin process runner over duct.

use std::path::PathBuf;

use anyhow::Context as _;

/// The workspace root (the parent of `xtask/`), whatever the current directory.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}

/// The cargo that runs us (`$CARGO`), so toolchain overrides carry through.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `program args…` with inherited stdio after echoing it; fails with the step's name.
///
/// The child does not inherit the variables cargo set for xtask itself: `cargo xtask` is `cargo
/// run`, which gives us xtask's `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, … and some build scripts
/// (ring's) declare `rerun-if-env-changed` on exactly those, so an inner cargo that inherits them
/// rebuilds half the tree, and the next plain `cargo build` rebuilds it back (~50 s each way).
pub fn run(
    step: &str,
    program: &str,
    args: &[String],
    env: &[(&str, String)],
) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let mut expression = duct::cmd(program, args);
    for key in inherited_cargo_vars() {
        expression = expression.env_remove(key);
    }
    for (key, value) in env {
        expression = expression.env(key, value);
    }
    expression.run().with_context(|| format!("{step} failed"))?;
    Ok(())
}

/// The variables cargo set for xtask itself, which a child must not inherit (see [`run`]).
fn inherited_cargo_vars() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(key, _)| key)
        .filter(|key| {
            let key = key.to_string_lossy();
            key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                ]
                .contains(&&*key)
        })
        .collect()
}

/// Runs `cargo xtask ARGS…` in `package` (`xtask-contract` or `xtask-lab`), which holds the
/// command, and exits with its status: the package prints its own errors.
pub fn delegate(
    package: &str,
    args: impl Iterator<Item = std::ffi::OsString>,
) -> anyhow::Result<()> {
    let mut command = std::process::Command::new(cargo());
    command.args(["run", "--quiet", "--package", package, "--"]);
    command.args(args);
    for key in inherited_cargo_vars() {
        command.env_remove(key);
    }
    let status = command
        .status()
        .with_context(|| format!("run {package}: is cargo on PATH?"))?;
    std::process::exit(status.code().unwrap_or(1));
}
