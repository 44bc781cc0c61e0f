//! `cargo xtask`: the workspace's automation, in Rust, needing only cargo.
//!
//! ```text
//! cargo xtask --help
//! ```
//!
//! `main` parses the flags (all in `flags.rs`), moves to the workspace root and runs one command;
//! each command lives in the module named after it. The stack commands run here; the others run
//! in the package that holds them, with the same arguments (`cargo run -p xtask-contract -- …`
//! for `check`, `codegen`, `deploy`; `cargo run -p xtask-lab -- …` for `test`, `e2e`, `bench`), so
//! that starting the stack never compiles the app or the container machinery.

use clap::Parser as _;
use xtask::{flags, util};

fn main() -> anyhow::Result<()> {
    let flags = flags::Xtask::parse();
    std::env::set_current_dir(util::project_root())?;
    let args = std::env::args_os().skip(1);
    match flags.command {
        flags::Command::ObsUp(cmd) => cmd.run(),
        flags::Command::ObsDown(cmd) => cmd.run(),
        flags::Command::Status(cmd) => cmd.run(),
        flags::Command::Check(_) | flags::Command::Codegen(_) | flags::Command::Deploy(_) => {
            util::delegate("xtask-contract", args)
        }
        flags::Command::Test(_) | flags::Command::E2e(_) | flags::Command::Bench(_) => {
            util::delegate("xtask-lab", args)
        }
    }
}
