//! `xtask-contract`: the `cargo xtask` commands that read the app's contracts by linking its
//! crates: `check`, `codegen`, `deploy`. `cargo xtask` hands these over with the same arguments:
//!
//! ```text
//! cargo xtask check        # runs: cargo run -p xtask-contract -- check
//! ```
//!
//! `binaries.rs` is the one place that reads the crates' constants; `problem.rs` is what `check`
//! and the deploy's preflight report. The flags are `xtask::flags` (one definition for all).

mod binaries;
mod check;
mod codegen;
mod deploy;
mod problem;
mod slo;

use clap::Parser as _;
use xtask::{flags, util};

/// A command this package runs: the flag structs are `xtask`'s, so the method is a trait's.
trait Run {
    fn run(self) -> anyhow::Result<()>;
}

fn main() -> anyhow::Result<()> {
    let flags = flags::Xtask::parse();
    std::env::set_current_dir(util::project_root())?;
    match flags.command {
        flags::Command::Check(cmd) => cmd.run(),
        flags::Command::Codegen(cmd) => cmd.run(),
        flags::Command::Deploy(cmd) => cmd.run(),
        other => anyhow::bail!(
            "xtask-contract runs check, codegen and deploy only; run `cargo xtask` for {other:?}"
        ),
    }
}
