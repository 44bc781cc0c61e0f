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
pub fn run(
    step: &str,
    program: &str,
    args: &[String],
    env: &[(&str, String)],
) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let mut expression = duct::cmd(program, args);
    for (key, value) in env {
        expression = expression.env(key, value);
    }
    expression.run().with_context(|| format!("{step} failed"))?;
    Ok(())
}
